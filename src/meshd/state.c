/*
 * state.c - meshd's state directory: the mesh root (created on first start,
 * key mode 0600), the node-token key, and the serving certificate for 15012.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#define LOG_SCOPE "meshd"
#include "base/base.h"
#include "log/log.h"
#include "meshd.h"
#include "tls/tls_cp.h"

#define ROOT_LIFETIME (10L * 365 * 86400)

static bool
exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int
read_token_key(const char *path, uint8_t key[TOKEN_KEY_LEN], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        /* First start: a fresh key nobody else can read. */
        if (RAND_bytes(key, TOKEN_KEY_LEN) != 1) {
            snprintf(err, errlen, "no randomness for the token key");
            return -1;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, key, TOKEN_KEY_LEN) != TOKEN_KEY_LEN || fsync(fd) < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        close(fd);
        return 0;
    }
    if (fd < 0 || read(fd, key, TOKEN_KEY_LEN) != TOKEN_KEY_LEN) {
        snprintf(err, errlen, "%s: %s", path, fd < 0 ? strerror(errno) : "short key");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int
meshd_state_open(const char *dir, struct ca **ca, uint8_t key[TOKEN_KEY_LEN], char *err,
                 size_t errlen)
{
    char cert[4096], pkey[4096], tkey[4096], why[512];
    struct stat st;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(cert, sizeof(cert), "%s/root-cert.pem", dir);
    snprintf(pkey, sizeof(pkey), "%s/root-key.pem", dir);
    snprintf(tkey, sizeof(tkey), "%s/token-key", dir);
    if (exists(cert) != exists(pkey)) {
        snprintf(err, errlen, "%s: has only one of root-cert.pem and root-key.pem", dir);
        return -1;
    }
    if (exists(cert)) {
        if ((*ca = ca_load(cert, pkey, why, sizeof(why))) == NULL) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
        if (stat(pkey, &st) == 0 && (st.st_mode & 077) != 0)
            log_warn("%s is readable by group or others (mode %03o)", pkey, st.st_mode & 0777);
    } else {
        *ca = ca_generate("amesh root", ROOT_LIFETIME);
        int rc = *ca ? ca_save(*ca, cert, pkey) : -ENOMEM;
        if (rc < 0) {
            snprintf(err, errlen, "%s: cannot create the mesh root: %s", dir, strerror(-rc));
            ca_free(*ca);
            *ca = NULL;
            return -1;
        }
        chmod(pkey, 0600);
        log_info("created mesh root in %s", dir);
    }
    if (read_token_key(tkey, key, err, errlen) < 0) {
        ca_free(*ca);
        *ca = NULL;
        return -1;
    }
    return 0;
}

SSL_CTX *
meshd_serving_ctx(const struct ca *ca, const char *trust_domain, long valid_secs, long *not_after)
{
    char sans[700];
    EVP_PKEY *key = ca_new_key();
    snprintf(sans, sizeof(sans),
             "URI:spiffe://%s/ns/istio-system/sa/istiod,DNS:" TLS_CP_DEFAULT_NAME
             ",DNS:istiod,DNS:meshd,DNS:localhost",
             trust_domain);
    X509 *cert = key ? ca_issue_sans(ca, key, sans, -60, valid_secs + 60) : NULL;
    SSL_CTX *ctx = cert ? tls_cp_server_ctx(cert, key) : NULL;
    *not_after = (long)(clock_wall_ms() / 1000) + valid_secs;
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}
