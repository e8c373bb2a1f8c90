/*
 * kube_reflect.c - a test program for lib/kube against a real API server
 * (tests/integration/44-kube-reflector.sh): runs one reflector per kind named
 * on the command line and keeps its view in a file, rewritten (atomically)
 * 50 ms after each change. Not installed.
 *
 *   kube_reflect KUBECONFIG OUT GV/PLURAL/KIND...   e.g. v1/configmaps/ConfigMap
 *
 * OUT holds one line per object, sorted: "plural namespace/name resourceVersion",
 * then "#synced plural served|absent" per kind once it synced, and
 * "#stats plural lists relists watches events bookmarks expired errors".
 * OUT.sync gets "plural N_OBJECTS MS" when a kind first synced (MS since start).
 * SIGTERM or SIGINT stops it cleanly.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "kube/kube.h"
#include "loop/loop.h"

#define MAX_KINDS 16

struct kind {
    struct kube_resource r;
    char gv[128], plural[64], kindname[64];
    struct kube_reflector *rf;
    json_t *objs; /* "ns/name" -> rv */
    int synced;   /* -1 not yet, 0 absent, 1 served */
    bool reported;
};

static struct kind kinds[MAX_KINDS];
static int n_kinds;
static const char *out_path;
static struct loop *loop;
static struct loop_timer write_timer, sig_timer;
static volatile sig_atomic_t stop_flag;
static uint64_t t0;

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
write_view(void *arg)
{
    (void)arg;
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s.tmp", out_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    for (int i = 0; i < n_kinds; i++) {
        struct kind *k = &kinds[i];
        const char **keys = xcalloc(json_object_size(k->objs) + 1, sizeof(*keys));
        size_t n = 0;
        const char *key;
        json_t *v;
        json_object_foreach(k->objs, key, v) keys[n++] = key;
        qsort(keys, n, sizeof(*keys), cmp_str);
        for (size_t j = 0; j < n; j++)
            fprintf(f, "%s %s %s\n", k->plural, keys[j],
                    json_string_value(json_object_get(k->objs, keys[j])));
        free(keys);
    }
    for (int i = 0; i < n_kinds; i++) {
        struct kind *k = &kinds[i];
        struct kube_reflector_stats st;
        if (k->synced >= 0)
            fprintf(f, "#synced %s %s\n", k->plural, k->synced ? "served" : "absent");
        kube_reflector_stats(k->rf, &st);
        fprintf(f, "#stats %s %lu %lu %lu %lu %lu %lu %lu\n", k->plural, st.lists, st.relists,
                st.watches, st.events, st.bookmarks, st.expired, st.errors);
    }
    fclose(f);
    rename(tmp, out_path);
}

static void
changed(void)
{
    if (!loop_timer_armed(&write_timer))
        loop_timer_start(loop, &write_timer, 50, write_view, NULL);
}

static struct kind *
kind_of(const struct kube_resource *r)
{
    return (struct kind *)((char *)r - offsetof(struct kind, r));
}

static bool
key_of(const json_t *obj, char *key, size_t cap, const char **rv)
{
    json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    *rv = json_string_value(json_object_get(md, "resourceVersion"));
    if (name == NULL || *rv == NULL)
        return false;
    snprintf(key, cap, "%s/%s", ns != NULL ? ns : "", name);
    return true;
}

static void
on_upsert(void *arg, const struct kube_resource *r, const json_t *obj)
{
    (void)arg;
    char key[600];
    const char *rv;
    if (!key_of(obj, key, sizeof(key), &rv))
        abort(); /* the library hands over only named objects */
    json_object_set_new(kind_of(r)->objs, key, json_string(rv));
    changed();
}

static void
on_remove(void *arg, const struct kube_resource *r, const json_t *obj)
{
    (void)arg;
    char key[600];
    const char *rv;
    if (!key_of(obj, key, sizeof(key), &rv))
        abort();
    json_object_del(kind_of(r)->objs, key);
    changed();
}

static void
on_synced(void *arg, const struct kube_resource *r, bool served)
{
    (void)arg;
    struct kind *k = kind_of(r);
    k->synced = served;
    if (!k->reported && served) {
        k->reported = true;
        char p[512];
        snprintf(p, sizeof(p), "%s.sync", out_path);
        FILE *f = fopen(p, "a");
        if (f != NULL) {
            fprintf(f, "%s %zu %llu\n", k->plural, json_object_size(k->objs),
                    (unsigned long long)(clock_mono_ms() - t0));
            fclose(f);
        }
    }
    changed();
}

static const struct kube_sink sink = {on_upsert, on_remove, on_synced};

static void
on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void
check_stop(void *arg)
{
    (void)arg;
    if (stop_flag)
        loop_stop(loop);
    else
        loop_timer_start(loop, &sig_timer, 100, check_stop, NULL);
}

int
main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: kube_reflect KUBECONFIG OUT GROUP_VERSION/PLURAL/KIND...\n");
        return 2;
    }
    struct kube_config cfg;
    char err[512];
    if (kube_config_load_file(argv[1], NULL, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "kube_reflect: %s\n", err);
        return 1;
    }
    out_path = argv[2];
    loop = loop_new();
    struct kube_client *c = kube_client_new(loop, &cfg, err, sizeof(err));
    kube_config_free(&cfg);
    if (c == NULL) {
        fprintf(stderr, "kube_reflect: %s\n", err);
        return 1;
    }
    t0 = clock_mono_ms();
    for (int i = 3; i < argc && n_kinds < MAX_KINDS; i++) {
        struct kind *k = &kinds[n_kinds++];
        char *kindp = strrchr(argv[i], '/');
        if (kindp == NULL || kindp == argv[i])
            return 2;
        *kindp++ = '\0';
        char *plural = strrchr(argv[i], '/');
        if (plural == NULL)
            return 2;
        *plural++ = '\0';
        snprintf(k->gv, sizeof(k->gv), "%s", argv[i]);
        snprintf(k->plural, sizeof(k->plural), "%s", plural);
        snprintf(k->kindname, sizeof(k->kindname), "%s", kindp);
        k->r = (struct kube_resource){k->gv, k->plural, k->kindname, true};
        k->objs = json_object();
        k->synced = -1;
        k->rf = kube_reflector_start(c, &k->r, NULL, NULL, &sink, NULL);
        if (k->rf == NULL)
            return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    loop_timer_start(loop, &sig_timer, 100, check_stop, NULL);
    changed();
    loop_run(loop);
    write_view(NULL);
    loop_timer_stop(loop, &write_timer);
    loop_timer_stop(loop, &sig_timer);
    kube_client_free(c);
    loop_run_deferred(loop);
    for (int i = 0; i < n_kinds; i++)
        json_decref(kinds[i].objs);
    loop_free(loop);
    return 0;
}
