/*
 * sandboxes.c - see sandboxes.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_SCOPE "cni"
#include "base/base.h"
#include "log/log.h"
#include "sandboxes.h"

int
sandboxes_open(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a directory", dir);
        return -1;
    }
    return 0;
}

static void
file_of(char *out, size_t cap, const char *dir, const char *ns, const char *name, bool tmp)
{
    snprintf(out, cap, "%s/%s%s_%s", dir, tmp ? "." : "", ns, name);
}

int
sandboxes_save(const char *dir, const struct cni_req *r)
{
    char path[4096], tmp[4096], buf[CNI_MSG_MAX];
    int n = cni_req_encode(r, buf, sizeof(buf)), fd, rc = 0;

    if (n < 0)
        return n;
    file_of(path, sizeof(path), dir, r->ns, r->name, false);
    file_of(tmp, sizeof(tmp), dir, r->ns, r->name, true);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (write(fd, buf, (size_t)n) != n)
        rc = errno ? -errno : -EIO;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

void
sandboxes_forget(const char *dir, const char *ns, const char *name)
{
    char path[4096];

    file_of(path, sizeof(path), dir, ns, name, false);
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("%s: %s", path, strerror(errno));
}

/* One file: 1 loaded, 0 stale or bad (removed). */
static int
load_one(const char *dir, const char *file, sandboxes_fn *fn, void *arg)
{
    struct cni_req r;
    char path[4096], buf[CNI_MSG_MAX + 1], want[sizeof(r.ns) + sizeof(r.name) + 1], err[256] = "";
    struct stat st;
    ssize_t n = -1;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, buf, sizeof(buf));
        close(fd);
    }
    if (n < 0 || (size_t)n > CNI_MSG_MAX) {
        log_warn("%s: unreadable or over %d bytes; removed", path, CNI_MSG_MAX);
    } else if (cni_req_decode(&r, buf, (size_t)n, err, sizeof(err)) < 0 || r.cmd != CNI_CMD_ADD ||
               (snprintf(want, sizeof(want), "%s_%s", r.ns, r.name), strcmp(want, file) != 0)) {
        log_warn("%s: not a sandbox record (%s); removed", path, err[0] ? err : "wrong name");
    } else if (stat(r.netns, &st) < 0) {
        log_info("%s/%s: sandbox %s went while we were away (%s); forgotten", r.ns, r.name,
                 r.container_id, r.netns);
    } else {
        fn(arg, &r);
        return 1;
    }
    unlink(path);
    return 0;
}

size_t
sandboxes_load(const char *dir, size_t max, sandboxes_fn *fn, void *arg)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (e->d_name[0] == '.') { /* a write that did not finish */
            char tmp[4096];
            snprintf(tmp, sizeof(tmp), "%s/%s", dir, e->d_name);
            unlink(tmp);
            continue;
        }
        if (n == max) {
            log_warn("%s: more than %zu sandboxes; the rest are ignored", dir, max);
            break;
        }
        n += (size_t)load_one(dir, e->d_name, fn, arg);
    }
    closedir(d);
    return n;
}
