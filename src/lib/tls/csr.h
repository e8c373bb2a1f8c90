/*
 * csr.h - certificate signing requests as Istio's CA protocol uses them:
 * an ECDSA P-256 key, an empty subject and a single critical SubjectAltName
 * holding one SPIFFE URI (reference 4.3).
 *
 * The workload side creates them; the CA side checks them before signing and
 * refuses anything else (another key type, more names, a bad signature).
 */
#ifndef MESH_LIB_CSR_H
#define MESH_LIB_CSR_H

#include <stddef.h>

#include <openssl/evp.h>

#include "tls/spiffe.h"

#define CSR_MAX_PEM 8192

/* PEM CSR for |uri| signed with |key| (heap string, free()), or NULL. */
char *csr_create(EVP_PKEY *key, const char *uri);

/*
 * Checks |len| bytes of PEM: one CSR with a valid signature, an EC P-256 key,
 * and a SubjectAltName of exactly one URI that is a SPIFFE ID, nothing else.
 * Returns the public key (caller frees) with |id| filled, or NULL with |why|
 * set to a static reason.
 */
EVP_PKEY *csr_check(const char *pem, size_t len, struct spiffe_id *id, const char **why);

#endif
