/*
 * install.c - the amesh-cni binary and our entry in the primary CNI
 * configuration; see install.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_SCOPE "cni"
#include "base/base.h"
#include "dirwatch/dirwatch.h"
#include "install.h"
#include "log/log.h"

struct install {
    struct loop *loop;
    struct install_opts o;
    struct dirwatch *watch;
    char *primary; /* the file our entry is in; NULL: not in */
    bool waiting;  /* said that there is no primary configuration yet */
    bool ever_in;
    char *last_err; /* the last refusal logged, so it is said once per change */
    uint64_t start_ms;
    struct log_ratelimit rl;
};

/* Reads a whole regular file of at most |cap| bytes; NULL with |why| (errno text) else. */
static char *
read_capped(const char *path, size_t cap, size_t *len, struct stat *st, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf;
    size_t n = 0;

    why[0] = '\0';
    if (fd < 0 || fstat(fd, st) < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!S_ISREG(st->st_mode) || (size_t)st->st_size > cap) {
        if (S_ISREG(st->st_mode))
            snprintf(why, whylen, "larger than %zu bytes", cap);
        else
            snprintf(why, whylen, "not a regular file");
        close(fd);
        return NULL;
    }
    buf = xmalloc(cap + 1);
    for (;;) {
        ssize_t r = read(fd, buf + n, cap + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, whylen, "%s", strerror(errno));
            break;
        }
        n += (size_t)r;
        if (r == 0 || n > cap)
            break;
    }
    close(fd);
    if (n > cap)
        snprintf(why, whylen, "larger than %zu bytes (it grew while read)", cap);
    if (n > cap || why[0] != '\0') {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Writes |data| as |path| (mode |mode|) through a hidden temporary beside it; 0 or -errno. */
static int
write_atomic(const char *dir, const char *path, const char *data, size_t len, mode_t mode)
{
    char *tmp = xasprintf("%s/.amesh-cni-%d.tmp", dir, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600), rc = 0;
    size_t off = 0;

    if (fd < 0) {
        rc = -errno;
        free(tmp);
        return rc;
    }
    while (off < len && rc == 0) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            off += (size_t)w;
    }
    if (rc == 0 && (fchmod(fd, mode) < 0 || fsync(fd) < 0))
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

static bool
has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

/* The primary configuration's file name (heap), or NULL when there is none. */
static char *
find_primary(struct install *in)
{
    DIR *d = opendir(in->o.conf_dir);
    struct dirent *e;
    char *best = NULL;
    size_t seen = 0;

    if (d == NULL) {
        log_warn_rl(&in->rl, "%s: %s", in->o.conf_dir, strerror(errno));
        return NULL;
    }
    while ((e = readdir(d)) != NULL && seen++ < INSTALL_DIR_MAX) {
        struct stat st;
        if (e->d_name[0] == '.' ||
            !(has_suffix(e->d_name, ".conflist") || has_suffix(e->d_name, ".conf") ||
              has_suffix(e->d_name, ".json")))
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (best == NULL || strcmp(e->d_name, best) < 0) {
            free(best);
            best = xstrdup(e->d_name);
        }
    }
    if (seen > INSTALL_DIR_MAX)
        log_warn_rl(&in->rl, "%s: more than %d entries; only the first were looked at",
                    in->o.conf_dir, INSTALL_DIR_MAX);
    closedir(d);
    return best;
}

static void
set_primary(struct install *in, const char *path)
{
    free(in->primary);
    in->primary = path != NULL ? xstrdup(path) : NULL;
}

/* A refusal of the primary file, logged once per distinct message (and rate limited). */
static void
refused(struct install *in, const char *file, const char *why)
{
    char *msg = xasprintf("%s: %s", file, why);
    if (in->last_err == NULL || strcmp(in->last_err, msg) != 0)
        log_warn_rl(&in->rl, "%s; amesh-cni is not chained (waiting for the file to change)", msg);
    free(in->last_err);
    in->last_err = msg;
    set_primary(in, NULL);
}

/* The conf dir as it is now: our entry into its primary configuration. */
static void
sync_chain(void *arg)
{
    struct install *in = arg;
    char why[256] = "", err[256] = "", *name = find_primary(in), *path, *target, *buf, *out;
    size_t len, outlen;
    struct stat st;

    if (name == NULL) {
        if (!in->waiting)
            log_info("no CNI configuration in %s yet: waiting for the primary plugin's "
                     "(not ready until amesh-cni is chained)",
                     in->o.conf_dir);
        in->waiting = true;
        set_primary(in, NULL);
        return;
    }
    in->waiting = false;
    path = xasprintf("%s/%s", in->o.conf_dir, name);
    if ((buf = read_capped(path, CNI_CONFFILE_MAX, &len, &st, why, sizeof(why))) == NULL) {
        refused(in, path, why);
        free(path);
        free(name);
        return;
    }
    bool is_list = has_suffix(name, ".conflist");
    enum cni_chain_rc rc =
        cni_chain_insert(buf, len, is_list, &in->o.entry, &out, &outlen, err, sizeof(err));
    free(buf);
    if (rc == CNI_CHAIN_ERROR) {
        refused(in, path, err);
    } else if (rc == CNI_CHAIN_UNCHANGED) {
        if (in->primary == NULL || strcmp(in->primary, path) != 0)
            log_info("%s already chains amesh-cni as configured", path);
        set_primary(in, path);
    } else {
        /* A .conf (or .json) becomes NAME.conflist beside it, the original removed. */
        target = is_list ? xstrdup(path)
                         : xasprintf("%s/%.*s.conflist", in->o.conf_dir,
                                     (int)(strrchr(name, '.') - name), name);
        int wr = write_atomic(in->o.conf_dir, target, out, outlen, st.st_mode & 0777);
        if (wr < 0) {
            refused(in, target, mesh_strerror(wr));
        } else {
            if (!is_list && unlink(path) < 0 && errno != ENOENT)
                log_warn("%s: %s (converted to %s)", path, strerror(errno), target);
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            long long since = ((long long)now.tv_sec - st.st_mtim.tv_sec) * 1000 +
                              (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
            if (!in->ever_in)
                log_info("amesh-cni chained into %s%s, %llu ms after start", target,
                         is_list ? "" : " (converted from .conf)",
                         (unsigned long long)(clock_mono_ms() - in->start_ms));
            else
                log_info("amesh-cni chained into %s again, %lld ms after the file was last "
                         "written by another",
                         target, since);
            in->ever_in = true;
            free(in->last_err);
            in->last_err = NULL;
            set_primary(in, target);
        }
        free(target);
        free(out);
    }
    free(path);
    free(name);
}

static bool
same_file_content(const char *a, const char *b)
{
    char why[128] = "", why2[128] = "";
    size_t la, lb;
    struct stat sa, sb;
    char *x = read_capped(a, INSTALL_BIN_MAX, &la, &sa, why, sizeof(why));
    char *y = x != NULL ? read_capped(b, INSTALL_BIN_MAX, &lb, &sb, why2, sizeof(why2)) : NULL;
    bool same =
        x != NULL && y != NULL && la == lb && memcmp(x, y, la) == 0 && (sb.st_mode & 0777) == 0755;
    free(x);
    free(y);
    return same;
}

static int
copy_binary(struct install *in, char *err, size_t errlen)
{
    char why[256] = "";
    size_t len;
    struct stat st;
    char *dst = xasprintf("%s/%s", in->o.bin_dir, CNI_PLUGIN_TYPE), *buf;
    int rc = 0;

    if (same_file_content(in->o.plugin_bin, dst)) {
        log_info("%s is already this amesh-cni", dst);
        free(dst);
        return 0;
    }
    if ((buf = read_capped(in->o.plugin_bin, INSTALL_BIN_MAX, &len, &st, why, sizeof(why))) ==
        NULL) {
        snprintf(err, errlen, "--cni-plugin-binary %s: %s", in->o.plugin_bin, why);
        free(dst);
        return -1;
    }
    if ((rc = write_atomic(in->o.bin_dir, dst, buf, len, 0755)) < 0)
        snprintf(err, errlen, "--cni-bin-dir: writing %s: %s", dst, mesh_strerror(rc));
    else
        log_info("installed %s (%zu bytes) from %s", dst, len, in->o.plugin_bin);
    free(buf);
    free(dst);
    return rc < 0 ? -1 : 0;
}

struct install *
install_start(struct loop *l, const struct install_opts *o, char *err, size_t errlen)
{
    struct install *in = xcalloc(1, sizeof(*in));
    char why[256];

    in->loop = l;
    in->o = *o;
    in->start_ms = clock_mono_ms();
    in->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 5);
    if (o->bin_dir != NULL && copy_binary(in, err, errlen) < 0)
        goto fail;
    if (o->conf_dir != NULL) {
        if (mkdir(o->conf_dir, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "--cni-conf-dir %s: %s", o->conf_dir, strerror(errno));
            goto fail;
        }
        in->watch =
            dirwatch_start(l, o->conf_dir, INSTALL_DEBOUNCE_MS, sync_chain, in, why, sizeof(why));
        if (in->watch == NULL) {
            snprintf(err, errlen, "--cni-conf-dir: %s", why);
            goto fail;
        }
        sync_chain(in);
    }
    return in;
fail:
    free(in);
    return NULL;
}

bool
install_ready(const struct install *in)
{
    return in == NULL || in->o.conf_dir == NULL || in->primary != NULL;
}

static void
uninstall_chain(struct install *in)
{
    char why[256] = "", err[256] = "", *name = find_primary(in), *path, *buf, *out;
    size_t len, outlen;
    struct stat st;

    if (name == NULL)
        return;
    path = xasprintf("%s/%s", in->o.conf_dir, name);
    free(name);
    if ((buf = read_capped(path, CNI_CONFFILE_MAX, &len, &st, why, sizeof(why))) == NULL) {
        log_warn("%s: %s; amesh-cni's entry (if any) left in it", path, why);
        free(path);
        return;
    }
    /* Only a .conflist can hold our entry: a .conf is someone else's single plugin. */
    enum cni_chain_rc rc = has_suffix(path, ".conflist")
                               ? cni_chain_remove(buf, len, &out, &outlen, err, sizeof(err))
                               : CNI_CHAIN_UNCHANGED;
    free(buf);
    if (rc == CNI_CHAIN_ERROR)
        log_warn("%s: %s; amesh-cni's entry (if any) left in it", path, err);
    else if (rc == CNI_CHAIN_REWRITTEN) {
        int wr = write_atomic(in->o.conf_dir, path, out, outlen, st.st_mode & 0777);
        if (wr < 0)
            log_error("%s: taking amesh-cni out: %s", path, mesh_strerror(wr));
        else
            log_info("amesh-cni taken out of %s", path);
        free(out);
    }
    free(path);
}

void
install_stop(struct install *in, bool uninstall)
{
    if (in == NULL)
        return;
    dirwatch_stop(in->watch);
    if (uninstall && in->o.conf_dir != NULL)
        uninstall_chain(in);
    if (uninstall && in->o.bin_dir != NULL) {
        char *dst = xasprintf("%s/%s", in->o.bin_dir, CNI_PLUGIN_TYPE);
        if (unlink(dst) < 0 && errno != ENOENT)
            log_warn("%s: %s", dst, strerror(errno));
        else
            log_info("removed %s", dst);
        free(dst);
    }
    free(in->primary);
    free(in->last_err);
    free(in);
}
