/*
 * inpod.c - inpod_apply() and inpod_remove(): read both families' tables
 * with iptables-save, list the pod's connections, reconcile each family with
 * one iptables-restore --noflush, settle conntrack (inpod_ct.c), then the
 * policy routing. See inpod.h.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "inpod"
#include "base/base.h"
#include "inpod/inpod.h"
#include "log/log.h"
#include "inpod/inpod_ct.h"
#include "inpod/inpod_internal.h"

struct tools {
    const char *save, *restore, *name;
};

static const struct tools v4_tools = {"iptables-save", "iptables-restore", "IPv4"};
static const struct tools v6_tools = {"ip6tables-save", "ip6tables-restore", "IPv6"};

static int
timeout_of(const struct inpod_opts *o)
{
    return o->timeout_ms > 0 ? o->timeout_ms : INPOD_TIMEOUT_DEFAULT;
}

/* One family's tables as iptables-save prints them, and the script that reconciles them. */
static int
plan(int netns_fd, const struct inpod_opts *o, enum inpod_family f, bool remove, char **script,
     char *err, size_t errlen)
{
    const struct tools *t = f == INPOD_IPV6 ? &v6_tools : &v4_tools;
    const char *save_argv[] = {t->save, NULL};
    char msg[1536];
    char *saved = NULL;
    int rc;

    *script = NULL;
    rc = inpod_run(netns_fd, o->bin_dir, save_argv, NULL, &saved, timeout_of(o), msg, sizeof(msg));
    if (rc < 0) {
        snprintf(err, errlen, "%s rules: reading the pod's tables: %s", t->name, msg);
        return rc;
    }
    *script = remove ? inpod_remove_script(saved) : inpod_apply_script(f, o, saved);
    CHECK(*script != NULL); /* options were checked by the caller */
    free(saved);
    return 0;
}

/* iptables-restore --noflush |script| (nothing when it is empty). */
static int
restore(int netns_fd, const struct inpod_opts *o, enum inpod_family f, bool remove,
        const char *script, char *err, size_t errlen)
{
    const struct tools *t = f == INPOD_IPV6 ? &v6_tools : &v4_tools;
    const char *restore_argv[] = {t->restore, "--noflush", NULL};
    char msg[1536];
    int rc;

    if (script[0] == '\0')
        return 0;
    log_debug("%s restore input (--noflush):\n%s", t->name, script);
    rc = inpod_run(netns_fd, o->bin_dir, restore_argv, script, NULL, timeout_of(o), msg,
                   sizeof(msg));
    if (rc < 0)
        snprintf(err, errlen, "%s rules: %s: %s", t->name, remove ? "removing" : "installing",
                 msg);
    return rc;
}

static bool
opts_valid(const struct inpod_opts *o, char *err, size_t errlen)
{
    char *v4 = inpod_rules(INPOD_IPV4, o);
    char *v6 = inpod_rules(INPOD_IPV6, o);
    bool ok = v4 != NULL && v6 != NULL;

    if (!ok)
        snprintf(err, errlen, "bad probe address \"%s\"",
                 v4 == NULL ? (o->probe_v4 ? o->probe_v4 : "") : (o->probe_v6 ? o->probe_v6 : ""));
    free(v4);
    free(v6);
    return ok;
}

/* Whether the kernel has IPv6 in the namespace (a probe socket made inside it says). */
static int
ns_info(int netns_fd, struct inpod_ns_info *info, char *err, size_t errlen)
{
    int fd = inpod_nl_open(netns_fd, NETLINK_ROUTE, info, err, errlen);

    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

int
inpod_apply(int netns_fd, const struct inpod_opts *o, char *err, size_t errlen)
{
    static const struct inpod_opts defaults;
    struct inpod_ns_info info;
    struct inpod_flowset s0 = {0};
    struct inpod_ct_stats st;
    char *script[2] = {NULL, NULL};
    int rc, nfam;

    if (o == NULL)
        o = &defaults;
    if (!opts_valid(o, err, errlen))
        return -EINVAL;
    rc = ns_info(netns_fd, &info, err, errlen);
    if (rc < 0)
        return rc;
    if (!info.has_ipv6)
        log_info("no IPv6 in the pod's namespace (kernel without it): IPv4 rules only");
    nfam = info.has_ipv6 ? 2 : 1;
    /* Everything read first, so that little happens between the socket list and the rules. */
    for (int i = 0; i < nfam && rc == 0; i++)
        rc = plan(netns_fd, o, i ? INPOD_IPV6 : INPOD_IPV4, false, &script[i], err, errlen);
    if (rc == 0)
        rc = inpod_ct_sockets(netns_fd, info.has_ipv6, &s0, err, errlen);
    for (int i = 0; i < nfam && rc == 0; i++)
        rc = restore(netns_fd, o, i ? INPOD_IPV6 : INPOD_IPV4, false, script[i], err, errlen);
    if (rc == 0)
        rc = inpod_ct_sweep(netns_fd, &s0, &st, err, errlen);
    if (rc == 0)
        log_info("connections open at enrollment: %zu (conntrack entries marked %zu, added %zu); "
                 "%zu entries without a socket deleted",
                 st.sockets, st.marked, st.created, st.deleted);
    if (rc == 0)
        rc = inpod_routing(netns_fd, true, err, errlen);
    inpod_flowset_free(&s0);
    free(script[0]);
    free(script[1]);
    return rc;
}

/* Every step is tried; the first failure is reported. */
static void
keep_first(int r, const char *msg, int *rc, char *err, size_t errlen)
{
    if (r < 0 && *rc == 0) {
        *rc = r;
        snprintf(err, errlen, "%s", msg);
    }
}

int
inpod_remove(int netns_fd, const struct inpod_opts *o, char *err, size_t errlen)
{
    static const struct inpod_opts defaults;
    struct inpod_ns_info info = {.has_ipv6 = true};
    char msg[2048];
    int rc = 0, r;

    if (o == NULL)
        o = &defaults;
    r = ns_info(netns_fd, &info, msg, sizeof(msg));
    keep_first(r, msg, &rc, err, errlen);
    if (r < 0)
        return rc;
    for (int i = 0; i < (info.has_ipv6 ? 2 : 1); i++) {
        enum inpod_family f = i ? INPOD_IPV6 : INPOD_IPV4;
        char *script = NULL;
        r = plan(netns_fd, o, f, true, &script, msg, sizeof(msg));
        if (r == 0)
            r = restore(netns_fd, o, f, true, script, msg, sizeof(msg));
        keep_first(r, msg, &rc, err, errlen);
        free(script);
    }
    r = inpod_ct_clear(netns_fd, msg, sizeof(msg));
    keep_first(r, msg, &rc, err, errlen);
    r = inpod_routing(netns_fd, false, msg, sizeof(msg));
    keep_first(r, msg, &rc, err, errlen);
    return rc;
}
