/*
 * casvc.h - Istio's certificate service (istio.v1.auth.IstioCertificateService,
 * reference 4.1-4.4) without I/O: the CA's decision and signing on one side,
 * a node proxy's request and response checks on the other.
 *
 * The CA grants an identity only when the authenticated caller's node runs a
 * workload with that identity (the node restriction, reference 4.2). Refusals
 * carry a reason for the CA's log; the caller only ever learns "refused".
 */
#ifndef MESH_LIB_CASVC_H
#define MESH_LIB_CASVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls/ca.h"
#include "tls/spiffe.h"
#include "tls/tls.h"

#define CASVC_METHOD "/istio.v1.auth.IstioCertificateService/CreateCertificate"
#define CASVC_IMPERSONATE "ImpersonatedIdentity"
#define CASVC_DEFAULT_TTL (24L * 3600)
#define CASVC_MAX_TTL (90L * 24 * 3600)
#define CASVC_MAX_REQUEST (64u << 10)  /* a CSR is ~500 bytes; metadata is small */
#define CASVC_MAX_RESPONSE (256u << 10)
#define CASVC_MAX_CHAIN 8

/* May |node| hold keys for |id|? (meshd: a pod on that node runs as that account) */
typedef bool casvc_authorize_fn(void *arg, const char *node, const struct spiffe_id *id);

struct casvc_policy {
    const char *trust_domain;
    long default_ttl; /* used when the request names none */
    long max_ttl;     /* longer requests are shortened to this */
    casvc_authorize_fn *authorize;
    void *arg;
};

struct casvc_result {
    struct spiffe_id id; /* the identity granted (or asked for, when refused) */
    bool have_id;
    long ttl;            /* seconds granted */
    char serial[64];     /* hex serial of the signed leaf */
    char why[256];       /* refusal reason, for the log only... */
    bool malformed;      /* ...unless the request did not decode: then the caller may know */
};

/*
 * Decides and signs one CreateCertificate request of |len| bytes from the
 * authenticated |node|. Returns a gRPC status: 0 with |*resp| (packed
 * IstioCertificateResponse, malloc'd) and |*resp_len| set; or
 * UNAUTHENTICATED / INVALID_ARGUMENT with |res->why| filled.
 */
int casvc_sign(const struct ca *ca, const struct casvc_policy *p, const char *node,
               const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len,
               struct casvc_result *res);

/* ---- Client side (ztunnel) ---- */

/*
 * Builds a request for |identity| with a new P-256 key (returned in |*key|):
 * CSR with only the URI SAN, metadata ImpersonatedIdentity, |ttl| seconds.
 * Returns 0 or <0.
 */
int casvc_request(const char *identity, long ttl, EVP_PKEY **key, uint8_t **req, size_t *len);

/*
 * Checks a response for |identity| and |key|: the leaf must carry exactly that
 * SPIFFE identity and |key|'s public half, chain to a root in the response,
 * and be valid now. The trust bundle is the response's roots. Returns new
 * credentials (taking ownership of |key| only on success) or NULL with |err|.
 * With |roots| not NULL, the roots are also handed back (caller frees with
 * sk_X509_pop_free(.., X509_free)) for reporting.
 */
struct tls_creds *casvc_response(const uint8_t *resp, size_t len, const char *identity,
                                 EVP_PKEY *key, const struct tls_opts *o,
                                 STACK_OF(X509) **roots, char *err, size_t errlen);

#endif
