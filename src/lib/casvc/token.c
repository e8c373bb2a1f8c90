/*
 * token.c - HMAC-signed node credentials (see token.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/base.h"
#include "casvc/token.h"
#include "casvc/token_gens.h"

#define TOKEN_PREFIX "v2:"
#define TOKEN_FIELDS 7 /* v2 aud node gen issued expires mac */
#define TOKEN_MAC_HEX 64

bool
token_node_valid(const char *node)
{
    size_t n = strlen(node);
    if (n == 0 || n > TOKEN_NODE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = node[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !((c == '-' || c == '.') && i > 0 && i + 1 < n))
            return false;
    }
    return true;
}

const char *
token_aud_name(enum token_aud aud)
{
    switch (aud) {
    case TOKEN_AUD_XDS: return "xds";
    case TOKEN_AUD_CA: return "ca";
    default: return NULL;
    }
}

enum token_aud
token_aud_parse(const char *s)
{
    if (strcmp(s, "xds") == 0)
        return TOKEN_AUD_XDS;
    if (strcmp(s, "ca") == 0)
        return TOKEN_AUD_CA;
    return TOKEN_AUD_ANY;
}

static int
mac_hex(const uint8_t key[TOKEN_KEY_LEN], const char *msg, size_t len, char hex[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    if (HMAC(EVP_sha256(), key, TOKEN_KEY_LEN, (const unsigned char *)msg, len, mac, &mlen) ==
            NULL ||
        mlen != 32)
        return -EINVAL;
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

static bool
claims_ok(const struct token_claims *c)
{
    return token_aud_name(c->aud) != NULL && token_node_valid(c->node) && c->issued > 0 &&
           c->expires > c->issued && c->expires - c->issued <= TOKEN_MAX_TTL &&
           c->gen <= INT64_MAX;
}

int
token_mint(const uint8_t key[TOKEN_KEY_LEN], const struct token_claims *c, char *out,
           size_t outlen)
{
    char hex[65];
    if (!claims_ok(c))
        return -EINVAL;
    int n = snprintf(out, outlen, TOKEN_PREFIX "%s:%s:%" PRIu64 ":%" PRId64 ":%" PRId64,
                     token_aud_name(c->aud), c->node, c->gen, c->issued, c->expires);
    if (n < 0 || (size_t)n + 2 + TOKEN_MAC_HEX > outlen ||
        (size_t)n + 1 + TOKEN_MAC_HEX > TOKEN_MAX_LEN || mac_hex(key, out, (size_t)n, hex) < 0) {
        if (outlen > 0)
            out[0] = '\0'; /* never half a token */
        return -EINVAL;
    }
    snprintf(out + n, outlen - (size_t)n, ":%s", hex);
    return 0;
}

/* Canonical decimal: 1-19 digits, no sign, no leading zero; fits an int64. */
static bool
parse_num(const char *s, uint64_t *v)
{
    size_t n = strlen(s);
    if (n == 0 || n > 19 || (n > 1 && s[0] == '0'))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    if (x > INT64_MAX)
        return false;
    *v = x;
    return true;
}

/*
 * Splits a copy of |tok| into its fields. |copy| holds TOKEN_MAX_LEN + 1
 * bytes; on success |signed_len| is the length of the signed part.
 */
static int
split(const char *tok, size_t len, char *copy, char *f[TOKEN_FIELDS], size_t *signed_len,
      const char **why)
{
    *why = "malformed token";
    if (len == 0 || len > TOKEN_MAX_LEN || memchr(tok, 0, len) != NULL)
        return -MESH_EDENIED;
    if (len >= 3 && memcmp(tok, "v1:", 3) == 0) {
        *why = "v1 token (no audience, no generation): issue a new one with meshd token";
        return -MESH_EDENIED;
    }
    if (len < strlen(TOKEN_PREFIX) || memcmp(tok, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0)
        return -MESH_EDENIED;
    memcpy(copy, tok, len);
    copy[len] = '\0';
    size_t k = 0;
    for (char *p = copy;; p++) {
        if (k == TOKEN_FIELDS)
            return -MESH_EDENIED; /* a colon too many */
        f[k++] = p;
        p = strchr(p, ':');
        if (p == NULL)
            break;
        *p = '\0';
    }
    if (k != TOKEN_FIELDS || strlen(f[6]) != TOKEN_MAC_HEX)
        return -MESH_EDENIED;
    *signed_len = (size_t)(f[6] - 1 - copy);
    return 0;
}

static int
fill(char *f[TOKEN_FIELDS], struct token_claims *c, const char **why)
{
    uint64_t gen, iss, exp;
    *why = "malformed token";
    c->aud = token_aud_parse(f[1]);
    if (c->aud == TOKEN_AUD_ANY || strlen(f[2]) > TOKEN_NODE_MAX || !parse_num(f[3], &gen) ||
        !parse_num(f[4], &iss) || !parse_num(f[5], &exp))
        return -MESH_EDENIED;
    memcpy(c->node, f[2], strlen(f[2]) + 1);
    c->gen = gen;
    c->issued = (int64_t)iss;
    c->expires = (int64_t)exp;
    if (!claims_ok(c))
        return -MESH_EDENIED;
    for (const char *h = f[6]; *h; h++)
        if (!((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f')))
            return -MESH_EDENIED;
    *why = NULL;
    return 0;
}

int
token_parse(const char *tok, size_t len, struct token_claims *c, const char **why)
{
    char copy[TOKEN_MAX_LEN + 1], *f[TOKEN_FIELDS];
    size_t signed_len;
    int rc = split(tok, len, copy, f, &signed_len, why);
    return rc < 0 ? rc : fill(f, c, why);
}

int
token_verify(const uint8_t key[TOKEN_KEY_LEN], const struct token_gens *gens, const char *tok,
             size_t len, int64_t now, enum token_aud want, struct token_claims *c,
             const char **why)
{
    char copy[TOKEN_MAX_LEN + 1], hex[65], *f[TOKEN_FIELDS];
    size_t signed_len;

    if (split(tok, len, copy, f, &signed_len, why) < 0)
        return -MESH_EDENIED;
    /* The signature first: nothing unsigned is interpreted, or logged as meaningful. */
    if (mac_hex(key, tok, signed_len, hex) < 0)
        return -MESH_EDENIED;
    if (CRYPTO_memcmp(hex, f[6], TOKEN_MAC_HEX) != 0) {
        *why = "token signature does not verify";
        return -MESH_EDENIED;
    }
    if (fill(f, c, why) < 0)
        return -MESH_EDENIED;
    if (want != TOKEN_AUD_ANY && c->aud != want) {
        *why = want == TOKEN_AUD_XDS ? "token is for the CA, not xDS" : "token is for xDS, not the CA";
        return -MESH_EDENIED;
    }
    if (c->expires <= now) {
        *why = "token expired";
        return -MESH_EDENIED;
    }
    uint64_t cur = gens ? token_gens_get(gens, c->node) : 0;
    if (c->gen != cur) {
        *why = c->gen < cur ? "token revoked (older generation)" : "token from a future generation";
        return -MESH_EDENIED;
    }
    *why = NULL;
    return 0;
}

int
token_file_pick(const char *text, size_t len, enum token_aud aud, const char **tok,
                size_t *toklen)
{
    char want[8];
    const char *only = NULL;
    size_t only_len = 0, lines = 0;
    snprintf(want, sizeof(want), TOKEN_PREFIX "%s:", token_aud_name(aud) ? token_aud_name(aud) : "?");
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - i;
        const char *line = text + i;
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        if (n > 0) {
            lines++;
            if (n > strlen(want) && memcmp(line, want, strlen(want)) == 0) {
                *tok = line;
                *toklen = n;
                return 0;
            }
            only = line;
            only_len = n;
        }
        i = end + 1;
    }
    /* A single token of another kind is taken as it is: meshd says whether it is good. */
    if (lines == 1 && memcmp(only, TOKEN_PREFIX, only_len < 3 ? only_len : 3) != 0) {
        *tok = only;
        *toklen = only_len;
        return 0;
    }
    return -1;
}
