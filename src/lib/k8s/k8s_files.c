/*
 * k8s_files.c - reads configuration files and directories into the store.
 *
 * A directory is read flat, in name order, as `kubectl apply -f DIR` does;
 * hidden files (which also covers Kubernetes ConfigMap volumes' "..data"
 * links) and editor leftovers are skipped. Files that vanished since the last
 * sync are forgotten. A file that cannot be read keeps what it had.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

/* A read buffer, reused for every file of a directory. */
struct rbuf {
    char *p;
    size_t cap;
};

/* Reads |path| into |rb|. Returns 0, -errno, or -MESH_ELIMIT past the cap. */
static int
read_file(const char *path, struct rbuf *rb, size_t *len)
{
    struct stat sb;
    size_t cap, n = 0;
    char *buf;
    /* O_NONBLOCK: a FIFO put in the directory must not hang the reader. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &sb) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = -EINVAL;
        goto out;
    }
    if (sb.st_size > K8S_MAX_FILE_BYTES) {
        rc = -MESH_ELIMIT;
        goto out;
    }
    /* One more than the size, so a file that grew since fstat() is still read to its end. */
    if (rb->cap < (size_t)sb.st_size + 1) {
        rb->cap = (size_t)sb.st_size + 1;
        rb->p = xrealloc(rb->p, rb->cap);
    }
    cap = rb->cap;
    buf = rb->p;
    for (;;) {
        if (n == cap) {
            /* One more than the cap, so a file over it is caught. */
            if (cap > K8S_MAX_FILE_BYTES) {
                rc = -MESH_ELIMIT;
                goto out;
            }
            cap =
                cap * 2 > (size_t)K8S_MAX_FILE_BYTES + 1 ? (size_t)K8S_MAX_FILE_BYTES + 1 : cap * 2;
            buf = rb->p = xrealloc(rb->p, cap);
            rb->cap = cap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *len = n;
out:
    close(fd);
    return rc;
}

static int
load_path(struct k8s_store *st, const char *path, struct k8s_diags *d, bool commit, struct rbuf *rb)
{
    size_t len = 0;
    int rc = read_file(path, rb, &len);

    if (rc < 0) {
        char *msg = rc == -MESH_ELIMIT ? xasprintf("larger than %d bytes", K8S_MAX_FILE_BYTES)
                    : rc == -EINVAL    ? xstrdup("not a regular file")
                                       : xasprintf("cannot read: %s", mesh_strerror(rc));
        k8s_store_file_error(st, path, msg);
        k8s_diag_add(d, path, 0, K8S_ERROR, NULL, "%s", msg);
        free(msg);
        if (commit)
            k8s_store_commit(st);
        return rc == -MESH_ELIMIT ? -MESH_ECONFIG : rc;
    }
    return k8s_store_load(st, path, rb->p, len, d, commit);
}

int
k8s_store_load_file(struct k8s_store *st, const char *path, struct k8s_diags *d)
{
    struct rbuf rb = {0};
    int rc = load_path(st, path, d, true, &rb);

    free(rb.p);
    return rc;
}

static bool
skipped_name(const char *name)
{
    size_t n = strlen(name);

    if (name[0] == '.' || name[0] == '#' || n == 0 || name[n - 1] == '~')
        return true;
    return n > 4 && (strcmp(name + n - 4, ".swp") == 0 || strcmp(name + n - 4, ".swx") == 0);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted names of the files to load. Returns the count, or -errno. */
static int
list_dir(const char *dir, char ***out, struct k8s_diags *d)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;

    *out = NULL;
    if (dp == NULL)
        return -errno;
    while ((e = readdir(dp)) != NULL) {
        if (skipped_name(e->d_name))
            continue;
        if (n == K8S_MAX_FILES) {
            k8s_diag_add(d, dir, 0, K8S_ERROR, NULL, "more than %d files; the rest is ignored",
                         K8S_MAX_FILES);
            break;
        }
        names = xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = xstrdup(e->d_name);
    }
    closedir(dp);
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str);
    *out = names;
    return (int)n;
}

/* Is |path| a file directly in |dir| (given as "dir/")? */
static bool
in_dir(const char *path, const char *dir_slash, size_t len)
{
    return strncmp(path, dir_slash, len) == 0 && path[len] != '\0' &&
           strchr(path + len, '/') == NULL;
}

int
k8s_store_sync_dir(struct k8s_store *st, const char *dir, struct k8s_diags *d)
{
    size_t dlen = strlen(dir);
    char **names;
    struct rbuf rb = {0};
    int rc = 0;

    while (dlen > 1 && dir[dlen - 1] == '/')
        dlen--;
    char *prefix = xasprintf("%.*s/", (int)dlen, dir);
    size_t plen = strlen(prefix);
    int n = list_dir(prefix, &names, d);
    if (n < 0) {
        k8s_diag_add(d, dir, 0, K8S_ERROR, NULL, "cannot list: %s", mesh_strerror(n));
        free(prefix);
        return n;
    }
    for (int i = 0; i < n; i++) {
        char *path = xasprintf("%s%s", prefix, names[i]);
        struct stat sb;
        /* stat() follows links, as ConfigMap volumes are made of them; directories are skipped. */
        if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
            free(names[i]);
            names[i] = NULL;
        } else if (load_path(st, path, d, false, &rb) < 0) {
            rc = -MESH_ECONFIG;
        }
        free(path);
    }
    free(rb.p);
    /*
     * Forget what was loaded from this directory before and is gone now. The
     * store's paths and |names| are both in strcmp order, and within the
     * directory a path sorts as its name: one merged walk.
     */
    for (size_t i = 0, j = 0; k8s_store_file_path(st, i) != NULL;) {
        const char *path = k8s_store_file_path(st, i);
        bool keep = !in_dir(path, prefix, plen);
        int c = 1;
        while (!keep && j < (size_t)n &&
               (names[j] == NULL || (c = strcmp(names[j], path + plen)) < 0))
            j++;
        if (!keep)
            keep = j < (size_t)n && c == 0;
        if (keep) {
            i++;
            continue;
        }
        char *gone = xstrdup(path);
        k8s_store_forget(st, gone, false);
        free(gone);
    }
    k8s_store_commit(st);
    for (size_t i = 0; k8s_store_file_path(st, i) != NULL; i++) {
        const char *path = k8s_store_file_path(st, i);
        if (in_dir(path, prefix, plen) && k8s_store_has_dups(st, path)) {
            k8s_store_dups(st, path, d);
            rc = -MESH_ECONFIG;
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(prefix);
    return rc;
}
