/*
 * test_identity.c - lib/identity: when certificates renew and how failures
 * back off (the pure rules), then the manager on a real loop: local-mode
 * minting, waiters woken when a certificate arrives or its identity is
 * forgotten, renewal at half-life, a CA that cannot be reached (back-off,
 * the cap on calls in flight, an urgent request skipping the back-off), a
 * CA on loopback (a parked waiter woken by the certificate it signs; no
 * token, then a refusal, backing off until it signs), and node tokens read
 * from a file and taken again when it changes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "casvc/token.h"
#include "identity/certmgr.h"
#include "identity/node_tokens.h"
#include "tls/ca.h"
#include "tls/tls_cp.h"
#include "unit_ca_server.h"
#include "unit_loop.h"

#include <jansson.h>

#define ID_A "spiffe://cluster.local/ns/demo/sa/server"
#define ID_B "spiffe://cluster.local/ns/demo/sa/client"

static char dir[64];
static char root_cert[128];
static struct ca *root;

static int
setup(void **state)
{
    char key[128];
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_identity.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(root_cert, sizeof(root_cert), "%s/root-cert.pem", dir);
    snprintf(key, sizeof(key), "%s/root-key.pem", dir);
    root = ca_generate("test root", 3600);
    return root != NULL ? ca_save(root, root_cert, key) : -1;
}

static int
teardown(void **state)
{
    char p[160];
    (void)state;
    ca_free(root);
    snprintf(p, sizeof(p), "%s/root-key.pem", dir);
    unlink(p);
    unlink(root_cert);
    snprintf(p, sizeof(p), "%s/token", dir);
    unlink(p);
    rmdir(dir);
    return 0;
}

/* ---- the rules ----------------------------------------------------------- */

static void
test_renew_at(void **state)
{
    (void)state;
    /* Half-life from the start of its life. */
    assert_int_equal(certmgr_renew_at(1000, 2000, 1100), 1500);
    assert_int_equal(certmgr_renew_at(1000, 87400, 1000), 44200);
    /* Half-life already past (a CA that backdates a lot): halfway through what is left. */
    assert_int_equal(certmgr_renew_at(0, 2000, 1500), 1750);
    assert_int_equal(certmgr_renew_at(1000, 2000, 1500), 1750);
    /* Expired: at once (not in the past by more than "now"). */
    assert_true(certmgr_renew_at(0, 2000, 2500) <= 2500);
}

static void
test_backoff(void **state)
{
    uint64_t b = 0;
    (void)state;
    /* rnd 0 gives the low end of the jitter: 80 % of the step. */
    assert_int_equal(certmgr_backoff(&b, 0, 0), 400);
    assert_int_equal(b, 500);
    assert_int_equal(certmgr_backoff(&b, 0, 0), 800);
    assert_int_equal(b, 1000);
    for (int i = 0; i < 20; i++)
        certmgr_backoff(&b, 0, 0);
    assert_int_equal(b, CERTMGR_BACKOFF_MAX_MS); /* doubling stops at 150 s */
    /* The high end stays within +20 %, and every value in between is possible. */
    b = 1000;
    uint64_t hi = certmgr_backoff(&b, 800, 0);
    assert_int_equal(hi, 1600 + 800 % 801);
    assert_true(hi <= 2400);
    b = 1000;
    assert_int_equal(certmgr_backoff(&b, UINT32_MAX, 0), 1600 + UINT32_MAX % 801);
    /* Never past the expiry of the certificate still served. */
    b = 64000;
    assert_int_equal(certmgr_backoff(&b, 0, 3000), 3000);
    assert_int_equal(b, 128000);
    b = 0;
    assert_int_equal(certmgr_backoff(&b, 0, 10000), 400); /* expiry further away: no cap */
}

/* ---- local mode ---------------------------------------------------------- */

struct seen {
    struct certmgr *m;
    int changes;
    int woken;
    uint64_t change_ms[8];
    struct loop *loop;
    const char *identity;
    bool had_creds; /* what certmgr_get() said when the waiter ran */
};

static void
on_change(void *arg)
{
    struct seen *s = arg;
    if (s->changes < 8)
        s->change_ms[s->changes] = loop_now_ms(s->loop);
    s->changes++;
}

static void
on_woken(void *arg)
{
    struct seen *s = arg;
    s->woken++;
    s->had_creds = certmgr_get(s->m, s->identity) != NULL;
}

static struct certmgr *
local_mgr(struct loop *l, struct seen *s, long ttl)
{
    char err[256];
    struct certmgr_config cfg = {.loop = l, .ca_dir = dir, .cert_ttl_s = ttl,
                                 .on_change = on_change, .arg = s};
    struct certmgr *m = certmgr_new(&cfg, err, sizeof(err));
    assert_non_null(m);
    s->m = m;
    s->loop = l;
    return m;
}

static void
test_local_mint_and_waiters(void **state)
{
    struct loop *l = loop_new();
    struct seen s = {0};
    char err[256];
    (void)state;

    /* A directory without a CA is refused with the reason. */
    struct certmgr_config bad = {.loop = l, .ca_dir = "/nonexistent", .cert_ttl_s = 60};
    assert_null(certmgr_new(&bad, err, sizeof(err)));
    assert_non_null(strstr(err, "CA: "));

    struct certmgr *m = local_mgr(l, &s, 3600);
    /* Prefetch mints at once. */
    certmgr_mark(m);
    certmgr_want(m, ID_A);
    certmgr_sweep(m, "test");
    assert_int_equal(s.changes, 1);
    struct tls_creds *c = certmgr_get(m, ID_A);
    assert_non_null(c);
    assert_string_equal(tls_creds_id(c)->uri, ID_A);
    assert_true(tls_creds_not_after(c) - tls_creds_not_before(c) >= 3600);
    assert_int_equal(certmgr_stats(m)->installed, 1);
    assert_int_equal(certmgr_stats(m)->identities, 1);

    /* A waiter for a certificate that is there runs at once... */
    struct certmgr_waiter w1 = {0}, w2 = {0};
    s.identity = ID_A;
    certmgr_wait(m, &w1, ID_A, on_woken, &s);
    assert_int_equal(s.woken, 1);
    assert_true(s.had_creds);
    assert_false(w1.queued);
    /* ...one for an identity not minted yet gets it minted, and runs once it is there. */
    s.identity = ID_B;
    certmgr_wait(m, &w2, ID_B, on_woken, &s);
    assert_int_equal(s.woken, 2);
    assert_true(s.had_creds);
    assert_int_equal(certmgr_stats(m)->identities, 2);

    /* A certificate not wanted any more is forgotten; it is minted afresh when asked again. */
    certmgr_mark(m);
    certmgr_want(m, ID_A);
    certmgr_sweep(m, "test");
    assert_int_equal(certmgr_stats(m)->identities, 1);
    assert_null(certmgr_last_error(m, ID_B));
    assert_string_equal(certmgr_last_error(m, ID_A), "");

    /* An invalid identity is refused, not held. */
    assert_null(certmgr_get(m, "spiffe://bad identity"));
    assert_int_equal(certmgr_stats(m)->failures, 1);

    certmgr_free(m);
    loop_free(l);
}

static bool
cond_changes_2(void *arg)
{
    return ((struct seen *)arg)->changes >= 2;
}

static void
test_local_renewal_at_half_life(void **state)
{
    struct loop *l = loop_new();
    struct seen s = {0};
    (void)state;

    /* A 2 s certificate renews after 1 s (minted ones count from minting, not notBefore). */
    struct certmgr *m = local_mgr(l, &s, 2);
    struct tls_creds *first = certmgr_get(m, ID_A);
    assert_non_null(first);
    tls_creds_ref(first);
    assert_true(unit_run_until(l, cond_changes_2, &s, 3000));
    uint64_t after = s.change_ms[1] - s.change_ms[0];
    assert_true(after >= 900 && after <= 1600);
    struct tls_creds *second = certmgr_get(m, ID_A);
    assert_non_null(second);
    assert_ptr_not_equal(first, second);
    assert_true(tls_creds_not_after(second) >= tls_creds_not_after(first));
    tls_creds_unref(first);
    certmgr_free(m);
    loop_free(l);
}

/* ---- control-plane mode, CA unreachable ---------------------------------- */

/* A loopback port nobody listens on. */
static uint16_t
closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    close(fd);
    return ntohs(a.sin_port);
}

struct cp {
    struct loop *loop;
    SSL_CTX *ctx;
    struct channel *chan;
    struct certmgr *m;
    int bearer_calls;
    bool bearer_fails;
};

static int
bearer(void *arg, char *out, size_t outlen, char *why, size_t whylen)
{
    struct cp *t = arg;
    t->bearer_calls++;
    if (t->bearer_fails) {
        snprintf(why, whylen, "token file has no ca token");
        return -1;
    }
    snprintf(out, outlen, "Bearer test");
    return 0;
}

/* A manager asking the CA on |port| (0: a port nobody listens on) on |t->loop| (made if NULL). */
static void
cp_setup(struct cp *t, struct seen *s, uint16_t port)
{
    char err[256];
    struct ipaddr ip;
    const struct tls_opts o = {0};
    assert_int_equal(ipaddr_parse("127.0.0.1", &ip), 0);
    if (t->loop == NULL)
        t->loop = loop_new();
    t->ctx = tls_cp_client_ctx(root_cert, UCAS_NAME, &o, err, sizeof(err));
    assert_non_null(t->ctx);
    t->chan = channel_new(t->loop, &ip, port ? port : closed_port(), t->ctx, "CA");
    struct certmgr_config cfg = {.loop = t->loop, .chan = t->chan,
                                 .auth = {.authority = UCAS_NAME, .cluster = "Kubernetes",
                                          .bearer = bearer, .bearer_arg = t},
                                 .cert_ttl_s = 3600,
                                 .on_change = on_change, .arg = s};
    t->m = certmgr_new(&cfg, err, sizeof(err));
    assert_non_null(t->m);
    s->m = t->m;
    s->loop = t->loop;
}

static void
cp_teardown_keep_loop(struct cp *t)
{
    certmgr_free(t->m);
    channel_free(t->chan);
    SSL_CTX_free(t->ctx);
    loop_run_deferred(t->loop);
}

static void
cp_teardown(struct cp *t)
{
    cp_teardown_keep_loop(t);
    loop_free(t->loop);
}

static bool
cond_failures_1(void *arg)
{
    return certmgr_stats(arg)->failures >= 1;
}

static void
test_cp_unreachable_backs_off(void **state)
{
    struct cp t = {0};
    struct seen s = {0};
    struct certmgr_waiter w = {0};
    (void)state;

    cp_setup(&t, &s, 0);
    s.identity = ID_A;
    certmgr_wait(t.m, &w, ID_A, on_woken, &s);
    assert_true(w.queued);
    assert_int_equal(certmgr_stats(t.m)->requests, 1);
    assert_true(unit_run_until(t.loop, cond_failures_1, t.m, 3000));
    assert_non_null(strstr(certmgr_last_error(t.m, ID_A), "CA unreachable"));
    assert_int_equal(t.bearer_calls, 0); /* no token spent on a connection that is not there */

    /* Within 1.7 s after the first failure: retries at 0.4-0.6 s, then 0.8-1.2 s later. */
    unit_run_for(t.loop, 1700);
    uint64_t n = certmgr_stats(t.m)->requests;
    assert_true(n >= 2 && n <= 3);
    assert_int_equal(certmgr_stats(t.m)->failures, n - (certmgr_stats(t.m)->in_flight));
    assert_int_equal(s.woken, 0); /* nothing arrived */
    assert_int_equal(s.changes, 0);

    /* A prefetch waits for the back-off; a connection's request goes at once. */
    while (certmgr_stats(t.m)->in_flight > 0)
        unit_run_for(t.loop, 20);
    n = certmgr_stats(t.m)->requests;
    certmgr_want(t.m, ID_A);
    assert_int_equal(certmgr_stats(t.m)->requests, n);
    assert_null(certmgr_get(t.m, ID_A));
    assert_int_equal(certmgr_stats(t.m)->requests, n + 1);

    /* Forgetting the identity wakes its waiter, which then finds no certificate. */
    certmgr_mark(t.m);
    certmgr_sweep(t.m, "test");
    assert_int_equal(s.woken, 1);
    assert_int_equal(certmgr_stats(t.m)->identities, 1); /* on_woken asked again */
    cp_teardown(&t);
}

static bool
cond_all_asked(void *arg)
{
    return certmgr_stats(arg)->requests >= 20;
}

static void
test_cp_in_flight_cap(void **state)
{
    struct cp t = {0};
    struct seen s = {0};
    char id[96];
    (void)state;

    cp_setup(&t, &s, 0);
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof(id), "spiffe://cluster.local/ns/demo/sa/sa-%d", i);
        certmgr_want(t.m, id);
        assert_true(certmgr_stats(t.m)->in_flight <= CERTMGR_MAX_IN_FLIGHT);
    }
    assert_int_equal(certmgr_stats(t.m)->in_flight, CERTMGR_MAX_IN_FLIGHT);
    assert_int_equal(certmgr_stats(t.m)->requests, CERTMGR_MAX_IN_FLIGHT);
    /* The queued ones go as slots free up. */
    assert_true(unit_run_until(t.loop, cond_all_asked, t.m, 3000));
    assert_int_equal(certmgr_stats(t.m)->identities, 20);
    cp_teardown(&t);
}

/* ---- control-plane mode, a CA on loopback -------------------------------- */

static bool
cond_woken(void *arg)
{
    return ((struct seen *)arg)->woken > 0;
}

/* A manager, a CA on loopback for it and a waiter for ID_A, on one loop. */
struct cafix {
    struct cp t;
    struct seen s;
    struct certmgr_waiter w;
    struct ucas ca;
};

static void
cafix_start(struct cafix *f)
{
    memset(f, 0, sizeof(*f));
    f->t.loop = loop_new();
    ucas_start(&f->ca, f->t.loop, root);
    cp_setup(&f->t, &f->s, f->ca.port);
    f->s.identity = ID_A;
}

static void
cafix_stop(struct cafix *f)
{
    cp_teardown_keep_loop(&f->t);
    ucas_stop(&f->ca);
    loop_free(f->t.loop);
}

static void
test_cp_waiter_woken_by_ca(void **state)
{
    struct cafix f;
    (void)state;

    cafix_start(&f);
    certmgr_wait(f.t.m, &f.w, ID_A, on_woken, &f.s);
    assert_true(f.w.queued);
    assert_null(certmgr_get(f.t.m, ID_A)); /* on its way, not asked twice */
    assert_int_equal(certmgr_stats(f.t.m)->requests, 1);
    assert_true(unit_run_until(f.t.loop, cond_woken, &f.s, 5000));
    assert_int_equal(f.s.woken, 1);
    assert_true(f.s.had_creds);
    assert_int_equal(f.s.changes, 1);
    assert_int_equal(f.ca.signed_n, 1);
    assert_string_equal(f.ca.last_auth, "Bearer test");
    struct tls_creds *c = certmgr_get(f.t.m, ID_A);
    assert_string_equal(tls_creds_id(c)->uri, ID_A);

    /* config_dump: Istio ztunnel's shape, the certificate available. */
    json_t *arr = json_array();
    certmgr_dump(f.t.m, arr);
    assert_int_equal(json_array_size(arr), 1);
    json_t *e = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(e, "identity")), ID_A);
    assert_string_equal(json_string_value(json_object_get(e, "state")), "Available");
    assert_int_equal(json_array_size(json_object_get(e, "certChain")), 1);
    assert_int_equal(json_array_size(json_object_get(e, "rootCerts")), 1);
    json_decref(arr);

    cafix_stop(&f);
}

static bool
cond_failures_2(void *arg)
{
    return certmgr_stats(arg)->failures >= 2;
}

static void
test_cp_refusal_then_success(void **state)
{
    struct cafix f;
    (void)state;

    cafix_start(&f);
    /* No token: the call is not made, and it backs off like any failure. */
    f.t.bearer_fails = true;
    f.ca.mode = UCAS_REFUSE;
    certmgr_wait(f.t.m, &f.w, ID_A, on_woken, &f.s);
    assert_true(unit_run_until(f.t.loop, cond_failures_1, f.t.m, 5000));
    assert_non_null(strstr(certmgr_last_error(f.t.m, ID_A), "no ca token"));
    assert_int_equal(f.ca.calls, 0);
    /* Refused by the CA: its status in the reason, the waiter still parked. */
    f.t.bearer_fails = false;
    assert_true(unit_run_until(f.t.loop, cond_failures_2, f.t.m, 5000));
    assert_non_null(strstr(certmgr_last_error(f.t.m, ID_A), "CA answered status 16"));
    assert_int_equal(f.ca.refused, 1);
    assert_int_equal(f.s.woken, 0);
    assert_true(f.w.queued);
    json_t *arr = json_array();
    certmgr_dump(f.t.m, arr);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(arr, 0), "state")),
                           "Unavailable: CA answered status 16"));
    json_decref(arr);
    /* The CA comes round: the next retry (0.8-1.2 s later) gets it and wakes the waiter. */
    f.ca.mode = UCAS_SIGN;
    uint64_t t0 = loop_now_ms(f.t.loop);
    assert_true(unit_run_until(f.t.loop, cond_woken, &f.s, 5000));
    assert_true(loop_now_ms(f.t.loop) - t0 <= 1500);
    assert_true(f.s.had_creds);
    assert_int_equal(f.ca.signed_n, 1);
    assert_string_equal(certmgr_last_error(f.t.m, ID_A), "");

    cafix_stop(&f);
}

/* ---- node tokens --------------------------------------------------------- */

static void
write_token(const char *path, const char *node, int64_t issued, int64_t expires)
{
    uint8_t key[TOKEN_KEY_LEN] = {1};
    char xds[TOKEN_MAX_LEN + 1], ca[TOKEN_MAX_LEN + 1];
    struct token_claims c = {.aud = TOKEN_AUD_XDS, .gen = 0, .issued = issued, .expires = expires};
    snprintf(c.node, sizeof(c.node), "%s", node);
    assert_int_equal(token_mint(key, &c, xds, sizeof(xds)), 0);
    c.aud = TOKEN_AUD_CA;
    assert_int_equal(token_mint(key, &c, ca, sizeof(ca)), 0);
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f, "%s\n%s\n", xds, ca);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static void
test_node_tokens_file(void **state)
{
    char path[160], out[TOKEN_MAX_LEN + 16], why[300];
    struct loop *l = loop_new();
    int64_t now = (int64_t)(clock_wall_ms() / 1000);
    (void)state;

    snprintf(path, sizeof(path), "%s/token", dir);
    unlink(path);
    struct node_tokens_config cfg = {.loop = l, .path = path, .authority = "meshd",
                                     .cluster = "Kubernetes", .who = "test"};
    struct node_tokens *t = node_tokens_new(&cfg); /* no file yet: not fatal */
    assert_int_equal(node_tokens_bearer(t, TOKEN_AUD_XDS, out, sizeof(out), why, sizeof(why)), -1);
    assert_non_null(strstr(why, path));

    /* The file appears: each audience gets its own line. */
    write_token(path, "node-1", now, now + 3600);
    assert_int_equal(node_tokens_bearer_xds(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_non_null(strstr(out, "Bearer v2:xds:node-1:0:"));
    assert_int_equal(node_tokens_bearer_ca(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_non_null(strstr(out, "Bearer v2:ca:node-1:0:"));

    /* Replaced on disk (an operator after a revocation): the new one wins at the next use. */
    write_token(path, "node-2", now, now + 7200);
    assert_int_equal(node_tokens_bearer_ca(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_non_null(strstr(out, "Bearer v2:ca:node-2:0:"));

    /* A file with nothing usable keeps the tokens in memory. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("a\nb\n", f);
    fclose(f);
    assert_int_equal(node_tokens_bearer_xds(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_non_null(strstr(out, "Bearer v2:xds:node-2:0:"));
    node_tokens_free(t);
    loop_free(l);
}

static void
write_file(const char *path, const char *text)
{
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

/* A JWS-shaped token of |len| bytes whose payload is made of |fill|. */
static char *
jwt_of(size_t len, char fill)
{
    char *j = malloc(len + 1);
    assert_non_null(j);
    memset(j, fill, len);
    memcpy(j, "eyJh", 4);
    j[100] = '.';
    j[len - 50] = '.';
    j[len] = '\0';
    return j;
}

static void
test_node_tokens_kubernetes(void **state)
{
    char path[160], out[TOKEN_BEARER_MAX], why[300], want[TOKEN_BEARER_MAX];
    struct loop *l = loop_new();
    int64_t now = (int64_t)(clock_wall_ms() / 1000);
    (void)state;

    snprintf(path, sizeof(path), "%s/token", dir);
    /* A projected token (~920 bytes, what the kubelet writes): both audiences present it. */
    char *j1 = jwt_of(920, 'a');
    write_file(path, j1);
    assert_int_equal(chmod(path, 0644), 0);
    struct node_tokens_config cfg = {.loop = l, .path = path, .authority = "meshd",
                                     .cluster = "Kubernetes", .who = "test"};
    struct node_tokens *t = node_tokens_new(&cfg);
    snprintf(want, sizeof(want), "Bearer %s", j1);
    assert_int_equal(node_tokens_bearer_xds(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_string_equal(out, want);
    assert_int_equal(node_tokens_bearer_ca(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_string_equal(out, want);
    /* A caller's buffer too small for it gets an error, not a cut token. */
    char small[TOKEN_MAX_LEN + 16];
    assert_int_equal(node_tokens_bearer_ca(t, small, sizeof(small), why, sizeof(why)), -1);
    assert_non_null(strstr(why, "do not fit"));

    /* The kubelet rotates it (a newline after it, as `kubectl create token > f` leaves). */
    char *j2 = jwt_of(1100, 'b');
    char line[1200];
    snprintf(line, sizeof(line), "%s\n", j2);
    write_file(path, line);
    snprintf(want, sizeof(want), "Bearer %s", j2);
    assert_int_equal(node_tokens_bearer_ca(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_string_equal(out, want);
    assert_int_equal(node_tokens_bearer_xds(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_string_equal(out, want);
    /* Never renewed through meshd nor written back: the file stays the kubelet's. */
    unit_run_for(l, 50);
    char back[1200] = "";
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(back, sizeof(back), f));
    fclose(f);
    assert_string_equal(back, line);

    /* Above the cap: a clear error; the token in memory stays. */
    char *huge = jwt_of(TOKEN_JWT_MAX + 1, 'c');
    write_file(path, huge);
    assert_int_equal(node_tokens_bearer_ca(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_string_equal(out, want);
    struct node_tokens *t2 = node_tokens_new(&cfg);
    assert_int_equal(node_tokens_bearer_ca(t2, out, sizeof(out), why, sizeof(why)), -1);
    assert_non_null(strstr(why, "holds a JWT larger than 16384 bytes"));
    assert_null(strstr(why, "eyJh"));
    node_tokens_free(t2);
    /* Broken: where, not what. */
    write_file(path, "eyJhbGci.c2VjcmV0\n");
    t2 = node_tokens_new(&cfg);
    assert_int_equal(node_tokens_bearer_xds(t2, out, sizeof(out), why, sizeof(why)), -1);
    assert_non_null(strstr(why, "starts like a JWT but is not one: fewer than three segments"));
    assert_null(strstr(why, "c2VjcmV0"));
    node_tokens_free(t2);

    /* Back to meshd's node tokens: they work as before, renewable again. */
    write_token(path, "node-3", now, now + 3600);
    assert_int_equal(node_tokens_bearer_xds(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_non_null(strstr(out, "Bearer v2:xds:node-3:0:"));
    assert_int_equal(node_tokens_bearer_ca(t, out, sizeof(out), why, sizeof(why)), 0);
    assert_non_null(strstr(out, "Bearer v2:ca:node-3:0:"));
    free(j1);
    free(j2);
    free(huge);
    node_tokens_free(t);
    loop_free(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renew_at),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_local_mint_and_waiters),
        cmocka_unit_test(test_local_renewal_at_half_life),
        cmocka_unit_test(test_cp_unreachable_backs_off),
        cmocka_unit_test(test_cp_in_flight_cap),
        cmocka_unit_test(test_cp_waiter_woken_by_ca),
        cmocka_unit_test(test_cp_refusal_then_success),
        cmocka_unit_test(test_node_tokens_file),
        cmocka_unit_test(test_node_tokens_kubernetes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
