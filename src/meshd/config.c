/*
 * config.c - the config directory: read it, follow it with inotify, turn it
 * into an xDS snapshot, and keep serving the last good state when a file or
 * resource is broken (the k8s store keeps what was valid; we only report).
 *
 * Changes are debounced (lib/dirwatch): everything that arrives within one
 * debounce period goes into one reload and at most one push. The Kubernetes
 * source (kube_source.c) feeds the same store and calls config_kick(): the
 * rebuild waits until changes pause for a debounce period (at most
 * CONFIG_KICK_MAX_WAITS of them), so a relist arriving page after page makes
 * one snapshot; and nothing is built while the gate is closed (not every
 * kind listed once), so no proxy ever sees a half-listed cluster.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "config"
#include "base/base.h"
#include "dirwatch/dirwatch.h"
#include "k8s/k8s.h"
#include "k8sconv/k8sconv.h"
#include "log/log.h"
#include "meshd.h"
#include "xds/xds.h"

/*
 * A stream of changes delays the rebuild by at most this many debounce
 * periods (2 s by default): enough for a relist of thousands of objects to
 * arrive page by page; a lone change waits one period.
 */
#define CONFIG_KICK_MAX_WAITS 20

struct meshd_config {
    struct meshd *d;
    struct k8s_store *store;
    struct k8s_conv *conv; /* what was built from the store, reused while objects are unchanged */
    struct xds_snapshot *snap;
    uint64_t built_gen;
    struct dirwatch *watch;       /* NULL without --config-dir */
    bool gated;                   /* waiting for the Kubernetes source's first full list */
    struct loop_timer kick_timer; /* debounce of config_kick() */
    uint64_t kick_first_ms;       /* when the pending kicks began */
    char **standing; /* diagnostics standing after the last reload, rendered */
    size_t n_standing;
    /*
     * Waypoint configs built at the store's generation |wp_gen|, one per Gateway asked for:
     * every replica of a waypoint streams the same config, so it is built once per change.
     */
    struct wp_cached {
        char *key; /* "<ns>/<name>" */
        struct xds_snapshot *snap;
        bool exists;
    } *wp;
    size_t n_wp;
    uint64_t wp_gen;
};

static void
wp_cache_clear(struct meshd_config *c)
{
    for (size_t i = 0; i < c->n_wp; i++) {
        free(c->wp[i].key);
        xds_snapshot_unref(c->wp[i].snap);
    }
    free(c->wp);
    c->wp = NULL;
    c->n_wp = 0;
}

static bool
was_standing(const struct meshd_config *c, const char *s)
{
    for (size_t i = 0; i < c->n_standing; i++)
        if (strcmp(c->standing[i], s) == 0)
            return true;
    return false;
}

/* Logs diagnostics that are new since the last reload; keeps the standing set. */
static void
report(struct meshd_config *c)
{
    struct k8s_diags all = {0};
    k8s_conv_diags(c->conv, c->store, &all);
    char **now = xcalloc(all.n ? all.n : 1, sizeof(*now));
    size_t errors = 0;
    for (size_t i = 0; i < all.n; i++) {
        now[i] = k8s_diag_str(&all.v[i]);
        if (all.v[i].severity == K8S_ERROR) {
            errors++;
            /* An API object's: a Warning Event on it, once per resourceVersion. */
            meshd_kube_report(c->d, all.v[i].file, all.v[i].msg);
        }
        if (!was_standing(c, now[i])) {
            if (all.v[i].severity == K8S_ERROR) {
                log_error("%s", now[i]);
                c->d->stats.config_errors_total++;
            } else {
                log_warn("%s", now[i]);
            }
        }
    }
    for (size_t i = 0; i < c->n_standing; i++)
        free(c->standing[i]);
    free(c->standing);
    c->standing = now;
    c->n_standing = all.n;
    c->d->stats.config_errors_now = errors;
    k8s_diags_clear(&all);
}

/* Moves the resources of |res| into a new snapshot (NULL when two share a name). */
static struct xds_snapshot *
snapshot_of(struct mesh_resources *res0)
{
    struct mesh_resources res = *res0;
    struct xds_resource *v = xcalloc(res.n ? res.n : 1, sizeof(*v));
    for (size_t i = 0; i < res.n; i++) {
        struct mesh_resource *r = &res.v[i];
        v[i].type_url = xstrdup(r->type_url);
        v[i].name = r->name;
        v[i].bytes = r->data;
        v[i].len = r->len;
        v[i].version = xstrdup(r->version);
        r->name = NULL;
        r->data = NULL;
    }
    size_t n = res.n;
    mesh_resources_free(&res);
    memset(res0, 0, sizeof(*res0));
    return xds_snapshot_new(v, n);
}

static struct xds_snapshot *
build_snapshot(struct meshd_config *c)
{
    struct mesh_resources res = {0};
    struct k8s_diags diags = {0};
    struct k8s_build_opts o = {
        .cluster_id = c->d->opts.cluster_id,
        .trust_domain = c->d->opts.trust_domain,
    };
    k8s_conv_build(c->conv, c->store, &o, &res, &diags);
    k8s_diags_clear(&diags); /* conversion warnings are part of k8s_conv_diags() */
    return snapshot_of(&res);
}

struct xds_snapshot *
config_waypoint_snapshot(struct meshd_config *c, const char *ns, const char *name, bool *exists)
{
    uint64_t gen = k8s_store_generation(c->store);
    char *key = xasprintf("%s/%s", ns, name);

    if (gen != c->wp_gen) {
        wp_cache_clear(c);
        c->wp_gen = gen;
    }
    for (size_t i = 0; i < c->n_wp; i++)
        if (strcmp(c->wp[i].key, key) == 0) {
            free(key);
            *exists = c->wp[i].exists;
            return xds_snapshot_ref(c->wp[i].snap);
        }
    struct mesh_resources res = {0};
    struct k8s_build_opts o = {
        .cluster_id = c->d->opts.cluster_id,
        .trust_domain = c->d->opts.trust_domain,
    };
    /* Route errors are reported by k8s_conv_diags(), once for the whole store. */
    *exists = k8s_waypoint_config(c->store, &o, ns, name, &res, NULL) == 0;
    struct xds_snapshot *snap = snapshot_of(&res);
    if (snap == NULL) {
        free(key);
        return NULL;
    }
    c->wp = xrealloc(c->wp, (c->n_wp + 1) * sizeof(*c->wp));
    c->wp[c->n_wp++] = (struct wp_cached){key, xds_snapshot_ref(snap), *exists};
    return snap;
}

struct xds_snapshot *
config_empty_snapshot(void)
{
    return xds_snapshot_new(NULL, 0);
}

static void
reload(struct meshd_config *c, bool sync_dir)
{
    struct k8s_diags diags = {0};
    uint64_t t0 = clock_mono_ms();
    const char *what = c->d->opts.config_dir ? c->d->opts.config_dir : "the Kubernetes API";
    int rc = 0;
    if (sync_dir && c->d->opts.config_dir != NULL)
        rc = k8s_store_sync_dir(c->store, c->d->opts.config_dir, &diags);
    k8s_diags_clear(&diags);
    k8s_store_commit(c->store); /* what the Kubernetes source put since its last commit */
    c->d->stats.config_reloads++;
    if (rc < 0 && rc != -MESH_ECONFIG) {
        log_error("%s: %s; serving the last good config", c->d->opts.config_dir,
                  mesh_strerror(rc));
        return;
    }
    if (c->gated)
        return; /* the directory is read; the rest waits for every kind's first list */
    report(c);
    uint64_t gen = k8s_store_generation(c->store);
    if (c->snap != NULL && gen == c->built_gen)
        return;
    struct xds_snapshot *snap = build_snapshot(c);
    if (snap == NULL) {
        log_error("cannot build a snapshot from %s; serving the last good one", what);
        return;
    }
    c->built_gen = gen;
    if (c->snap != NULL &&
        strcmp(xds_snapshot_version(c->snap), xds_snapshot_version(snap)) == 0) {
        xds_snapshot_unref(snap);
        /* Shared resources unchanged, but what waypoints get (routes) may differ. */
        if (c->d->server != NULL)
            server_snapshot_changed(c->d->server);
        return;
    }
    xds_snapshot_unref(c->snap);
    c->snap = snap;
    log_info("config: %zu resources, version %s (%" PRIu64 " ms)", xds_snapshot_len(snap),
             xds_snapshot_version(snap), clock_mono_ms() - t0);
    if (c->d->server != NULL)
        server_snapshot_changed(c->d->server);
}

static void
on_change(void *arg)
{
    reload(arg, true);
}

static void
on_kick(void *arg)
{
    reload(arg, false);
}

void
config_kick(struct meshd_config *c)
{
    uint64_t now = loop_now_ms(c->d->loop);
    if (!loop_timer_armed(&c->kick_timer))
        c->kick_first_ms = now;
    else if (now - c->kick_first_ms >= c->d->opts.debounce_ms * (CONFIG_KICK_MAX_WAITS - 1))
        return; /* waited long enough: let the armed timer fire */
    loop_timer_start(c->d->loop, &c->kick_timer, c->d->opts.debounce_ms, on_kick, c);
}

void
config_open_gate(struct meshd_config *c)
{
    if (!c->gated)
        return;
    c->gated = false;
    loop_timer_stop(c->d->loop, &c->kick_timer);
    reload(c, false);
}

struct k8s_store *
config_store_rw(struct meshd_config *c)
{
    return c->store;
}

struct meshd_config *
config_start(struct meshd *d, char *err, size_t errlen)
{
    struct meshd_config *c = xcalloc(1, sizeof(*c));
    char why[512];

    c->d = d;
    c->store = k8s_store_new();
    c->conv = k8s_conv_new();
    c->gated = kube_src_enabled(&d->opts.kube);
    if (d->opts.config_dir != NULL) {
        c->watch = dirwatch_start(d->loop, d->opts.config_dir, d->opts.debounce_ms, on_change, c,
                                  why, sizeof(why));
        if (c->watch == NULL) {
            snprintf(err, errlen, "--config-dir: %s", why);
            goto fail;
        }
    }
    reload(c, true);
    if (c->snap == NULL && !c->gated) {
        snprintf(err, errlen, "--config-dir %s: cannot be read", d->opts.config_dir);
        goto fail;
    }
    return c;
fail:
    config_stop(c);
    return NULL;
}

void
config_stop(struct meshd_config *c)
{
    if (c == NULL)
        return;
    dirwatch_stop(c->watch);
    loop_timer_stop(c->d->loop, &c->kick_timer);
    for (size_t i = 0; i < c->n_standing; i++)
        free(c->standing[i]);
    free(c->standing);
    wp_cache_clear(c);
    xds_snapshot_unref(c->snap);
    k8s_conv_free(c->conv);
    k8s_store_free(c->store);
    free(c);
}

struct xds_snapshot *
config_snapshot(const struct meshd_config *c)
{
    return c->snap;
}

const struct k8s_store *
config_store(const struct meshd_config *c)
{
    return c->store;
}

char *
config_errors_text(const struct meshd_config *c)
{
    size_t len = 1;
    for (size_t i = 0; i < c->n_standing; i++)
        len += strlen(c->standing[i]) + 1;
    char *out = xmalloc(len), *p = out;
    for (size_t i = 0; i < c->n_standing; i++) {
        size_t n = strlen(c->standing[i]);
        memcpy(p, c->standing[i], n);
        p[n] = '\n';
        p += n + 1;
    }
    *p = '\0';
    return out;
}
