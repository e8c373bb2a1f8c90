/*
 * hbone_server.c - the accepting end of HBONE: TLS with the SPIFFE checks, HTTP/2 on the TLS
 * stream, and the checks every CONNECT gets before a proxy looks at its target. Handshake
 * caps and deadlines stay with the caller (lib/conn/hs_guard.h), which knows its scopes.
 */
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "hbone"
#include "base/base.h"
#include "conn/tcp_stream.h"
#include "hbone/hbone.h"
#include "log/log.h"
#include "tls/tls_stream.h"

struct h2_session *
hbone_server_start(struct loop *l, int fd, struct tls_creds *creds, struct tls_check *chk,
                   const struct h2_session_cbs *cbs, void *arg)
{
    chk->trust_domain = tls_creds_id(creds)->td;
    SSL *ssl = tls_new_server(creds, chk);
    if (ssl == NULL) {
        close(fd);
        return NULL;
    }
    struct stream *x = tls_stream_new(l, tcp_stream_new(l, fd), ssl, true, TLS_STREAM_ALPN_H2);
    return h2_session_new(l, x, true, cbs, arg);
}

const char *
hbone_connect_target(const struct h2_stream *st, struct ipaddr *ip, uint16_t *port)
{
    const char *method = h2_stream_method(st), *auth = h2_stream_authority(st);

    if (method == NULL || strcmp(method, "CONNECT") != 0 || h2_stream_has_path(st))
        return "not a CONNECT request";
    if (auth == NULL || authority_parse(auth, strlen(auth), ip, port) < 0)
        return "authority is not IP:port";
    return NULL;
}

void
hbone_reject(struct h2_stream *st, int status, const char *why)
{
    log_debug("CONNECT %s refused with %d: %s",
              h2_stream_authority(st) ? h2_stream_authority(st) : "-", status, why);
    h2_stream_respond(st, status, NULL, 0, true);
    stream_close(h2_stream_as_stream(st), false);
}
