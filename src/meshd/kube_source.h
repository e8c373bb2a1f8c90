/*
 * kube_source.h - what kube_source.c (reflectors into the store, the synced
 * gate), kube_publish.c (istio-ca-root-cert ConfigMaps, Warning Events) and
 * kube_waypoint.c (waypoint Deployments, Gateway status) share. Everything runs on meshd's loop.
 */
#ifndef MESH_MESHD_KUBE_SOURCE_H
#define MESH_MESHD_KUBE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "k8s/k8s.h"
#include "kube/kube.h"
#include "kubesrc/kubesrc.h"
#include "log/log.h"
#include "loop/loop.h"

struct meshd;

#define KUBE_ROOT_CM_NAME "istio-ca-root-cert"
#define KUBE_ROOT_CM_KEY "root-cert.pem"
#define KUBE_CM_RETRY_MS 5000    /* a ConfigMap write that failed is tried again */
#define KUBE_CM_SETTLE_MS 200    /* Namespace and ConfigMap changes are reconciled in batches */
#define KUBE_MAX_EVENT_MSG 1024  /* bytes of one Event message */
#define KUBE_MAX_REPORTED 4096   /* objects whose last reported version is remembered */

/* One kind meshd watches: the version it prefers and the one it falls back to (404). */
struct kube_kind {
    struct kube_resource res;
    struct kube_resource fallback; /* group_version NULL: none */
    enum k8s_kind store_kind;
    struct meshd_kube *k;
    struct kube_reflector *rf, *rf_fb;
    bool synced;  /* counted for the gate */
    bool served;  /* by res (or, after a fallback, by fallback) */
    uint64_t n_up, n_rm;
};

/* A source's last reported Event, and the bad version the store refused. */
struct kube_reported {
    char *file;     /* "api:Kind/ns/name" */
    char *rv;       /* resourceVersion an Event was sent for, or NULL */
    json_t *bad;    /* involvedObject of a refused version, or NULL */
};

/* istio-ca-root-cert of one namespace as the ConfigMap watch shows it. */
struct cm_op;
struct kube_cm {
    char *ns;
    bool exists, current;
    struct cm_op *op; /* a write in flight */
};

struct meshd_kube {
    struct meshd *d;
    struct k8s_store *st;
    struct kube_kind *kinds;
    size_t n_kinds, n_synced;
    bool gate_open;
    uint64_t start_ms;

    /* ConfigMaps (kube_publish.c) */
    char *root_pem;
    struct kube_resource cm_res;
    struct kube_reflector *cm_rf;
    bool cm_synced;
    struct kube_cm *cms; /* sorted by ns */
    size_t n_cms;
    struct loop_timer cm_timer;
    uint64_t cm_creates, cm_updates, cm_failures;

    /* Events (kube_publish.c) */
    struct kube_reported *rep; /* sorted by file */
    size_t n_rep;
    struct log_ratelimit event_rl;
    uint64_t events_sent, events_dropped, events_failed;

    /* Waypoints (kube_waypoint.c) */
    struct kube_wp *wp;
};

/* kube_source.c */
/* The kinds table entry for |kind| ("Pod"), or NULL. */
const struct kube_kind *kube_kind_by_name(const struct meshd_kube *k, const char *kind);

/* kube_publish.c */
int kube_publish_start(struct meshd_kube *k, char *err, size_t errlen);
void kube_publish_stop(struct meshd_kube *k);
/* The Namespaces or the ConfigMap watch changed: reconcile soon. */
void kube_cm_schedule(struct meshd_kube *k, uint64_t delay_ms);
/* The store refused |obj| as |file| (diagnostics in the store), or accepted/removed it. */
void kube_report_refused(struct meshd_kube *k, const char *file, const json_t *obj);
void kube_report_clear(struct meshd_kube *k, const char *file, bool removed);
void kube_report_free(struct meshd_kube *k);
/* The current time as RFC 3339 (UTC, seconds), as Events and conditions carry it. */
void kube_rfc3339_now(char *buf, size_t len);

/* kube_waypoint.c */
int kube_wp_start(struct meshd_kube *k, char *err, size_t errlen);
void kube_wp_stop(struct meshd_kube *k);
/* Something a waypoint pass reads changed (or the gate opened): a pass soon. */
void kube_wp_changed(struct meshd_kube *k);
void kube_wp_metrics(const struct meshd_kube *k, FILE *f);

#endif
