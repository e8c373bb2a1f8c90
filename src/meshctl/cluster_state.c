/*
 * cluster_state.c - the cluster directory: cluster.json and the lock, the
 * ledger of what was made (network namespaces, process groups), object
 * records, and files written so that watchers never see half of one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "cluster.h"
#include "meshctl.h"

const char *
cluster_dir(void)
{
    static char abs[2 * PATH_MAX + 2];
    const char *d = getenv("MESH_CLUSTER_DIR");
    if (d == NULL || d[0] == '\0')
        return CLUSTER_DIR_DEFAULT;
    /* Absolute, so that paths handed to daemons and pods hold from any directory. */
    if (realpath(d, abs) != NULL)
        return abs;
    char cwd[PATH_MAX];
    if (d[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL) {
        snprintf(abs, sizeof(abs), "%s/%s", cwd, d);
        return abs;
    }
    return d;
}

const char *
cl_self_bindir(void)
{
    static char dir[PATH_MAX];
    if (dir[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
        if (n <= 0)
            snprintf(dir, sizeof(dir), ".");
        else
            dir[n] = '\0';
        char *slash = strrchr(dir, '/');
        if (slash != NULL && slash != dir)
            *slash = '\0';
    }
    return dir;
}

char *
cl_path(const struct cluster *c, const char *fmt, ...)
{
    char rel[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    return xasprintf("%s/%s", c->dir, rel);
}

int
cluster_open(struct cluster *c, bool lock)
{
    memset(c, 0, sizeof(*c));
    c->lock_fd = -1;
    c->dir = xstrdup(cluster_dir());
    c->bindir = xstrdup(cl_self_bindir());
    char *meta = cl_path(c, "cluster.json");
    c->meta = cl_read_json(meta);
    free(meta);
    if (c->meta == NULL) {
        fprintf(stderr, "meshctl: no cluster in %s (run 'meshctl install' first)\n", c->dir);
        return -1;
    }
    snprintf(c->prefix, sizeof(c->prefix), "%s", jsd(c->meta, "prefix", "amesh"));
    c->n_nodes = (int)json_integer_value(json_object_get(c->meta, "nodes"));
    if (c->n_nodes < 1 || c->n_nodes > CLUSTER_MAX_NODES) {
        fprintf(stderr, "meshctl: %s/cluster.json: bad node count\n", c->dir);
        return -1;
    }
    if (lock) {
        char *p = cl_path(c, "lock");
        c->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        free(p);
        if (c->lock_fd < 0 || flock(c->lock_fd, LOCK_EX) < 0) {
            fprintf(stderr, "meshctl: locking %s: %s\n", c->dir, strerror(errno));
            return -1;
        }
    }
    return 0;
}

void
cluster_close(struct cluster *c)
{
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    json_decref(c->meta);
    free(c->dir);
    free(c->bindir);
    memset(c, 0, sizeof(*c));
    c->lock_fd = -1;
}

int
cluster_save_meta(struct cluster *c)
{
    char *p = cl_path(c, "cluster.json");
    int rc = cl_write_json(p, c->meta);
    free(p);
    return rc;
}

/* ---- Files ---- */

int
cl_mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int
cl_write_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
    const char *slash = strrchr(path, '/');
    char *tmp = slash ? xasprintf("%.*s/.%s.tmp%d", (int)(slash - path), path, slash + 1, getpid())
                      : xasprintf(".%s.tmp%d", path, getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    int rc = 0;

    if (fd < 0) {
        rc = -errno;
        free(tmp);
        return rc;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = -errno;
            break;
        }
        off += (size_t)n;
    }
    if (rc == 0 && fchmod(fd, mode) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

int
cl_write_json(const char *path, const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s == NULL)
        return -ENOMEM;
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n] = '\n';
    int rc = cl_write_atomic(path, s, n + 1, 0644);
    free(s);
    return rc;
}

int
cl_write_yaml(const char *path, const json_t *v, const char *header)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return -errno;
    if (header != NULL)
        fputs(header, f);
    json_print_yaml(f, v);
    fclose(f);
    int rc = cl_write_atomic(path, buf, len, 0644);
    free(buf);
    return rc;
}

char *
cl_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0)
            buf = xrealloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

json_t *
cl_read_json(const char *path)
{
    return json_load_file(path, 0, NULL);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int
cl_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* ---- Ledger ---- */

int
ledger_netns_add(struct cluster *c, const char *name)
{
    char *d = cl_path(c, "netns.d");
    char *p = cl_path(c, "netns.d/%s", name);
    int rc = cl_mkdirs(d, 0755) < 0 ? -1 : cl_write_atomic(p, "", 0, 0644) < 0 ? -1 : 0;
    free(d);
    free(p);
    return rc;
}

void
ledger_netns_del(struct cluster *c, const char *name)
{
    char *p = cl_path(c, "netns.d/%s", name);
    unlink(p);
    free(p);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names in |dir| (not starting with '.') that end with |suffix| (removed), sorted. */
static json_t *
list_dir(const char *dir, const char *suffix)
{
    json_t *arr = json_array();
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0, sl = strlen(suffix);

    if (d == NULL)
        return arr;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l <= sl || strcmp(e->d_name + l - sl, suffix) != 0)
            continue;
        if (n == cap)
            names = xrealloc(names, (cap = cap ? cap * 2 : 32) * sizeof(*names));
        names[n++] = xstrndup(e->d_name, l - sl);
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(names[i]));
        free(names[i]);
    }
    free(names);
    return arr;
}

json_t *
ledger_netns_list(const struct cluster *c)
{
    char *d = cl_path(c, "netns.d");
    json_t *arr = list_dir(d, "");
    free(d);
    return arr;
}

int
ledger_proc_add(struct cluster *c, const char *label, pid_t pid)
{
    char *d = cl_path(c, "pids");
    char *p = cl_path(c, "pids/%s.pid", label);
    char line[64];
    int n = snprintf(line, sizeof(line), "%d %llu\n", (int)pid, proc_starttime(pid));
    int rc = cl_mkdirs(d, 0755) < 0 ? -1 : cl_write_atomic(p, line, (size_t)n, 0644) < 0 ? -1 : 0;
    free(d);
    free(p);
    return rc;
}

int
ledger_proc_get(const struct cluster *c, const char *label, pid_t *pid, unsigned long long *start)
{
    char *p = cl_path(c, "pids/%s.pid", label);
    char *s = cl_read_file(p, NULL);
    int v = 0;
    free(p);
    if (s == NULL || sscanf(s, "%d %llu", &v, start) != 2 || v <= 1) {
        free(s);
        return -1;
    }
    free(s);
    *pid = (pid_t)v;
    return 0;
}

void
ledger_proc_del(struct cluster *c, const char *label)
{
    char *p = cl_path(c, "pids/%s.pid", label);
    unlink(p);
    free(p);
}

json_t *
ledger_proc_list(const struct cluster *c)
{
    char *d = cl_path(c, "pids");
    json_t *arr = list_dir(d, ".pid");
    free(d);
    return arr;
}

/* ---- Records ---- */

char *
rec_path(const struct cluster *c, const struct kind_info *k, const char *ns, const char *name)
{
    return cl_path(c, "objects/%s_%s_%s.json", k->resource, k->namespaced ? ns : "", name);
}

json_t *
rec_get(const struct cluster *c, const struct kind_info *k, const char *ns, const char *name)
{
    char *p = rec_path(c, k, ns, name);
    json_t *r = cl_read_json(p);
    free(p);
    return r;
}

bool
rec_exists(const struct cluster *c, const struct kind_info *k, const char *ns, const char *name)
{
    json_t *r = rec_get(c, k, ns, name);
    json_decref(r);
    return r != NULL;
}

int
rec_put(struct cluster *c, const struct kind_info *k, const json_t *rec)
{
    const json_t *obj = json_object_get(rec, "object");
    const char *ns = jsd(obj, "metadata.namespace", "");
    const char *name = jsd(obj, "metadata.name", "");
    char *dir = cl_path(c, "objects");
    char *p = rec_path(c, k, ns, name);
    int rc = cl_mkdirs(dir, 0755) < 0 ? -errno : cl_write_json(p, rec);

    if (rc == 0 && k->config) {
        char *cp = cl_path(c, "config/%s_%s_%s.yaml", k->resource, k->namespaced ? ns : "", name);
        rc =
            cl_write_yaml(cp, obj, "# written by meshctl (local cluster); edits are overwritten\n");
        free(cp);
    }
    free(dir);
    free(p);
    return rc;
}

void
rec_del(struct cluster *c, const struct kind_info *k, const char *ns, const char *name)
{
    if (k->config) {
        char *cp = cl_path(c, "config/%s_%s_%s.yaml", k->resource, k->namespaced ? ns : "", name);
        unlink(cp);
        free(cp);
    }
    char *p = rec_path(c, k, ns, name);
    unlink(p);
    free(p);
}

json_t *
rec_list(const struct cluster *c, const struct kind_info *k, const char *ns)
{
    char *dir = cl_path(c, "objects");
    json_t *names = list_dir(dir, ".json");
    json_t *out = json_array();
    size_t i, kl = strlen(k->resource);
    json_t *v;

    json_array_foreach(names, i, v) {
        const char *n = json_string_value(v);
        if (strncmp(n, k->resource, kl) != 0 || n[kl] != '_')
            continue;
        const char *rest = n + kl + 1;
        const char *us = strchr(rest, '_');
        if (us == NULL)
            continue;
        if (ns != NULL && k->namespaced &&
            (strlen(ns) != (size_t)(us - rest) || strncmp(rest, ns, (size_t)(us - rest)) != 0))
            continue;
        char *p = cl_path(c, "objects/%s.json", n);
        json_t *r = cl_read_json(p);
        free(p);
        if (r != NULL)
            json_array_append_new(out, r);
    }
    json_decref(names);
    free(dir);
    return out;
}

/* ---- JSON paths ---- */

json_t *
jget(const json_t *o, const char *path)
{
    char key[256];
    const char *p = path;

    while (o != NULL && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        o = json_object_get(o, key);
        p += n;
        if (*p == '.')
            p++;
    }
    return (json_t *)o;
}

const char *
js(const json_t *o, const char *path)
{
    return json_string_value(jget(o, path));
}

const char *
jsd(const json_t *o, const char *path, const char *dflt)
{
    const char *s = js(o, path);
    return s != NULL ? s : dflt;
}

json_t *
jobj(json_t *o, const char *path)
{
    char key[256];
    const char *p = path;

    while (*p) {
        size_t n = strcspn(p, ".");
        CHECK(n < sizeof(key));
        memcpy(key, p, n);
        key[n] = '\0';
        json_t *next = json_object_get(o, key);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_set_new(o, key, next);
        }
        o = next;
        p += n;
        if (*p == '.')
            p++;
    }
    return o;
}
