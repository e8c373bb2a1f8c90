/*
 * spiffe.h - SPIFFE identities: spiffe://<trust domain>/ns/<namespace>/sa/<account>.
 *
 * Parsing is strict and length-aware (no C-string truncation: an embedded NUL
 * is an error), as ztunnel's parser: exactly five path segments, "ns" and "sa".
 */
#ifndef MESH_LIB_SPIFFE_H
#define MESH_LIB_SPIFFE_H

#include <stddef.h>

#include <openssl/x509.h>

#define SPIFFE_MAX_LEN 512

struct spiffe_id {
    char uri[SPIFFE_MAX_LEN + 1]; /* the full URI */
    char td[256];                 /* trust domain */
    char ns[128];
    char sa[128];
};

/* Parses |len| bytes of |s|. Returns 0 or -EINVAL. */
int spiffe_parse(const char *s, size_t len, struct spiffe_id *id);
/* Builds the identity from parts; returns 0 or -EINVAL if a part is empty or too long. */
int spiffe_make(const char *td, const char *ns, const char *sa, struct spiffe_id *id);

/*
 * Extracts the identity of |cert|: it must carry exactly one URI SAN and that
 * URI must parse. Returns 0, or -EINVAL (with |why| set to a static reason).
 */
int spiffe_from_cert(X509 *cert, struct spiffe_id *id, const char **why);

#endif
