/*
 * fuzz_casvc.c - what the certificate service reads from peers. The first
 * byte picks the reader, the rest is its input:
 *   0: a node token as meshd receives it (token_verify, key of 32 zero bytes)
 *   1: a CreateCertificate request body as the CA receives it (casvc_sign)
 *   2: a CreateCertificate response as ztunnel receives it (casvc_response)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "casvc/casvc.h"
#include "casvc/token.h"

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
    char node[TOKEN_NODE_MAX + 1];
    const char *why = NULL;

    int rc = token_verify(key, (const char *)p, n, 1000000000, node, &why);
    if (rc == 0 && !token_node_valid(node))
        abort(); /* an accepted token names a well-formed node */
    if (rc != 0 && why == NULL)
        abort(); /* every refusal says why */
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
    switch (data[0] % 3) {
    case 0:
        fuzz_token(data + 1, size - 1);
        break;
    case 1:
        fuzz_sign(data + 1, size - 1);
        break;
    default:
        fuzz_response(data + 1, size - 1);
        break;
    }
    return 0;
}
