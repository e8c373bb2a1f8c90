/*
 * kubeauth.h - Kubernetes service-account tokens as CA and xDS credentials,
 * the way istiod takes them (reference istio-ambient.md 4.2), without I/O:
 *
 *   1. the TokenReview meshd sends for a bearer token (audience istio-ca),
 *   2. what the API server's answer says: a service account NS/SA whose token
 *      is bound to pod NAME with UID (kubeauth_review_parse),
 *   3. what the store says of that pod: its node, and whether the account is a
 *      trusted node account that may obtain other identities on that node
 *      (kubeauth_decide; the NodeAuthorizer of istiod's node_auth.go),
 *   4. a capped cache of answers keyed by the token's SHA-256, so a ztunnel's
 *      calls do not each cost a review (kubeauth_cache_*).
 *
 * Tokens are secrets: nothing here keeps or reports one, only its digest.
 * Reasons ("why") are for meshd's log; callers only learn "refused".
 */
#ifndef MESH_LIB_KUBEAUTH_H
#define MESH_LIB_KUBEAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define KUBEAUTH_AUDIENCE "istio-ca"
#define KUBEAUTH_REVIEW_PATH "/apis/authentication.k8s.io/v1/tokenreviews"
#define KUBEAUTH_MAX_TOKEN 16384        /* a projected token is ~1 KiB; more is not sent */
#define KUBEAUTH_MAX_ANSWER (256u << 10) /* a TokenReview answer parsed from bytes */
#define KUBEAUTH_NS_MAX 63              /* a namespace is a DNS label */
#define KUBEAUTH_NAME_MAX 253           /* service accounts, pods, nodes: DNS subdomains */
#define KUBEAUTH_UID_MAX 128
#define KUBEAUTH_WHY_MAX 256
/* The extras a bound token carries (kube-apiserver's serviceaccount authenticator). */
#define KUBEAUTH_EXTRA_POD_NAME "authentication.kubernetes.io/pod-name"
#define KUBEAUTH_EXTRA_POD_UID "authentication.kubernetes.io/pod-uid"
#define KUBEAUTH_SA_PREFIX "system:serviceaccount:"

/* Who an authenticated token belongs to. */
struct kubeauth_identity {
    char ns[KUBEAUTH_NS_MAX + 1];
    char sa[KUBEAUTH_NAME_MAX + 1];
    char pod[KUBEAUTH_NAME_MAX + 1];
    char pod_uid[KUBEAUTH_UID_MAX + 1];
};

/*
 * True if |tok| (|len| bytes) may be sent for review at all: 1 to
 * KUBEAUTH_MAX_TOKEN bytes of the base64url alphabet and dots (a JWS in
 * compact form), so nothing a peer sends can change the request's JSON.
 */
bool kubeauth_token_plausible(const char *tok, size_t len);

/* The TokenReview request body for |tok| (|len| bytes), audience istio-ca. */
json_t *kubeauth_review_request(const char *tok, size_t len);

/*
 * Reads a TokenReview answer |body|. Returns 0 with |out| filled when it
 * says: status.authenticated true, status.audiences include istio-ca,
 * username system:serviceaccount:NS:SA (a valid namespace and account
 * name), and exactly one pod-name and one pod-uid extra. Otherwise -1 with
 * |why| (the server's status.error, cut and cleaned, when it gave one).
 */
int kubeauth_review_parse(const json_t *body, struct kubeauth_identity *out, char *why,
                          size_t whylen);
/* The same for |len| bytes of JSON (at most KUBEAUTH_MAX_ANSWER). */
int kubeauth_review_parse_buf(const char *buf, size_t len, struct kubeauth_identity *out,
                              char *why, size_t whylen);

/*
 * The "exp" claim of a JWS in compact form, read without checking the
 * signature (the review did): only to cache an answer no longer than the
 * token lives. Returns false when there is none.
 */
bool kubeauth_token_expiry(const char *tok, size_t len, int64_t *exp);

/* ---- Trusted node accounts (--ca-trusted-node-accounts) ---- */

#define KUBEAUTH_MAX_ACCOUNTS 64
#define KUBEAUTH_DEFAULT_TRUSTED "istio-system/ztunnel"

struct kubeauth_accounts {
    size_t n;
    struct {
        char ns[KUBEAUTH_NS_MAX + 1];
        char sa[KUBEAUTH_NAME_MAX + 1];
    } v[KUBEAUTH_MAX_ACCOUNTS];
};

/* "ns/sa,ns/sa" (spaces around entries allowed; "" is none). 0, or -1 with |err|. */
int kubeauth_accounts_parse(const char *s, struct kubeauth_accounts *out, char *err, size_t errlen);
bool kubeauth_accounts_has(const struct kubeauth_accounts *a, const char *ns, const char *sa);

/* ---- The decision ---- */

struct k8s_store;

struct kubeauth_caller {
    struct kubeauth_identity id;
    char node[KUBEAUTH_NAME_MAX + 1]; /* spec.nodeName of the caller's pod */
    bool trusted; /* a trusted node account: may obtain identities of pods on its node */
};

/*
 * The caller |id| as the store |st| sees it now: its pod must exist with the
 * token's UID and service account, not have terminated, and be bound to a
 * node. Returns 0 with |out| filled, or -1 with |why|.
 */
int kubeauth_decide(const struct kubeauth_identity *id, const struct k8s_store *st,
                    const struct kubeauth_accounts *trusted, struct kubeauth_caller *out,
                    char *why, size_t whylen);

/*
 * May |c| obtain a certificate for |ns|/|sa|? A trusted node account: when a
 * pod that has not terminated on its node runs as that account (the node
 * restriction, k8s_sa_on_node). Anyone else: only its own account. False
 * with |why|.
 */
bool kubeauth_may_obtain(const struct kubeauth_caller *c, const struct k8s_store *st,
                         const char *ns, const char *sa, char *why, size_t whylen);

/* ---- The cache of answers ---- */

#define KUBEAUTH_DIGEST_LEN 32
#define KUBEAUTH_CACHE_POSITIVE_MS 60000 /* at most; never past the token's exp */
#define KUBEAUTH_CACHE_NEGATIVE_MS 5000

struct kubeauth_cache;

/* Holds at most |max_entries| answers (rounded up to a power of two, at least 16). */
struct kubeauth_cache *kubeauth_cache_new(size_t max_entries);
void kubeauth_cache_free(struct kubeauth_cache *c);
/* SHA-256 of the token: the only form in which it is kept. */
void kubeauth_digest(const char *tok, size_t len, uint8_t out[KUBEAUTH_DIGEST_LEN]);

/*
 * The answer cached for |digest| at |now_ms|: 1 authenticated (|id| filled),
 * 0 refused (|why| filled), -1 none (absent or expired).
 */
int kubeauth_cache_get(struct kubeauth_cache *c, const uint8_t digest[KUBEAUTH_DIGEST_LEN],
                       uint64_t now_ms, struct kubeauth_identity *id, char *why, size_t whylen);
/*
 * Keeps an answer until |expires_ms|: |id| for an authenticated token, NULL
 * for a refused one (with |why|). A full neighbourhood loses its entry that
 * expires first.
 */
void kubeauth_cache_put(struct kubeauth_cache *c, const uint8_t digest[KUBEAUTH_DIGEST_LEN],
                        uint64_t expires_ms, const struct kubeauth_identity *id, const char *why);
size_t kubeauth_cache_len(const struct kubeauth_cache *c);

#endif
