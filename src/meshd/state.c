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

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/file.h>

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
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
        log_warn("%s is readable by group or others (mode %03o)", path, st.st_mode & 0777);
    if (fd < 0 || read(fd, key, TOKEN_KEY_LEN) != TOKEN_KEY_LEN) {
        snprintf(err, errlen, "%s: %s", path, fd < 0 ? strerror(errno) : "short key");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/*
 * Writes |path| whole or not at all: a new file (O_EXCL, no symlink followed)
 * with |mode|, synced, then renamed into place. A crash leaves either nothing
 * or a complete file, never half a key.
 */
static int
write_atomic(const char *path, mode_t mode, X509 *cert, EVP_PKEY *pkey)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        return -errno;
    }
    int ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -EIO;
    }
    return 0;
}

int
meshd_state_lock(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int state_open_locked(const char *dir, struct ca **ca, uint8_t key[TOKEN_KEY_LEN],
                             char *err, size_t errlen);

int
meshd_state_open(const char *dir, struct ca **ca, uint8_t key[TOKEN_KEY_LEN], char *err,
                 size_t errlen)
{
    struct stat st;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    /* meshd and `meshd token` may start together on a fresh directory: one creates, the other waits. */
    int lock = meshd_state_lock(dir, err, errlen);
    if (lock < 0)
        return -1;
    if (fstat(lock, &st) == 0 && (st.st_mode & 022) != 0)
        log_warn("state directory %s is writable by group or others (mode %03o)", dir,
                 st.st_mode & 0777);
    int rc = state_open_locked(dir, ca, key, err, errlen);
    close(lock); /* releases the lock */
    return rc;
}

static int
state_open_locked(const char *dir, struct ca **ca, uint8_t key[TOKEN_KEY_LEN], char *err,
                  size_t errlen)
{
    char cert[4096], pkey[4096], tkey[4096], why[512];
    struct stat st;

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
        /* The key first: a certificate without its key would block every later start. */
        int rc = *ca ? write_atomic(pkey, 0600, NULL, ca_key(*ca)) : -ENOMEM;
        if (rc == 0)
            rc = write_atomic(cert, 0644, ca_root(*ca), NULL);
        if (rc < 0) {
            snprintf(err, errlen, "%s: cannot create the mesh root: %s", dir, strerror(-rc));
            ca_free(*ca);
            *ca = NULL;
            return -1;
        }
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
meshd_serving_ctx(const struct ca *ca, const struct meshd_opts *o, long valid_secs, long *not_after)
{
    const struct tls_opts tls = {.allow_x25519 = o->allow_x25519};
    char sans[700];
    EVP_PKEY *key = ca_new_key();
    snprintf(sans, sizeof(sans),
             "URI:spiffe://%s/ns/istio-system/sa/istiod,DNS:" TLS_CP_DEFAULT_NAME
             ",DNS:istiod,DNS:meshd,DNS:localhost",
             o->trust_domain);
    X509 *cert = key ? ca_issue_sans(ca, key, sans, -60, valid_secs + 60) : NULL;
    SSL_CTX *ctx = cert ? tls_cp_server_ctx(cert, key, &tls) : NULL;
    *not_after = (long)(clock_wall_ms() / 1000) + valid_secs;
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}
