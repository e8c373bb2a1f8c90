/*
 * enroll_scan.c - pods that should be in the mesh, have IPs, and no sandbox
 * reported by the plugin: their namespace looked for among the host's
 * (scan.h), at a bounded pace, and recorded as a sandbox of container id
 * SCAN_CONTAINER_ID so that they take the plugin's enroll path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "cni"
#include "base/base.h"
#include "enroll_internal.h"
#include "log/log.h"
#include "sandboxes.h"
#include "scan.h"

void
enroll_forget_scanned(struct cni *c)
{
    for (struct record **pp = &c->records; *pp != NULL;) {
        struct record *r = *pp;
        char ns[300];
        const char *slash = strchr(r->key, '/');
        struct k8s_pod_info pi;
        bool keep = true;
        if (strcmp(r->container_id, SCAN_CONTAINER_ID) == 0 && slash != NULL &&
            (size_t)(slash - r->key) < sizeof(ns)) {
            memcpy(ns, r->key, (size_t)(slash - r->key));
            ns[slash - r->key] = '\0';
            keep = k8s_pod_info(c->store, ns, slash + 1, &pi) && !pi.terminated &&
                   strcmp(pi.uid, r->uid) == 0;
            if (!keep && c->o.plugin_state != NULL)
                sandboxes_forget(c->o.plugin_state, ns, slash + 1);
        }
        if (keep) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        c->n_records--;
        enroll_record_free(r);
    }
}

/* Pods that should be in the mesh, have IPs, and no namespace yet; |keys| hold their names. */
static size_t
scan_wants(struct cni *c, struct scan_want *w, char (*keys)[600], size_t max, uint64_t *sig)
{
    size_t n = 0, np = k8s_store_count(c->store, K8S_POD);

    *sig = 1469598103934665603ULL;
    for (size_t i = 0; i < np && n < max; i++) {
        const struct k8s_obj *pod = k8s_store_at(c->store, K8S_POD, i);
        struct k8s_pod_info pi;
        if (!k8s_pod_info(c->store, k8s_obj_namespace(pod), k8s_obj_name(pod), &pi) ||
            strcmp(pi.node, c->o.node) != 0 || pi.terminated || !pi.enrolled)
            continue;
        snprintf(keys[n], sizeof(keys[n]), "%s/%s", k8s_obj_namespace(pod), k8s_obj_name(pod));
        if (enroll_pod_netns(c, pod, &pi, keys[n]) != NULL)
            continue;
        memset(&w[n], 0, sizeof(w[n]));
        w[n].key = keys[n];
        if ((w[n].n_ips = scan_pod_ips(k8s_obj_json(pod), w[n].ips, SCAN_IPS_MAX)) == 0)
            continue; /* no IP yet: nothing to look for */
        /* FNV-1a over names and addresses: the same set waits longer between scans. */
        for (const char *p = keys[n]; *p; p++)
            *sig = (*sig ^ (uint8_t)*p) * 1099511628211ULL;
        for (size_t j = 0; j < w[n].n_ips; j++)
            for (size_t b = 0; b < 16; b++)
                *sig = (*sig ^ w[n].ips[j].b[b]) * 1099511628211ULL;
        n++;
    }
    return n;
}

#define SCAN_WANTS_MAX 256

static void
on_scan(void *arg)
{
    struct cni *c = arg;
    struct scan_want *w = xcalloc(SCAN_WANTS_MAX, sizeof(*w));
    char(*keys)[600] = xcalloc(SCAN_WANTS_MAX, sizeof(*keys));
    struct scan_stats st;
    uint64_t sig;
    size_t found = 0;

    c->scan_armed = false;
    size_t n = scan_wants(c, w, keys, SCAN_WANTS_MAX, &sig);
    if (n == 0 || enroll_gated(c) || c->zds == NULL)
        goto out;
    /* The same pods as last time, still not found: look less often (up to 30 s). */
    c->scan_backoff_ms = sig != c->scan_sig                             ? SCAN_INTERVAL_MS
                         : c->scan_backoff_ms * 2 > SCAN_BACKOFF_MAX_MS ? SCAN_BACKOFF_MAX_MS
                                                                        : c->scan_backoff_ms * 2;
    c->scan_sig = sig;
    c->scan_last_ms = loop_now_ms(c->loop);
    scan_netns(c->o.host_proc, c->o.netns_dir, w, n, &st);
    for (size_t i = 0; i < n; i++) {
        struct cni_req r;
        char err[256], ns[64], name[254];
        const char *slash = strchr(w[i].key, '/');
        if (w[i].ambiguous) {
            log_warn_rl(&c->scan_rl,
                        "%s: more than one network namespace holds its IPs; "
                        "not enrolled until its sandbox is reported",
                        w[i].key);
            continue;
        }
        if (w[i].path[0] == '\0')
            continue;
        snprintf(ns, sizeof(ns), "%.*s", (int)(slash - w[i].key), w[i].key);
        snprintf(name, sizeof(name), "%s", slash + 1);
        struct k8s_pod_info pi;
        if (!k8s_pod_info(c->store, ns, name, &pi))
            continue;
        if (cni_req_set(&r, CNI_CMD_ADD, ns, name, pi.uid, SCAN_CONTAINER_ID, w[i].path, NULL, 0,
                        err, sizeof(err)) < 0 ||
            enroll_record_set(c, &r) < 0) {
            log_warn_rl(&c->scan_rl, "%s: found in %s but not recorded: %s", w[i].key, w[i].path,
                        err);
            continue;
        }
        if (c->o.plugin_state != NULL)
            sandboxes_save(c->o.plugin_state, &r);
        log_info("%s: its network namespace is %s (found by its IPs; it started before "
                 "mesh-cni or its plugin)",
                 w[i].key, w[i].path);
        found++;
    }
    log_info("netns scan: %zu pods to find, %zu found; %zu processes, %zu namespaces, %zu "
             "examined (%zu unreadable) in %llu ms%s%s",
             n, found, st.pids, st.netns, st.examined, st.failed, (unsigned long long)st.ms,
             st.truncated ? " (cut short by its caps)" : "",
             found < n ? "; the rest are looked for again later" : "");
    if (found > 0)
        enroll_converge(c); /* enrolls them, and schedules the next look for the rest */
    else
        enroll_scan_maybe(c);
out:
    free(w);
    free(keys);
}

/* Arms the next scan if pods wait for one: soon for a new set, with backoff for the same. */
void
enroll_scan_maybe(struct cni *c)
{
    struct scan_want *w;
    char(*keys)[600];
    uint64_t sig, now = loop_now_ms(c->loop), due;

    if (c->o.host_proc == NULL || c->scan_armed || enroll_gated(c) || c->zds == NULL)
        return;
    w = xcalloc(SCAN_WANTS_MAX, sizeof(*w));
    keys = xcalloc(SCAN_WANTS_MAX, sizeof(*keys));
    size_t n = scan_wants(c, w, keys, SCAN_WANTS_MAX, &sig);
    free(w);
    free(keys);
    if (n == 0)
        return;
    due = c->scan_last_ms == 0
              ? now
              : c->scan_last_ms + (sig == c->scan_sig ? c->scan_backoff_ms : SCAN_INTERVAL_MS);
    c->scan_armed = true;
    loop_timer_start(c->loop, &c->scan_timer, due > now ? due - now : 0, on_scan, c);
}
