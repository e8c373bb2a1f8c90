/*
 * ca.h - a signing authority: a root certificate and key that issue SPIFFE
 * leaf certificates (P-256, URI SAN only, not a CA).
 *
 * ztunnel in local mode mints its workload certificates with it; the control
 * plane's CA signs CSRs with the same code. The key never leaves this module.
 */
#ifndef MESH_LIB_CA_H
#define MESH_LIB_CA_H

#include <openssl/evp.h>
#include <openssl/x509.h>

struct ca;

/* Loads a PEM root certificate and key. Returns NULL and fills |err| on failure. */
struct ca *ca_load(const char *cert_path, const char *key_path, char *err, size_t errlen);
/* Creates a fresh self-signed EC P-256 root (tests and first start of a CA). */
struct ca *ca_generate(const char *common_name, long valid_secs);
void ca_free(struct ca *ca);

X509 *ca_root(const struct ca *ca);
EVP_PKEY *ca_key(const struct ca *ca);

/* Generates a new EC P-256 private key. */
EVP_PKEY *ca_new_key(void);

/*
 * Issues a leaf for |uri| over |pub|, valid from now + |start_offset| seconds
 * for |valid_secs| seconds. Returns the certificate or NULL.
 */
X509 *ca_issue(const struct ca *ca, EVP_PKEY *pub, const char *uri, long start_offset,
               long valid_secs);

/*
 * Like ca_issue() with a SubjectAltName list in OpenSSL's config syntax, e.g.
 * "URI:spiffe://td/ns/x/sa/y,DNS:name" (a server name for the control plane).
 * Only for names the caller itself chose: peer input could add names with a
 * ','. ca_issue() puts a requested identity in as one value instead.
 */
X509 *ca_issue_sans(const struct ca *ca, EVP_PKEY *pub, const char *sans, long start_offset,
                    long valid_secs);

/* Writes the root (and key if |key_path|) as PEM; returns 0 or -errno. */
int ca_save(const struct ca *ca, const char *cert_path, const char *key_path);

#endif
