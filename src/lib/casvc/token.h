/*
 * token.h - node credentials: what a ztunnel presents to meshd as
 * "authorization: Bearer <token>" on xDS, CA and token-renewal calls.
 *
 * A token names an audience, one node, the node's revocation generation, when
 * it was issued and when it expires, and is signed with HMAC-SHA256 under a
 * key only meshd holds (token-key in its state directory):
 *
 *   v2:<aud>:<node>:<gen>:<issued>:<expires>:<64 hex digits of HMAC(everything before)>
 *
 * aud is "xds" (meshd's xDS server accepts only these) or "ca" (only the CA
 * accepts these), so a credential taken from one path does not open the
 * other. gen must equal the node's current generation (token_gens.h):
 * `meshd token --revoke` bumps it, and every older token of that node is dead.
 * Lifetimes are short (a day by default); a ztunnel renews each token with
 * itself at half-life (TOKEN_RENEW_METHOD), keeping the lifetime it was
 * issued with. Times are unix seconds; numbers are canonical decimal.
 *
 * The v1 format ("v1:<node>:<expires>:<mac>", a year by default, no audience,
 * no generation) is refused: it could be neither scoped nor revoked per node.
 *
 * A token file holds one token per line (`meshd token` writes the xds line,
 * then the ca line); token_file_pick() finds the one for an audience.
 */
#ifndef MESH_LIB_TOKEN_H
#define MESH_LIB_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_KEY_LEN 32
#define TOKEN_MAX_LEN 512
#define TOKEN_NODE_MAX 253 /* a DNS subdomain, as Kubernetes node names are */
#define TOKEN_DEFAULT_TTL (24L * 3600)
#define TOKEN_MIN_TTL 10L
#define TOKEN_MAX_TTL (30L * 86400) /* renewable: nothing needs to live longer */
#define TOKEN_FILE_MAX 4096         /* a node-token file a ztunnel reads */
/* A Kubernetes service-account token file (a projected token is ~1 KiB); meshd sends no more
 * for review either (KUBEAUTH_MAX_TOKEN). */
#define TOKEN_JWT_MAX 16384
#define TOKEN_BEARER_MAX (TOKEN_JWT_MAX + 8) /* "Bearer <token>" and its NUL, either kind */

/* gRPC method: the bearer token (any audience) in, a fresh one of the same audience out. */
#define TOKEN_RENEW_METHOD "/amesh.token.v1.NodeToken/Renew"

enum token_aud {
    TOKEN_AUD_ANY = 0, /* token_verify(): whichever the token names */
    TOKEN_AUD_XDS = 1,
    TOKEN_AUD_CA = 2,
};

struct token_claims {
    enum token_aud aud;
    char node[TOKEN_NODE_MAX + 1];
    uint64_t gen;
    int64_t issued, expires;
};

/* True if |node| is a valid node name: 1-253 of [a-z0-9.-], starting and ending alphanumeric. */
bool token_node_valid(const char *node);
/* "xds", "ca" (NULL for anything else); and back (TOKEN_AUD_ANY when unknown). */
const char *token_aud_name(enum token_aud aud);
enum token_aud token_aud_parse(const char *s);

/*
 * Writes a token for |c| (audience, node, generation, issued < expires, at
 * most TOKEN_MAX_TTL apart) into |out|. Returns 0 or -EINVAL.
 */
int token_mint(const uint8_t key[TOKEN_KEY_LEN], const struct token_claims *c, char *out,
               size_t outlen);

/*
 * Reads the fields of a v2 token of |len| bytes without checking its MAC
 * (a ztunnel does not hold the key: it only wants to know when to renew).
 * Returns 0, or -MESH_EDENIED with |why| set to a static reason.
 */
int token_parse(const char *tok, size_t len, struct token_claims *c, const char **why);

struct token_gens;

/*
 * Checks |len| bytes of |tok| at time |now|: format, MAC, audience (|want|,
 * or TOKEN_AUD_ANY), expiry and generation against |gens| (NULL: every node
 * at generation 0). Returns 0 with |c| filled, or -MESH_EDENIED with |why|
 * set to a static reason (for the log; peers get an opaque error).
 */
int token_verify(const uint8_t key[TOKEN_KEY_LEN], const struct token_gens *gens, const char *tok,
                 size_t len, int64_t now, enum token_aud want, struct token_claims *c,
                 const char **why);

/*
 * The token for |aud| in the text of a token file: the line that names it,
 * or, when the file holds a single line of another kind (an opaque token),
 * that line. Returns 0 with |*tok|, |*toklen| pointing into |text|, or -1.
 */
int token_file_pick(const char *text, size_t len, enum token_aud aud, const char **tok,
                    size_t *toklen);

/*
 * What a token file (|len| bytes of |text|, which may be up to TOKEN_JWT_MAX
 * plus surrounding white space) holds:
 *   TOKEN_FILE_NODE  meshd's node-token file (at most TOKEN_FILE_MAX bytes):
 *                    token_file_pick() finds each audience's token in it;
 *   TOKEN_FILE_JWT   one Kubernetes service-account token (a JWS in compact
 *                    form, at most TOKEN_JWT_MAX bytes), white space around it
 *                    dropped: |*tok|, |*toklen| point into |text|. It serves
 *                    both audiences; the kubelet, not meshd, renews it;
 *   TOKEN_FILE_BAD   neither: |why| says what is wrong ("is empty", too large,
 *                    where a would-be JWT breaks), never quoting the file.
 */
enum token_file_kind {
    TOKEN_FILE_BAD = -1,
    TOKEN_FILE_NODE = 1,
    TOKEN_FILE_JWT = 2,
};
enum token_file_kind token_file_kind(const char *text, size_t len, const char **tok,
                                     size_t *toklen, char *why, size_t whylen);

#endif
