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

#define TOKEN_PREFIX "v1:"

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

int
token_mint(const uint8_t key[TOKEN_KEY_LEN], const char *node, int64_t expires, char *out,
           size_t outlen)
{
    char hex[65];
    if (!token_node_valid(node) || expires <= 0)
        return -EINVAL;
    int n = snprintf(out, outlen, TOKEN_PREFIX "%s:%" PRId64, node, expires);
    if (n < 0 || (size_t)n + 66 > outlen || mac_hex(key, out, (size_t)n, hex) < 0)
        return -EINVAL;
    snprintf(out + n, outlen - (size_t)n, ":%s", hex);
    return 0;
}

int
token_verify(const uint8_t key[TOKEN_KEY_LEN], const char *tok, size_t len, int64_t now,
             char *node, const char **why)
{
    char copy[TOKEN_MAX_LEN + 1], hex[65];

    *why = "malformed token";
    if (len < sizeof(TOKEN_PREFIX) || len > TOKEN_MAX_LEN || memchr(tok, 0, len) != NULL ||
        memcmp(tok, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0)
        return -MESH_EDENIED;
    memcpy(copy, tok, len);
    copy[len] = '\0';
    /* The MAC is the last field; it covers everything before its colon. */
    char *mac = strrchr(copy, ':');
    if (mac == NULL || strlen(mac + 1) != 64)
        return -MESH_EDENIED;
    if (mac_hex(key, copy, (size_t)(mac - copy), hex) < 0)
        return -MESH_EDENIED;
    if (CRYPTO_memcmp(hex, mac + 1, 64) != 0) {
        *why = "token signature does not verify";
        return -MESH_EDENIED;
    }
    *mac = '\0';
    char *exp = strrchr(copy, ':');
    char *name = copy + strlen(TOKEN_PREFIX);
    if (exp == NULL || exp < name)
        return -MESH_EDENIED;
    *exp++ = '\0';
    char *end;
    errno = 0;
    long long e = strtoll(exp, &end, 10);
    if (*exp == '\0' || *end != '\0' || errno != 0 || e <= 0 || !token_node_valid(name))
        return -MESH_EDENIED;
    if (e <= now) {
        *why = "token expired";
        return -MESH_EDENIED;
    }
    memcpy(node, name, strlen(name) + 1);
    *why = NULL;
    return 0;
}
