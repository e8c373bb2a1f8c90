/*
 * test_casvc.c - node tokens and the certificate service: who may get which
 * identity, what the CA signs, and what a proxy accepts back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca.pb-c.h"

#include "base/base.h"
#include "casvc/casvc.h"
#include "casvc/token.h"
#include "casvc/token_gens.h"
#include "grpc/grpc.h"
#include "tls/csr.h"

#define ID_CLIENT "spiffe://cluster.local/ns/default/sa/client"
#define ID_ADMIN "spiffe://cluster.local/ns/kube-system/sa/admin"

static const uint8_t key_a[TOKEN_KEY_LEN] = {1, 2, 3};
static const uint8_t key_b[TOKEN_KEY_LEN] = {9, 9, 9};

static void
mint(const uint8_t *key, enum token_aud aud, const char *node, uint64_t gen, int64_t iss,
     int64_t exp, char *tok)
{
    struct token_claims c = {.aud = aud, .gen = gen, .issued = iss, .expires = exp};
    snprintf(c.node, sizeof(c.node), "%s", node);
    assert_int_equal(token_mint(key, &c, tok, TOKEN_MAX_LEN), 0);
}

static int
verify(const uint8_t *key, const struct token_gens *g, const char *tok, int64_t now,
       enum token_aud want, struct token_claims *c, const char **why)
{
    return token_verify(key, g, tok, strlen(tok), now, want, c, why);
}

static void
test_token_roundtrip(void **state)
{
    char tok[TOKEN_MAX_LEN];
    struct token_claims c;
    const char *why;
    (void)state;
    mint(key_a, TOKEN_AUD_XDS, "node-1", 0, 1000, 2000, tok);
    assert_memory_equal(tok, "v2:xds:node-1:0:1000:2000:", 26);
    assert_int_equal(strlen(tok), 26 + 64);
    assert_int_equal(verify(key_a, NULL, tok, 1500, TOKEN_AUD_XDS, &c, &why), 0);
    assert_null(why);
    assert_string_equal(c.node, "node-1");
    assert_int_equal(c.aud, TOKEN_AUD_XDS);
    assert_int_equal(c.issued, 1000);
    assert_int_equal(c.expires, 2000);
    assert_int_equal(verify(key_a, NULL, tok, 1500, TOKEN_AUD_ANY, &c, &why), 0);
    /* Expired (at the second it names), other key. */
    assert_int_equal(verify(key_a, NULL, tok, 2000, TOKEN_AUD_XDS, &c, &why), -MESH_EDENIED);
    assert_string_equal(why, "token expired");
    assert_int_equal(verify(key_b, NULL, tok, 1500, TOKEN_AUD_XDS, &c, &why), -MESH_EDENIED);
    assert_string_equal(why, "token signature does not verify");
}

static void
test_token_audience(void **state)
{
    char x[TOKEN_MAX_LEN], ca[TOKEN_MAX_LEN], forged[TOKEN_MAX_LEN + 8];
    struct token_claims c;
    const char *why;
    (void)state;
    mint(key_a, TOKEN_AUD_XDS, "node-1", 0, 1000, 2000, x);
    mint(key_a, TOKEN_AUD_CA, "node-1", 0, 1000, 2000, ca);
    assert_int_equal(verify(key_a, NULL, x, 1500, TOKEN_AUD_CA, &c, &why), -MESH_EDENIED);
    assert_string_equal(why, "token is for xDS, not the CA");
    assert_int_equal(verify(key_a, NULL, ca, 1500, TOKEN_AUD_XDS, &c, &why), -MESH_EDENIED);
    assert_string_equal(why, "token is for the CA, not xDS");
    assert_int_equal(verify(key_a, NULL, ca, 1500, TOKEN_AUD_CA, &c, &why), 0);
    assert_int_equal(c.aud, TOKEN_AUD_CA);
    /* The audience is signed: relabelling an xds token as ca breaks the MAC. */
    snprintf(forged, sizeof(forged), "v2:ca:%s", x + strlen("v2:xds:"));
    assert_int_equal(verify(key_a, NULL, forged, 1500, TOKEN_AUD_CA, &c, &why), -MESH_EDENIED);
    assert_string_equal(why, "token signature does not verify");
    /* An unknown audience is malformed, even signed. */
    assert_int_equal(token_aud_parse("xdss"), TOKEN_AUD_ANY);
    struct token_claims bad = {.aud = (enum token_aud)7, .node = "n", .issued = 1, .expires = 2};
    assert_int_equal(token_mint(key_a, &bad, x, sizeof(x)), -EINVAL);
}

static void
test_token_generation(void **state)
{
    char g0[TOKEN_MAX_LEN], g1[TOKEN_MAX_LEN], other[TOKEN_MAX_LEN], err[200];
    struct token_claims c;
    const char *why;
    (void)state;
    struct token_gens *g = token_gens_new();
    mint(key_a, TOKEN_AUD_CA, "node-1", 0, 1000, 2000, g0);
    mint(key_a, TOKEN_AUD_CA, "node-2", 0, 1000, 2000, other);
    assert_int_equal(verify(key_a, g, g0, 1500, TOKEN_AUD_CA, &c, &why), 0);
    assert_int_equal(token_gens_bump(g, "node-1"), 1);
    assert_int_equal(verify(key_a, g, g0, 1500, TOKEN_AUD_CA, &c, &why), -MESH_EDENIED);
    assert_string_equal(why, "token revoked (older generation)");
    /* node-2 is not touched by node-1's revocation. */
    assert_int_equal(verify(key_a, g, other, 1500, TOKEN_AUD_CA, &c, &why), 0);
    mint(key_a, TOKEN_AUD_CA, "node-1", 1, 1000, 2000, g1);
    assert_int_equal(verify(key_a, g, g1, 1500, TOKEN_AUD_CA, &c, &why), 0);
    assert_int_equal(c.gen, 1);
    /* A table that lost the bump (restored from an old backup) does not take a newer token. */
    assert_int_equal(verify(key_a, NULL, g1, 1500, TOKEN_AUD_CA, &c, &why), -MESH_EDENIED);
    assert_string_equal(why, "token from a future generation");
    /* The table round-trips through its file format. */
    assert_int_equal(token_gens_bump(g, "a-node"), 1);
    assert_int_equal(token_gens_bump(g, "node-1"), 2);
    char *text = token_gens_format(g);
    struct token_gens *h = token_gens_parse(text, strlen(text), err, sizeof(err));
    assert_non_null(h);
    assert_int_equal(token_gens_count(h), 2);
    assert_int_equal(token_gens_get(h, "node-1"), 2);
    assert_int_equal(token_gens_get(h, "a-node"), 1);
    assert_int_equal(token_gens_get(h, "node-2"), 0);
    free(text);
    token_gens_free(h);
    token_gens_free(g);
}

static void
test_token_gens_file(void **state)
{
    char err[200];
    (void)state;
    static const struct {
        const char *text, *err;
    } bad[] = {
        {"node-1\n", "line 1: not \"<node> <generation>\""},
        {"node-1 0\n", "line 1: generation \"0\" is not a positive decimal"},
        {"node-1 01\n", "line 1: generation \"01\" is not a positive decimal"},
        {"node-1 -1\n", "line 1: generation \"-1\" is not a positive decimal"},
        {"node-1  1\n", "line 1: generation \" 1\" is not a positive decimal"},
        {"# c\nNode 1\n", "line 2: \"Node\" is not a node name"},
        {"node-1 9223372036854775808\n", "line 1: generation 9223372036854775808 is too large"},
        {"node-1 99999999999999999999\n", "line 1: not \"<node> <generation>\""},
        {"b 1\na 2\nb 3\n", "node b is listed twice"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_null(token_gens_parse(bad[i].text, strlen(bad[i].text), err, sizeof(err)));
        assert_string_equal(err, bad[i].err);
    }
    assert_null(token_gens_parse("a 1\0b 2\n", 8, err, sizeof(err)));
    assert_string_equal(err, "not text");
    struct token_gens *g = token_gens_parse("# x\n\nnode-1 9223372036854775807", 31, err, sizeof(err));
    assert_non_null(g);
    assert_int_equal(token_gens_get(g, "node-1"), INT64_MAX);
    assert_int_equal(token_gens_bump(g, "node-1"), 0); /* no overflow */
    assert_int_equal(token_gens_bump(g, "Bad"), 0);
    token_gens_free(g);
}

static void
test_token_malformed(void **state)
{
    char tok[TOKEN_MAX_LEN], forged[TOKEN_MAX_LEN + 80], node[TOKEN_NODE_MAX + 2];
    struct token_claims c;
    const char *why;
    (void)state;
    mint(key_a, TOKEN_AUD_XDS, "node-1", 3, 1000, 2000, tok);
    size_t n = strlen(tok);
    /* Tampered fields, each signed over: node, generation, expiry. */
    const char *swaps[][2] = {{"node-1", "node-2"}, {":3:", ":4:"}, {":2000:", ":9000:"}};
    for (size_t i = 0; i < 3; i++) {
        const char *at = strstr(tok, swaps[i][0]);
        snprintf(forged, sizeof(forged), "%.*s%s%s", (int)(at - tok), tok, swaps[i][1],
                 at + strlen(swaps[i][0]));
        assert_int_equal(verify(key_a, NULL, forged, 1500, TOKEN_AUD_ANY, &c, &why), -MESH_EDENIED);
        assert_string_equal(why, "token signature does not verify");
    }
    /* Truncated, trailing junk, an extra field, upper-case MAC, embedded NUL. */
    assert_int_equal(token_verify(key_a, NULL, tok, n - 1, 1500, 0, &c, &why), -MESH_EDENIED);
    snprintf(forged, sizeof(forged), "%sx", tok);
    assert_int_equal(verify(key_a, NULL, forged, 1500, 0, &c, &why), -MESH_EDENIED);
    snprintf(forged, sizeof(forged), "v2:xds:x:%s", tok + 7);
    assert_int_equal(verify(key_a, NULL, forged, 1500, 0, &c, &why), -MESH_EDENIED);
    assert_string_equal(why, "malformed token");
    memcpy(forged, tok, n + 1);
    for (size_t i = n - 64; i < n; i++)
        if (forged[i] >= 'a')
            forged[i] = (char)(forged[i] - 32);
    assert_int_equal(verify(key_a, NULL, forged, 1500, 0, &c, &why), -MESH_EDENIED);
    memcpy(forged, tok, n + 1);
    forged[4] = '\0';
    assert_int_equal(token_verify(key_a, NULL, forged, n, 1500, 0, &c, &why), -MESH_EDENIED);
    assert_string_equal(why, "malformed token");
    /* Garbage, empty, a header, a v1 token (refused with a reason that says what to do). */
    assert_int_equal(token_verify(key_a, NULL, "", 0, 1500, 0, &c, &why), -MESH_EDENIED);
    assert_int_equal(verify(key_a, NULL, "Bearer x", 1500, 0, &c, &why), -MESH_EDENIED);
    assert_int_equal(verify(key_a, NULL, "v2::::::", 1500, 0, &c, &why), -MESH_EDENIED);
    assert_int_equal(verify(key_a, NULL,
                            "v1:node-1:2000:0000000000000000000000000000000000000000000000000000000000000000",
                            1500, 0, &c, &why), -MESH_EDENIED);
    assert_non_null(strstr(why, "v1 token"));
    /* Length caps: the longest node name fits; anything over TOKEN_MAX_LEN is refused unread. */
    memset(node, 'a', TOKEN_NODE_MAX);
    node[TOKEN_NODE_MAX] = '\0';
    mint(key_a, TOKEN_AUD_XDS, node, INT64_MAX, INT64_MAX - TOKEN_MAX_TTL, INT64_MAX, tok);
    assert_true(strlen(tok) <= TOKEN_MAX_LEN - 1);
    assert_int_equal(verify(key_a, NULL, tok, 1500, 0, &c, &why), -MESH_EDENIED); /* gen */
    assert_string_equal(why, "token from a future generation");
    char big[TOKEN_MAX_LEN + 2];
    memset(big, 'a', sizeof(big));
    memcpy(big, "v2:", 3);
    assert_int_equal(token_verify(key_a, NULL, big, sizeof(big), 1500, 0, &c, &why), -MESH_EDENIED);
    assert_string_equal(why, "malformed token");
    /* Lifetime bounds at minting: positive, issued before expiry, at most TOKEN_MAX_TTL. */
    struct token_claims cl = {.aud = TOKEN_AUD_CA, .node = "n", .issued = 1000, .expires = 1000};
    assert_int_equal(token_mint(key_a, &cl, tok, sizeof(tok)), -EINVAL);
    cl.expires = 1000 + TOKEN_MAX_TTL + 1;
    assert_int_equal(token_mint(key_a, &cl, tok, sizeof(tok)), -EINVAL);
    cl.expires = 1000 + TOKEN_MAX_TTL;
    assert_int_equal(token_mint(key_a, &cl, tok, sizeof(tok)), 0);
    /* token_parse reads the fields without the key, and refuses what verify would not parse. */
    assert_int_equal(token_parse(tok, strlen(tok), &c, &why), 0);
    assert_int_equal(c.expires - c.issued, TOKEN_MAX_TTL);
    assert_int_equal(token_mint(key_a, &cl, tok, 40), -EINVAL); /* no room: nothing written */
    assert_string_equal(tok, "");
    assert_int_equal(token_parse("v2:ca:n:0:1000:999:x", 20, &c, &why), -MESH_EDENIED);
}

static void
test_token_node_names(void **state)
{
    char tok[TOKEN_MAX_LEN];
    (void)state;
    assert_true(token_node_valid("ip-10-0-0-1.ec2.internal"));
    assert_false(token_node_valid(""));
    assert_false(token_node_valid("-a"));
    assert_false(token_node_valid("a:b"));
    assert_false(token_node_valid("Node"));
    struct token_claims c = {.aud = TOKEN_AUD_XDS, .node = "a:b", .issued = 1, .expires = 10};
    assert_int_equal(token_mint(key_a, &c, tok, sizeof(tok)), -EINVAL);
    snprintf(c.node, sizeof(c.node), "ok");
    assert_int_equal(token_mint(key_a, &c, tok, 20), -EINVAL);
}

static void
test_token_file_pick(void **state)
{
    const char *t;
    size_t n;
    (void)state;
    static const char two[] = "v2:xds:n:0:1:2:aa\r\nv2:ca:n:0:1:2:bb\n";
    assert_int_equal(token_file_pick(two, strlen(two), TOKEN_AUD_CA, &t, &n), 0);
    assert_int_equal(n, strlen("v2:ca:n:0:1:2:bb"));
    assert_memory_equal(t, "v2:ca:n:0:1:2:bb", n);
    assert_int_equal(token_file_pick(two, strlen(two), TOKEN_AUD_XDS, &t, &n), 0);
    assert_memory_equal(t, "v2:xds:n:0:1:2:aa", n);
    /* One line of the other audience is not used for this one. */
    assert_int_equal(token_file_pick(two, 19, TOKEN_AUD_CA, &t, &n), -1);
    /* One opaque line (a v1 token, a JWT) serves both; meshd judges it. */
    assert_int_equal(token_file_pick("\nopaque-jwt \n", 13, TOKEN_AUD_CA, &t, &n), 0);
    assert_memory_equal(t, "opaque-jwt", n);
    assert_int_equal(token_file_pick("a\nb\n", 4, TOKEN_AUD_CA, &t, &n), -1);
    assert_int_equal(token_file_pick("", 0, TOKEN_AUD_XDS, &t, &n), -1);
    assert_int_equal(token_file_pick("v2:xds:\n", 8, TOKEN_AUD_XDS, &t, &n), -1);
}

/* The authorizer: node-1 runs default/client; nothing else runs anywhere. */
static int authorize_calls;
static bool
authorize(void *arg, const char *node, const struct spiffe_id *id)
{
    (void)arg;
    authorize_calls++;
    return strcmp(node, "node-1") == 0 && strcmp(id->ns, "default") == 0 &&
           strcmp(id->sa, "client") == 0;
}

static const struct casvc_policy policy = {
    .trust_domain = "cluster.local",
    .default_ttl = 3600,
    .max_ttl = 7200,
    .authorize = authorize,
};

/* A JWS in compact form of |len| bytes: "eyJ" header, payload, signature. */
static char *
fake_jwt(size_t len)
{
    char *j = malloc(len + 1);
    assert_non_null(j);
    memset(j, 'A', len);
    memcpy(j, "eyJh", 4);
    j[len / 3] = '.';
    j[2 * len / 3] = '.';
    j[len] = '\0';
    return j;
}

static void
kind_bad(const char *text, const char *want_why)
{
    const char *tok = NULL;
    size_t len = 0;
    char why[120] = "";
    assert_int_equal(token_file_kind(text, strlen(text), &tok, &len, why, sizeof(why)),
                     TOKEN_FILE_BAD);
    if (strstr(why, want_why) == NULL)
        fail_msg("\"%s\": \"%s\", not \"%s\"", text, why, want_why);
    assert_null(tok);
}

static void
test_token_file_kind(void **state)
{
    const char *tok = NULL;
    size_t len = 0;
    char why[120];
    (void)state;

    /* meshd's node-token files, and a single opaque line, stay meshd's format. */
    const char *node = "v2:xds:n:0:1:2:00\nv2:ca:n:0:1:2:00\n";
    assert_int_equal(token_file_kind(node, strlen(node), &tok, &len, why, sizeof(why)),
                     TOKEN_FILE_NODE);
    assert_int_equal(token_file_kind("a\nb\n", 4, &tok, &len, why, sizeof(why)), TOKEN_FILE_NODE);
    assert_int_equal(token_file_kind("opaque", 6, &tok, &len, why, sizeof(why)), TOKEN_FILE_NODE);

    /* A projected token (~1 KiB, bare) and the same with a newline and spaces around it. */
    char *j = fake_jwt(920);
    assert_int_equal(token_file_kind(j, 920, &tok, &len, why, sizeof(why)), TOKEN_FILE_JWT);
    assert_ptr_equal(tok, j);
    assert_int_equal(len, 920);
    char padded[1000];
    snprintf(padded, sizeof(padded), " \r\n%s\r\n\n", j);
    assert_int_equal(token_file_kind(padded, strlen(padded), &tok, &len, why, sizeof(why)),
                     TOKEN_FILE_JWT);
    assert_ptr_equal(tok, padded + 3);
    assert_int_equal(len, 920);
    free(j);

    /* The cap: TOKEN_JWT_MAX bytes are taken, one more is refused, saying so. */
    j = fake_jwt(TOKEN_JWT_MAX);
    assert_int_equal(token_file_kind(j, TOKEN_JWT_MAX, &tok, &len, why, sizeof(why)),
                     TOKEN_FILE_JWT);
    free(j);
    j = fake_jwt(TOKEN_JWT_MAX + 1);
    tok = NULL;
    assert_int_equal(token_file_kind(j, TOKEN_JWT_MAX + 1, &tok, &len, why, sizeof(why)),
                     TOKEN_FILE_BAD);
    assert_string_equal(why, "holds a JWT larger than 16384 bytes");
    assert_null(tok);
    free(j);
    /* A node-token file keeps its own, smaller cap. */
    char *big = malloc(TOKEN_FILE_MAX + 2);
    assert_non_null(big);
    memset(big, 'v', TOKEN_FILE_MAX + 1);
    big[TOKEN_FILE_MAX + 1] = '\0';
    kind_bad(big, "is larger than 4096 bytes (a node-token file)");
    free(big);

    kind_bad("", "is empty");
    kind_bad(" \n\t\r\n", "is empty");
    kind_bad("eyJhbGci..c2ln", "an empty segment at byte 9");
    kind_bad("eyJhbGci.cGF5", "fewer than three segments");
    kind_bad("eyJhbGci.cGF5.c2ln.eHh4", "more than three segments");
    kind_bad("eyJhbGci.cGF5.", "an empty signature");
    kind_bad("eyJhbGci.cGF5.c2ln\neyJhbGci.cGF5.c2ln", "more than one line at byte 18");
    kind_bad("eyJhbGci.cG:5.c2ln", "a byte outside base64url at byte 11");
    kind_bad("eyJhbGci.cGF5.c2l=", "a byte outside base64url");
    /* The reason never quotes the file: it is a credential. */
    kind_bad("eyJzZWNyZXQ.c2VjcmV0.c2Vj cmV0", "at byte 25");
    char w[120];
    token_file_kind("eyJzZWNyZXQ.c2VjcmV0.c2Vj cmV0", 30, &tok, &len, w, sizeof(w));
    assert_null(strstr(w, "c2Vj"));
}

static void
test_sign_and_accept(void **state)
{
    (void)state;
    struct ca *ca = ca_generate("mesh", 86400);
    EVP_PKEY *key;
    uint8_t *req, *resp;
    size_t len, rlen;
    struct casvc_result res;
    char err[256];

    assert_int_equal(casvc_request(ID_CLIENT, 0, &key, &req, &len), 0);
    assert_int_equal(casvc_sign(ca, &policy, "node-1", req, len, &resp, &rlen, &res),
                     GRPC_STATUS_OK);
    assert_string_equal(res.id.uri, ID_CLIENT);
    assert_int_equal(res.ttl, 3600);
    assert_true(strlen(res.serial) > 0);

    /* Leaf first, root last, as istiod answers. */
    Istio__V1__Auth__IstioCertificateResponse *r =
        istio__v1__auth__istio_certificate_response__unpack(NULL, rlen, resp);
    assert_non_null(r);
    assert_int_equal(r->n_cert_chain, 2);
    BIO *b = BIO_new_mem_buf(r->cert_chain[1], -1);
    X509 *root = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_int_equal(X509_cmp(root, ca_root(ca)), 0);
    X509_free(root);
    istio__v1__auth__istio_certificate_response__free_unpacked(r, NULL);

    STACK_OF(X509) *roots = NULL;
    struct tls_creds *c = casvc_response(resp, rlen, ID_CLIENT, key, NULL, &roots, err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(tls_creds_id(c)->uri, ID_CLIENT);
    /* The trust bundle handed back is the CA's root. */
    assert_int_equal(sk_X509_num(roots), 1);
    assert_int_equal(X509_cmp(sk_X509_value(roots, 0), ca_root(ca)), 0);
    sk_X509_pop_free(roots, X509_free);
    long life = tls_creds_not_after(c) - tls_creds_not_before(c);
    assert_true(life >= 3600 && life <= 3600 + 120);
    tls_creds_unref(c);
    free(req);
    free(resp);

    /* A short lifetime is backdated by a quarter at most, so half-life stays ahead. */
    assert_int_equal(casvc_request(ID_CLIENT, 60, &key, &req, &len), 0);
    assert_int_equal(casvc_sign(ca, &policy, "node-1", req, len, &resp, &rlen, &res),
                     GRPC_STATUS_OK);
    c = casvc_response(resp, rlen, ID_CLIENT, key, NULL, NULL, err, sizeof(err));
    assert_non_null(c);
    long now = (long)time(NULL);
    long half = tls_creds_not_before(c) + (tls_creds_not_after(c) - tls_creds_not_before(c)) / 2;
    assert_true(now - tls_creds_not_before(c) <= 16);
    assert_true(half - now >= 20);
    tls_creds_unref(c);
    free(req);
    free(resp);

    /* A long request is capped at the policy maximum. */
    assert_int_equal(casvc_request(ID_CLIENT, 90L * 86400, &key, &req, &len), 0);
    assert_int_equal(casvc_sign(ca, &policy, "node-1", req, len, &resp, &rlen, &res),
                     GRPC_STATUS_OK);
    assert_int_equal(res.ttl, 7200);
    EVP_PKEY_free(key);
    free(req);
    free(resp);
    ca_free(ca);
}

static void
expect_refused(struct ca *ca, const char *node, const uint8_t *req, size_t len, int status,
               const char *why)
{
    uint8_t *resp = (uint8_t *)"x";
    size_t rlen = 1;
    struct casvc_result res;
    int rc = casvc_sign(ca, &policy, node, req, len, &resp, &rlen, &res);
    assert_int_equal(rc, status);
    assert_null(resp);
    assert_int_equal(rlen, 0);
    if (strstr(res.why, why) == NULL)
        fail_msg("refused with \"%s\", wanted \"%s\"", res.why, why);
}

/* A request with a hand-made CSR and an optional impersonated identity. */
static uint8_t *
raw_request(const char *csr, const char *imp, long ttl, size_t *len)
{
    Google__Protobuf__Value v = GOOGLE__PROTOBUF__VALUE__INIT;
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v.string_value = (char *)imp;
    Google__Protobuf__Struct__FieldsEntry f = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    f.key = (char *)CASVC_IMPERSONATE;
    f.value = &v;
    Google__Protobuf__Struct__FieldsEntry *fields[1] = {&f};
    Google__Protobuf__Struct md = GOOGLE__PROTOBUF__STRUCT__INIT;
    md.n_fields = 1;
    md.fields = fields;
    Istio__V1__Auth__IstioCertificateRequest r = ISTIO__V1__AUTH__ISTIO_CERTIFICATE_REQUEST__INIT;
    r.csr = (char *)csr;
    r.validity_duration = ttl;
    r.metadata = imp ? &md : NULL;
    *len = istio__v1__auth__istio_certificate_request__get_packed_size(&r);
    uint8_t *out = malloc(*len + 1);
    istio__v1__auth__istio_certificate_request__pack(&r, out);
    return out;
}

static char *
csr_with(EVP_PKEY *k, const char *san)
{
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
    BIO *bio = BIO_new(BIO_s_mem());
    char *p;
    sk_X509_EXTENSION_push(exts, e);
    X509_REQ_add_extensions(req, exts);
    X509_REQ_set_pubkey(req, k);
    assert_true(X509_REQ_sign(req, k, EVP_sha256()) > 0);
    PEM_write_bio_X509_REQ(bio, req);
    long n = BIO_get_mem_data(bio, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(bio);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    return out;
}

static void
test_refusals(void **state)
{
    (void)state;
    struct ca *ca = ca_generate("mesh", 86400);
    EVP_PKEY *p256 = ca_new_key(), *rsa = EVP_RSA_gen(2048);
    uint8_t *req;
    size_t len;
    char *csr;

    /* Another node asks for node-1's identity; an identity with no pod on the node. */
    csr = csr_create(p256, ID_CLIENT);
    req = raw_request(csr, ID_CLIENT, 0, &len);
    expect_refused(ca, "node-2", req, len, GRPC_STATUS_UNAUTHENTICATED, "no pod on node node-2");
    free(req);
    free(csr);
    csr = csr_create(p256, ID_ADMIN);
    req = raw_request(csr, ID_ADMIN, 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_UNAUTHENTICATED,
                   "runs as service account kube-system/admin");
    free(req);
    free(csr);
    /* The CSR names one identity, the metadata another. */
    csr = csr_create(p256, ID_ADMIN);
    req = raw_request(csr, ID_CLIENT, 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_UNAUTHENTICATED, "differs");
    free(req);
    free(csr);
    /* Two SANs; an RSA key; another trust domain; a bad impersonation; negative TTL. */
    csr = csr_with(p256, "URI:" ID_CLIENT ",URI:" ID_ADMIN);
    req = raw_request(csr, ID_CLIENT, 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_INVALID_ARGUMENT, "exactly one URI");
    free(req);
    free(csr);
    csr = csr_with(rsa, "URI:" ID_CLIENT);
    req = raw_request(csr, ID_CLIENT, 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_INVALID_ARGUMENT, "P-256");
    free(req);
    free(csr);
    csr = csr_create(p256, "spiffe://evil.example/ns/default/sa/client");
    req = raw_request(csr, NULL, 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_UNAUTHENTICATED, "outside trust domain");
    free(req);
    free(csr);
    csr = csr_create(p256, ID_CLIENT);
    req = raw_request(csr, "not-spiffe", 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_INVALID_ARGUMENT, "not a SPIFFE ID");
    free(req);
    req = raw_request(csr, ID_CLIENT, -5, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_INVALID_ARGUMENT, "negative");
    free(req);
    free(csr);
    /* Garbage and empty requests. */
    expect_refused(ca, "node-1", (const uint8_t *)"\xff\xff\xff", 3, GRPC_STATUS_INVALID_ARGUMENT,
                   "does not decode");
    /*
     * metadata (field 4, a Struct) nested 60 levels: refused before protobuf-c
     * sees it, and marked malformed so meshd may tell the caller why.
     */
    uint8_t deep[6 + 120] = {0x22, 0x7c, 0x0a, 0x7a, 0x12, 0x78};
    for (size_t i = 0; i < 120; i += 2) {
        deep[6 + i] = i % 4 == 0 ? 0x32 : 0x0a; /* Value.list_value, ListValue.values */
        deep[6 + i + 1] = (uint8_t)(120 - i - 2);
    }
    expect_refused(ca, "node-1", deep, sizeof(deep), GRPC_STATUS_INVALID_ARGUMENT,
                   "request does not decode: nested deeper than 32 messages");
    struct casvc_result res;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    casvc_sign(ca, &policy, "node-1", deep, sizeof(deep), &resp, &rlen, &res);
    assert_true(res.malformed);
    req = raw_request("", NULL, 0, &len);
    casvc_sign(ca, &policy, "node-1", req, len, &resp, &rlen, &res);
    assert_false(res.malformed); /* it decodes; the CSR is what is wrong */
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_INVALID_ARGUMENT, "CSR missing");
    free(req);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(rsa);
    ca_free(ca);
}

/* The proxy refuses answers it did not ask for. */
static void
test_client_checks(void **state)
{
    (void)state;
    struct ca *ca = ca_generate("mesh", 86400), *other = ca_generate("other", 86400);
    EVP_PKEY *key, *key2;
    uint8_t *req, *resp;
    size_t len, rlen;
    struct casvc_result res;
    char err[256];

    assert_int_equal(casvc_request(ID_CLIENT, 0, &key, &req, &len), 0);
    assert_int_equal(casvc_sign(ca, &policy, "node-1", req, len, &resp, &rlen, &res), 0);
    /* Wrong identity expected, another key. */
    assert_null(casvc_response(resp, rlen, ID_ADMIN, key, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "asked for"));
    key2 = ca_new_key();
    assert_null(casvc_response(resp, rlen, ID_CLIENT, key2, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "another key"));
    /* A chain whose root is not the signer. */
    Istio__V1__Auth__IstioCertificateResponse *r =
        istio__v1__auth__istio_certificate_response__unpack(NULL, rlen, resp);
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    PEM_write_bio_X509(b, ca_root(other));
    long n = BIO_get_mem_data(b, &p);
    char *swapped = strndup(p, (size_t)n);
    BIO_free(b);
    char *keep = r->cert_chain[1];
    r->cert_chain[1] = swapped;
    size_t blen = istio__v1__auth__istio_certificate_response__get_packed_size(r);
    uint8_t *bad = malloc(blen);
    istio__v1__auth__istio_certificate_response__pack(r, bad);
    assert_null(casvc_response(bad, blen, ID_CLIENT, key, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "does not verify"));
    r->cert_chain[1] = keep;
    free(swapped);
    free(bad);
    /* A leaf alone, and garbage. */
    r->n_cert_chain = 1;
    blen = istio__v1__auth__istio_certificate_response__get_packed_size(r);
    bad = malloc(blen);
    istio__v1__auth__istio_certificate_response__pack(r, bad);
    assert_null(casvc_response(bad, blen, ID_CLIENT, key, NULL, NULL, err, sizeof(err)));
    r->n_cert_chain = 2;
    free(bad);
    istio__v1__auth__istio_certificate_response__free_unpacked(r, NULL);
    assert_null(casvc_response((const uint8_t *)"\x0a\x03" "abc", 5, ID_CLIENT, key, NULL, NULL,
                               err, sizeof(err)));
    /* The key survives every refusal and is still good for the real answer. */
    struct tls_creds *c = casvc_response(resp, rlen, ID_CLIENT, key, NULL, NULL, err, sizeof(err));
    assert_non_null(c);
    tls_creds_unref(c);
    EVP_PKEY_free(key2);
    free(req);
    free(resp);
    ca_free(ca);
    ca_free(other);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_roundtrip),
        cmocka_unit_test(test_token_audience),
        cmocka_unit_test(test_token_generation),
        cmocka_unit_test(test_token_gens_file),
        cmocka_unit_test(test_token_malformed),
        cmocka_unit_test(test_token_file_pick),
        cmocka_unit_test(test_token_file_kind),
        cmocka_unit_test(test_token_node_names),
        cmocka_unit_test(test_sign_and_accept),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_client_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
