/*
 * fuzz_casvc.c - what the certificate service reads from peers. The first
 * byte picks the reader, the rest is its input:
 *   0: a node token as meshd receives it (token_verify, key of 32 zero bytes,
 *      node-1 at generation 1, every other node at 0), and as ztunnel reads it
 *      (token_parse)
 *   1: a CreateCertificate request body as the CA receives it (casvc_sign)
 *   2: a CreateCertificate response as ztunnel receives it (casvc_response)
 *   3: a token-generations file (token_gens_parse) and a token file
 *      (token_file_pick)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "casvc/casvc.h"
#include "casvc/token.h"
#include "casvc/token_gens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NODE "node-1"
#define ID "spiffe://cluster.local/ns/default/sa/client"

/* Only pods of NODE run as the client account, as meshd's pod index would say. */
static bool
authorize(void *arg, const char *node, const struct spiffe_id *id)
{
    (void)arg;
    return strcmp(node, NODE) == 0 && strcmp(id->uri, ID) == 0;
}

static void
fuzz_token(const uint8_t *p, size_t n)
{
    static const uint8_t key[TOKEN_KEY_LEN];
    static struct token_gens *gens;
    static const int64_t now = 1000000000;
    struct token_claims c, pc;
    const char *why = NULL, *pwhy = NULL;

    if (gens == NULL && (gens = token_gens_parse("node-1 1\n", 9, NULL, 0)) == NULL)
        abort();
    for (enum token_aud want = TOKEN_AUD_ANY; want <= TOKEN_AUD_CA; want++) {
        int rc = token_verify(key, gens, (const char *)p, n, now, want, &c, &why);
        if (rc != 0 && why == NULL)
            abort(); /* every refusal says why */
        if (rc != 0)
            continue;
        /* Accepted: a well-formed node, the audience asked for, alive, current generation. */
        if (!token_node_valid(c.node) || (want != TOKEN_AUD_ANY && c.aud != want) ||
            c.expires <= now || c.gen != token_gens_get(gens, c.node))
            abort();
        /* ztunnel's keyless reading agrees with meshd's. */
        if (token_parse((const char *)p, n, &pc, &pwhy) != 0 || pc.aud != c.aud ||
            strcmp(pc.node, c.node) != 0 || pc.gen != c.gen || pc.expires != c.expires ||
            pc.issued != c.issued)
            abort();
    }
    if (token_parse((const char *)p, n, &pc, &pwhy) == 0 &&
        (!token_node_valid(pc.node) || pc.expires <= pc.issued ||
         pc.expires - pc.issued > TOKEN_MAX_TTL))
        abort();
}

static void
fuzz_files(const uint8_t *p, size_t n)
{
    char err[400] = "";
    const char *tok;
    size_t len;
    struct token_gens *g = token_gens_parse((const char *)p, n, err, sizeof(err));
    if (g == NULL && err[0] == '\0')
        abort();
    if (g != NULL) {
        /* What parses formats back to a table that parses the same. */
        char *text = token_gens_format(g);
        struct token_gens *h = token_gens_parse(text, strlen(text), err, sizeof(err));
        if (h == NULL || token_gens_count(h) != token_gens_count(g))
            abort();
        char *again = token_gens_format(h);
        if (strcmp(text, again) != 0)
            abort();
        free(again);
        free(text);
        token_gens_free(h);
        token_gens_free(g);
    }
    for (enum token_aud a = TOKEN_AUD_XDS; a <= TOKEN_AUD_CA; a++)
        if (token_file_pick((const char *)p, n, a, &tok, &len) == 0 &&
            (tok < (const char *)p || tok + len > (const char *)p + n || len == 0))
            abort();
}

static void
fuzz_sign(const uint8_t *p, size_t n)
{
    static struct ca *ca; /* one CA for the whole run: generating keys per input is slow */
    static const struct casvc_policy pol = {
        .trust_domain = "cluster.local",
        .default_ttl = 3600,
        .max_ttl = 7200,
        .authorize = authorize,
    };
    struct casvc_result res;
    uint8_t *resp = NULL;
    size_t len = 0;

    if (ca == NULL && (ca = ca_generate("fuzz", 86400)) == NULL)
        abort();
    int st = casvc_sign(ca, &pol, NODE, p, n, &resp, &len, &res);
    if (st == 0) {
        /* Granted: only the one identity the node may hold, within the cap. */
        if (resp == NULL || !res.have_id || strcmp(res.id.uri, ID) != 0 || res.ttl > pol.max_ttl)
            abort();
        free(resp);
    } else if (res.why[0] == '\0') {
        abort();
    }
}

static void
fuzz_response(const uint8_t *p, size_t n)
{
    STACK_OF(X509) *roots = NULL;
    char err[256] = "";
    EVP_PKEY *key = ca_new_key();

    if (key == NULL)
        abort();
    struct tls_creds *c = casvc_response(p, n, ID, key, NULL, &roots, err, sizeof(err));
    /* |key| is new: no certificate in the input can hold its public half. */
    if (c != NULL || roots != NULL || err[0] == '\0')
        abort();
    EVP_PKEY_free(key);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 4) {
    case 0:
        fuzz_token(data + 1, size - 1);
        break;
    case 1:
        fuzz_sign(data + 1, size - 1);
        break;
    case 2:
        fuzz_response(data + 1, size - 1);
        break;
    default:
        fuzz_files(data + 1, size - 1);
        break;
    }
    return 0;
}
