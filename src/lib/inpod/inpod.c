/*
 * inpod.c - inpod_apply() and inpod_remove(): per family, read the pod's
 * tables with iptables-save, reconcile with one iptables-restore --noflush,
 * then the policy routing. See inpod.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "inpod"
#include "base/base.h"
#include "inpod/inpod.h"
#include "log/log.h"
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

/* iptables-save, script from its output, iptables-restore (skipped when the script is empty). */
static int
reconcile(int netns_fd, const struct inpod_opts *o, enum inpod_family f, bool remove, char *err,
          size_t errlen)
{
    const struct tools *t = f == INPOD_IPV6 ? &v6_tools : &v4_tools;
    const char *save_argv[] = {t->save, NULL};
    const char *restore_argv[] = {t->restore, "--noflush", NULL};
    char msg[1536];
    char *saved = NULL, *script = NULL;
    int rc;

    rc = inpod_run(netns_fd, o->bin_dir, save_argv, NULL, &saved, timeout_of(o), msg, sizeof(msg));
    if (rc < 0) {
        snprintf(err, errlen, "%s rules: reading the pod's tables: %s", t->name, msg);
        return rc;
    }
    script = remove ? inpod_remove_script(saved) : inpod_apply_script(f, o, saved);
    CHECK(script != NULL); /* options were checked by the caller */
    if (script[0] != '\0') {
        log_debug("%s restore input (--noflush):\n%s", t->name, script);
        rc = inpod_run(netns_fd, o->bin_dir, restore_argv, script, NULL, timeout_of(o), msg,
                       sizeof(msg));
        if (rc < 0)
            snprintf(err, errlen, "%s rules: %s: %s", t->name, remove ? "removing" : "installing",
                     msg);
    }
    free(saved);
    free(script);
    return rc;
}

static bool
opts_valid(const struct inpod_opts *o, char *err, size_t errlen)
{
    char *v4 = inpod_rules(INPOD_IPV4, o);
    char *v6 = inpod_rules(INPOD_IPV6, o);
    bool ok = v4 != NULL && (v6 != NULL || !o->ipv6);

    if (!ok)
        snprintf(err, errlen, "bad probe address \"%s\"",
                 v4 == NULL ? (o->probe_v4 ? o->probe_v4 : "") : (o->probe_v6 ? o->probe_v6 : ""));
    free(v4);
    free(v6);
    return ok;
}

int
inpod_apply(int netns_fd, const struct inpod_opts *o, char *err, size_t errlen)
{
    static const struct inpod_opts defaults;
    int rc;

    if (o == NULL)
        o = &defaults;
    if (!opts_valid(o, err, errlen))
        return -EINVAL;
    rc = reconcile(netns_fd, o, INPOD_IPV4, false, err, errlen);
    if (rc == 0 && o->ipv6)
        rc = reconcile(netns_fd, o, INPOD_IPV6, false, err, errlen);
    if (rc == 0)
        rc = inpod_routing(netns_fd, true, o->ipv6, err, errlen);
    return rc;
}

int
inpod_remove(int netns_fd, const struct inpod_opts *o, char *err, size_t errlen)
{
    static const struct inpod_opts defaults;
    char msg[2048];
    int rc = 0, r;

    if (o == NULL)
        o = &defaults;
    /* Every step is tried; the first failure is reported. */
    r = reconcile(netns_fd, o, INPOD_IPV4, true, msg, sizeof(msg));
    if (r < 0 && rc == 0) {
        rc = r;
        snprintf(err, errlen, "%s", msg);
    }
    if (o->ipv6) {
        r = reconcile(netns_fd, o, INPOD_IPV6, true, msg, sizeof(msg));
        if (r < 0 && rc == 0) {
            rc = r;
            snprintf(err, errlen, "%s", msg);
        }
    }
    r = inpod_routing(netns_fd, false, o->ipv6, msg, sizeof(msg));
    if (r < 0 && rc == 0) {
        rc = r;
        snprintf(err, errlen, "%s", msg);
    }
    return rc;
}
