/*
 * scan.c - network namespaces of the host's processes matched to pods by
 * their IPs; see scan.h.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_SCOPE "cni"
#include "base/base.h"
#include "log/log.h"
#include "scan.h"

struct ns_seen {
    uint64_t dev, ino;
    int pid; /* the lowest pid in it (/proc lists in pid order) */
};

static bool
numeric(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool
has_ip(const struct inpod_addr *a, size_t n, const struct inpod_addr *ip)
{
    size_t len = ip->family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < n; i++)
        if (a[i].family == ip->family && memcmp(a[i].b, ip->b, len) == 0)
            return true;
    return false;
}

/* The distinct namespaces of the processes under |proc_dir|; |own| excluded. */
static size_t
collect(const char *proc_dir, const struct stat *own, struct ns_seen *out, size_t max,
        uint64_t deadline, struct scan_stats *st)
{
    DIR *d = opendir(proc_dir);
    struct dirent *e;
    char path[512];
    size_t n = 0;

    if (d == NULL) {
        log_warn("%s: %s; pods that started before mesh-cni cannot be found", proc_dir,
                 strerror(errno));
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat s;
        size_t i;
        if (!numeric(e->d_name))
            continue;
        if (++st->pids > SCAN_PIDS_MAX || clock_mono_ms() > deadline) {
            st->truncated = true;
            break;
        }
        snprintf(path, sizeof(path), "%s/%s/ns/net", proc_dir, e->d_name);
        if (stat(path, &s) < 0) /* gone, a kernel thread, or not ours to see */
            continue;
        if (s.st_dev == own->st_dev && s.st_ino == own->st_ino)
            continue;
        for (i = 0; i < n; i++)
            if (out[i].ino == (uint64_t)s.st_ino && out[i].dev == (uint64_t)s.st_dev)
                break;
        if (i < n)
            continue;
        if (n == max) {
            st->truncated = true;
            continue;
        }
        out[n].dev = (uint64_t)s.st_dev;
        out[n].ino = (uint64_t)s.st_ino;
        out[n].pid = (int)strtol(e->d_name, NULL, 10);
        n++;
    }
    closedir(d);
    return n;
}

/* A bind mount of namespace |ns| in |netns_dir| (stable, unlike a pid), into |out|. */
static bool
pinned_name(const char *netns_dir, const struct ns_seen *ns, char *out, size_t cap)
{
    DIR *d = netns_dir != NULL ? opendir(netns_dir) : NULL;
    struct dirent *e;
    bool found = false;
    size_t seen = 0;

    if (d == NULL)
        return false;
    while (!found && (e = readdir(d)) != NULL && seen++ < SCAN_NETNS_MAX) {
        struct stat s;
        if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &s, 0) < 0)
            continue;
        if ((uint64_t)s.st_ino == ns->ino && (uint64_t)s.st_dev == ns->dev &&
            (size_t)snprintf(out, cap, "%s/%s", netns_dir, e->d_name) < cap)
            found = true;
    }
    closedir(d);
    return found;
}

void
scan_netns(const char *proc_dir, const char *netns_dir, struct scan_want *w, size_t n,
           struct scan_stats *st)
{
    uint64_t t0 = clock_mono_ms(), deadline = t0 + SCAN_BUDGET_MS;
    struct ns_seen *seen = xcalloc(SCAN_NETNS_MAX, sizeof(*seen));
    struct inpod_addr *addrs = xcalloc(SCAN_ADDRS_MAX, sizeof(*addrs));
    size_t *hit = xcalloc(n ? n : 1, sizeof(*hit)); /* namespace index + 1 of each want's match */
    struct stat own;
    char path[512], err[256];

    memset(st, 0, sizeof(*st));
    for (size_t i = 0; i < n; i++) {
        w[i].path[0] = '\0';
        w[i].ambiguous = false;
    }
    if (stat("/proc/self/ns/net", &own) < 0)
        memset(&own, 0, sizeof(own));
    size_t nns = collect(proc_dir, &own, seen, SCAN_NETNS_MAX, deadline, st);
    st->netns = nns;
    for (size_t k = 0; k < nns; k++) {
        if (clock_mono_ms() > deadline) {
            st->truncated = true;
            break;
        }
        snprintf(path, sizeof(path), "%s/%d/ns/net", proc_dir, seen[k].pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat s;
        /* The pid may have exited, and its number gone to another process, since collect(). */
        if (fd < 0 || fstat(fd, &s) < 0 || (uint64_t)s.st_ino != seen[k].ino) {
            if (fd >= 0)
                close(fd);
            st->failed++;
            continue;
        }
        int na = inpod_addrs(fd, addrs, SCAN_ADDRS_MAX, err, sizeof(err));
        close(fd);
        st->examined++;
        if (na < 0) {
            st->failed++;
            log_debug("%s: %s", path, err);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            size_t j;
            for (j = 0; j < w[i].n_ips; j++)
                if (!has_ip(addrs, (size_t)na, &w[i].ips[j]))
                    break;
            if (w[i].n_ips == 0 || j < w[i].n_ips)
                continue;
            if (hit[i] != 0)
                w[i].ambiguous = true;
            else
                hit[i] = k + 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (hit[i] == 0 || w[i].ambiguous)
            continue;
        const struct ns_seen *ns = &seen[hit[i] - 1];
        if (!pinned_name(netns_dir, ns, w[i].path, sizeof(w[i].path)))
            snprintf(w[i].path, sizeof(w[i].path), "%s/%d/ns/net", proc_dir, ns->pid);
    }
    st->ms = clock_mono_ms() - t0;
    free(hit);
    free(addrs);
    free(seen);
}

size_t
scan_pod_ips(const json_t *pod, struct inpod_addr *out, size_t max)
{
    const json_t *status = json_object_get(pod, "status");
    const json_t *ips = json_object_get(status, "podIPs"), *e;
    const char *one[1] = {json_string_value(json_object_get(status, "podIP"))};
    size_t n = 0, i;

    json_array_foreach(ips, i, e)
    {
        const char *s = json_string_value(json_object_get(e, "ip"));
        if (s == NULL || n == max)
            continue;
        out[n].family = strchr(s, ':') != NULL ? AF_INET6 : AF_INET;
        memset(out[n].b, 0, sizeof(out[n].b));
        if (inet_pton(out[n].family, s, out[n].b) == 1)
            n++;
    }
    if (n == 0 && one[0] != NULL) {
        out[0].family = strchr(one[0], ':') != NULL ? AF_INET6 : AF_INET;
        memset(out[0].b, 0, sizeof(out[0].b));
        n = inet_pton(out[0].family, one[0], out[0].b) == 1;
    }
    return n;
}
