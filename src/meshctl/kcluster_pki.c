/*
 * kcluster_pki.c - the credentials of the local Kubernetes control plane:
 * its CA, the API server's serving certificate, the service-account signing
 * key pair, bearer tokens and kubeconfig files.
 *
 * Certificates come from lib/tls's CA code (the one meshd's CA uses): an EC
 * P-256 root and a leaf with the API server's names. Clients authenticate
 * with tokens of the API server's static token file, one per identity, each
 * a 128-bit random value.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "base/base.h"
#include "cluster.h"
#include "kcluster_int.h"
#include "tls/ca.h"

#define KPKI_VALID_SECS (365L * 24 * 3600)

/* The names the API server answers to: loopback, its fabric address, the `kubernetes` VIP. */
#define KPKI_APISERVER_SANS                                                                        \
    "IP:127.0.0.1,IP:" KCLUSTER_APISERVER_IP ",IP:" KCLUSTER_KUBERNETES_VIP                        \
    ",DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"             \
    "DNS:kubernetes.default.svc.cluster.local"

static int
write_pem(const char *path, int (*write)(FILE *, const void *), const void *obj, mode_t mode,
          char *err, size_t errlen)
{
    char *tmp = xasprintf("%s.tmp", path);
    mode_t old = umask(077);
    FILE *f = fopen(tmp, "w");
    umask(old);
    int ok = f != NULL && write(f, obj);
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    if (ok && (chmod(tmp, mode) != 0 || rename(tmp, path) != 0))
        ok = 0;
    if (!ok) {
        snprintf(err, errlen, "writing %s: %s", path, errno ? strerror(errno) : "OpenSSL error");
        unlink(tmp);
    }
    free(tmp);
    return ok ? 0 : -1;
}

static int
pem_cert(FILE *f, const void *x)
{
    return PEM_write_X509(f, (X509 *)x);
}

static int
pem_key(FILE *f, const void *k)
{
    return PEM_write_PrivateKey(f, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

static int
pem_pub(FILE *f, const void *k)
{
    return PEM_write_PUBKEY(f, (EVP_PKEY *)k);
}

int
kpki_make(const char *dir, char *err, size_t errlen)
{
    struct ca *ca = ca_generate("amesh-kube-ca", KPKI_VALID_SECS);
    EVP_PKEY *srv = ca_new_key(), *sa = ca_new_key();
    X509 *cert = NULL;
    int rc = -1;

    if (ca == NULL || srv == NULL || sa == NULL) {
        snprintf(err, errlen, "generating keys failed");
        goto out;
    }
    cert = ca_issue_sans(ca, srv, KPKI_APISERVER_SANS, -3600, KPKI_VALID_SECS);
    if (cert == NULL) {
        snprintf(err, errlen, "issuing the API server's certificate failed");
        goto out;
    }
    char *p[6];
    static const char *const names[] = {"ca.crt",        "ca.key", "apiserver.crt",
                                        "apiserver.key", "sa.key", "sa.pub"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        p[i] = xasprintf("%s/%s", dir, names[i]);
    rc = 0;
    if (write_pem(p[0], pem_cert, ca_root(ca), 0644, err, errlen) < 0 ||
        write_pem(p[1], pem_key, ca_key(ca), 0600, err, errlen) < 0 ||
        write_pem(p[2], pem_cert, cert, 0644, err, errlen) < 0 ||
        write_pem(p[3], pem_key, srv, 0600, err, errlen) < 0 ||
        write_pem(p[4], pem_key, sa, 0600, err, errlen) < 0 ||
        write_pem(p[5], pem_pub, sa, 0644, err, errlen) < 0)
        rc = -1;
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        free(p[i]);
out:
    X509_free(cert);
    EVP_PKEY_free(srv);
    EVP_PKEY_free(sa);
    ca_free(ca);
    return rc;
}

int
kpki_token(char out[KPKI_TOKEN_LEN + 1])
{
    unsigned char b[KPKI_TOKEN_LEN / 2];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

int
kpki_kubeconfig(const char *path, const char *server, const char *ca_path, const char *user,
                const char *token, char *err, size_t errlen)
{
    size_t len;
    char *ca = cl_read_file(ca_path, &len);
    if (ca == NULL) {
        snprintf(err, errlen, "%s: %s", ca_path, strerror(errno));
        return -1;
    }
    char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)ca, (int)len);
    free(ca);
    char *doc = xasprintf("apiVersion: v1\n"
                          "kind: Config\n"
                          "clusters:\n"
                          "- name: amesh\n"
                          "  cluster:\n"
                          "    server: %s\n"
                          "    certificate-authority-data: %s\n"
                          "users:\n"
                          "- name: %s\n"
                          "  user:\n"
                          "    token: %s\n"
                          "contexts:\n"
                          "- name: amesh\n"
                          "  context:\n"
                          "    cluster: amesh\n"
                          "    user: %s\n"
                          "current-context: amesh\n",
                          server, b64, user, token, user);
    free(b64);
    int rc = cl_write_atomic(path, doc, strlen(doc), 0600);
    free(doc);
    if (rc < 0) {
        snprintf(err, errlen, "writing %s: %s", path, strerror(-rc));
        return -1;
    }
    return 0;
}
