/*
 * unit_ca_server.c - see unit_ca_server.h.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "casvc/casvc.h"
#include "conn/tcp_stream.h"
#include "tls/tls_stream.h"
#include "tls/tls_cp.h"
#include "unit_ca_server.h"

static bool
any_node_any_id(void *arg, const char *node, const struct spiffe_id *id)
{
    (void)arg, (void)node, (void)id;
    return true;
}

static void
slot_done(struct ucas_call *k)
{
    rpc_call_free(k->c);
    free(k->req);
    memset(k, 0, sizeof(*k));
}

static int
on_message(void *arg, struct rpc_call *c, const uint8_t *msg, size_t len)
{
    struct ucas_call *k = arg;
    const char *auth = rpc_call_header(c, "authorization");
    snprintf(k->srv->last_auth, sizeof(k->srv->last_auth), "%s", auth ? auth : "");
    free(k->req);
    k->req = xmalloc(len ? len : 1);
    memcpy(k->req, msg, len);
    k->len = len;
    return 0;
}

static void
on_end(void *arg, struct rpc_call *c, int status, const char *message)
{
    struct ucas_call *k = arg;
    struct ucas *s = k->srv;
    (void)message;
    if (status == GRPC_STATUS_OK && s->mode == UCAS_REFUSE) {
        s->refused++;
        rpc_call_finish(c, GRPC_STATUS_UNAUTHENTICATED, "refused by the test");
    } else if (status == GRPC_STATUS_OK) {
        const struct casvc_policy p = {.trust_domain = "cluster.local",
                                       .default_ttl = 3600,
                                       .max_ttl = 3600,
                                       .authorize = any_node_any_id};
        struct casvc_result res;
        uint8_t *resp = NULL;
        size_t resp_len = 0;
        int rc = casvc_sign(s->ca, &p, "node-1", k->req, k->len, &resp, &resp_len, &res);
        if (rc == GRPC_STATUS_OK) {
            s->signed_n++;
            assert_int_equal(rpc_call_send(c, resp, resp_len), 0);
            rpc_call_finish(c, GRPC_STATUS_OK, NULL);
        } else {
            rpc_call_finish(c, rc, "not signed");
        }
        free(resp);
    }
    slot_done(k);
}

static const struct rpc_call_cbs call_cbs = {.on_message = on_message, .on_end = on_end};

static void
on_request(void *arg, struct h2_session *sess, struct h2_stream *st)
{
    struct ucas *s = arg;
    (void)sess;
    s->calls++;
    for (int i = 0; i < UCAS_MAX_CALLS; i++) {
        struct ucas_call *k = &s->slots[i];
        if (k->c != NULL)
            continue;
        k->srv = s;
        k->c = rpc_call_accept(st, CASVC_MAX_REQUEST, &call_cbs, k);
        return;
    }
    rpc_refuse(st, RPC_STATUS_RESOURCE_EXHAUSTED, "test CA busy");
}

static void
on_closed(void *arg, struct h2_session *sess, int err)
{
    struct ucas *s = arg;
    (void)err;
    for (int i = 0; i < UCAS_MAX_SESSIONS; i++)
        if (s->sess[i] == sess)
            s->sess[i] = NULL;
    h2_session_release(sess);
}

static const struct h2_session_cbs sess_cbs = {.on_request = on_request, .on_closed = on_closed};

static void
on_accept(void *arg, uint32_t events)
{
    struct ucas *s = arg;
    int fd;
    (void)events;
    while ((fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        int i = 0;
        while (i < UCAS_MAX_SESSIONS && s->sess[i] != NULL)
            i++;
        if (i == UCAS_MAX_SESSIONS) {
            close(fd);
            continue;
        }
        struct stream *x = tls_stream_new(s->loop, tcp_stream_new(s->loop, fd), SSL_new(s->ctx),
                                          true, TLS_STREAM_ALPN_H2);
        s->sess[i] = h2_session_new(s->loop, x, true, &sess_cbs, s);
    }
}

void
ucas_start(struct ucas *s, struct loop *l, const struct ca *ca)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->loop = l;
    s->ca = ca;
    EVP_PKEY *key = ca_new_key();
    X509 *cert = ca_issue_sans(ca, key, "DNS:" UCAS_NAME, -60, 3600);
    assert_non_null(cert);
    s->ctx = tls_cp_server_ctx(cert, key, NULL);
    assert_non_null(s->ctx);
    X509_free(cert);
    EVP_PKEY_free(key);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &n), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(loop_io_start(l, &s->lio, s->lfd, EPOLLIN, on_accept, s), 0);
}

void
ucas_stop(struct ucas *s)
{
    for (int i = 0; i < UCAS_MAX_CALLS; i++)
        if (s->slots[i].c != NULL)
            slot_done(&s->slots[i]);
    for (int i = 0; i < UCAS_MAX_SESSIONS; i++)
        if (s->sess[i] != NULL)
            h2_session_close(s->sess[i], -ECONNABORTED);
    loop_run_deferred(s->loop);
    loop_io_stop(s->loop, &s->lio);
    close(s->lfd);
    SSL_CTX_free(s->ctx);
}
