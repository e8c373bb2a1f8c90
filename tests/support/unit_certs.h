/*
 * unit_certs.h - a certificate factory for tests: mints a root with ca.h and
 * SPIFFE leaves from it at test time (no private keys are committed).
 */
#ifndef MESH_TESTS_UNIT_CERTS_H
#define MESH_TESTS_UNIT_CERTS_H

#include "tls/ca.h"
#include "tls/tls.h"

/*
 * Issues a leaf for spiffe://|td|/ns/|ns|/sa/|sa| from |issuer|, valid from
 * now + |start_offset| for |valid_secs|, and builds tls_creds trusting
 * |trust| (usually the same CA). Aborts on failure.
 */
struct tls_creds *unit_creds(const struct ca *issuer, const struct ca *trust, const char *td,
                             const char *ns, const char *sa, long start_offset, long valid_secs);

/* The same with default validity (one hour, starting a minute ago). */
struct tls_creds *unit_creds_simple(const struct ca *ca, const char *td, const char *ns,
                                    const char *sa);

#endif
