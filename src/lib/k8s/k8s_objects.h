/*
 * k8s_objects.h - the decoded objects of a store, as the reader made them,
 * for the modules that convert them (lib/k8sconv): their fields, the objects
 * in effect, the diagnostics and arena helpers. Read-only for them: only the
 * reader's own files (k8s_internal.h) create, change or free objects.
 */
#ifndef MESH_LIB_K8S_OBJECTS_H
#define MESH_LIB_K8S_OBJECTS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "k8s/k8s.h"

/* ---- Diagnostics and hashing (k8s_diag.c) ---- */

void k8s_diag_add(struct k8s_diags *d, const char *file, int line, int severity, const char *code,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void k8s_diag_vadd(struct k8s_diags *d, const char *file, int line, int severity, const char *code,
                   const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
/* Appends copies of |src|'s entries to |dst|. */
void k8s_diags_append(struct k8s_diags *dst, const struct k8s_diags *src);
/* Stable sort by file, then line. */
void k8s_diags_sort(struct k8s_diags *d);

#define K8S_HASH_INIT 0xcbf29ce484222325ULL
/* FNV-1a, 64 bits: change detection and resource versions, not security. */
uint64_t k8s_hash(uint64_t h, const void *p, size_t n);
/* A faster 64-bit hash of |n| bytes for detecting changed files; not persistent. */
uint64_t k8s_hash_bytes(const void *p, size_t n);

/* ---- Decoded objects ---- */

struct k8s_kv {
    char *k;
    char *v;
};

struct k8s_owner {
    char *kind;
    char *name;
    bool controller;
};

struct k8s_meta {
    char *ns; /* "" for Namespace */
    char *name;
    char *uid;             /* "" when absent */
    char *generate_name;   /* "" when absent */
    bool deleting;         /* deletionTimestamp set */
    struct k8s_kv *labels; /* sorted by key */
    size_t n_labels;
    struct k8s_kv *annotations; /* sorted by key */
    size_t n_annotations;
    struct k8s_owner *owners;
    size_t n_owners;
};

struct k8s_ip {
    uint8_t len; /* 4 or 16 */
    uint8_t b[16];
};

/* A container port a named targetPort can resolve to. */
struct k8s_cport {
    char *name; /* "" when unnamed */
    uint16_t port;
    bool tcp;
};

struct k8s_pod {
    char *service_account; /* defaulted to "default", as the API server does */
    char *node;            /* "" when unscheduled */
    bool host_network;
    bool ready;         /* condition Ready is "True" */
    bool terminal;      /* phase Succeeded or Failed */
    struct k8s_ip *ips; /* status.podIPs, else status.podIP */
    size_t n_ips;
    struct k8s_cport *ports; /* containers, then restartable init containers */
    size_t n_ports;
};

struct k8s_sport {
    char *name; /* "" when unnamed */
    uint16_t port;
    uint16_t target_port; /* 0 when the target is named */
    char *target_name;    /* NULL unless the target is named */
    char *app_protocol;   /* NULL when absent */
    bool udp;
};

struct k8s_service {
    bool external_name;
    bool itp_local;             /* internalTrafficPolicy: Local */
    bool publish_not_ready;     /* publishNotReadyAddresses */
    char *traffic_distribution; /* NULL when absent */
    int ip_families;            /* Istio__Workload__IPFamilies */
    struct k8s_kv *selector;    /* sorted by key */
    size_t n_selector;
    struct k8s_sport *ports;
    size_t n_ports;
    struct k8s_ip *vips; /* clusterIPs, else clusterIP; none when headless */
    size_t n_vips;
};

/* One endpoint of an EndpointSlice (k8s_slice.c). */
struct k8s_ep {
    struct k8s_ip ip; /* addresses[0]: istiod uses only the first */
    char *key;        /* addresses[0] as written: the last part of the workload's uid */
    bool ready;       /* conditions.ready; absent counts as ready */
    bool pod;         /* targetRef.kind Pod: the pod is a workload of its own */
};

struct k8s_slice_port {
    char *name; /* "" when unnamed (the API server's default) */
    uint16_t port;
    bool tcp; /* protocol TCP, the API server's default */
};

struct k8s_slice {
    char *service; /* label kubernetes.io/service-name, NULL when absent */
    bool fqdn;     /* addressType FQDN: not converted, as istiod */
    struct k8s_ep *eps;
    size_t n_eps;
    struct k8s_slice_port *ports; /* a port without a number is left out */
    size_t n_ports;
};

/* An AuthorizationPolicy, converted when decoded (it depends on nothing else; k8s_authz.c). */
struct k8s_ap {
    bool sent;             /* a resource is served (not targetRefs, AUDIT or CUSTOM) */
    bool selector;         /* spec.selector given: WORKLOAD_SELECTOR scope */
    bool match_labels;     /* spec.selector.matchLabels given (even empty): workloads list it */
    struct k8s_kv *labels; /* matchLabels, sorted by key */
    size_t n_labels;
    uint8_t *data; /* the packed istio.security.Authorization when sent */
    size_t len;
    char version[17];
    struct k8s_diags diags; /* warnings and notes of the conversion, reported while in effect */
    /*
     * targetRefs: the policy for waypoints (k8s_authz_wp.c). wp_rules is an
     * amesh.waypoint.v1.Policy packed with only its rules (field 5), so the
     * converter prepends name, namespace, targets and action (fields 1-4) and
     * the concatenation is the whole message in field order.
     */
    bool wp_sent;
    bool wp_deny;
    uint8_t *wp_rules;
    size_t wp_len;
};

enum k8s_mtls {
    K8S_MTLS_UNSET = 0,
    K8S_MTLS_DISABLE,
    K8S_MTLS_PERMISSIVE,
    K8S_MTLS_STRICT,
};

struct k8s_port_mtls {
    uint32_t port;
    enum k8s_mtls mode;
    int line; /* where the port is written */
};

/* A PeerAuthentication (k8s_authz_pa.c). */
struct k8s_pa {
    enum k8s_mtls mode;    /* spec.mtls.mode */
    bool selector;         /* spec.selector given (non-null) */
    struct k8s_kv *labels; /* its matchLabels, sorted by key */
    size_t n_labels;
    struct k8s_port_mtls *ports; /* spec.portLevelMtls, by port */
    size_t n_ports;
    int64_t created;        /* metadata.creationTimestamp in seconds; INT64_MIN when absent */
    struct k8s_diags diags; /* warnings that depend on this object alone */
};

struct k8s_obj {
    enum k8s_kind kind;
    char *file;
    int line;
    struct k8s_meta meta;
    json_t *json;            /* owned reference */
    struct k8s_lines *lines; /* owned reference */
    uint64_t hash;           /* of the JSON content: detects changes */
    /*
     * Unique per (identity, content) in a store: a reload of the same file that
     * leaves an object's JSON equal keeps its gen; any other new object gets a
     * fresh one. Resources built from objects whose gens did not change need
     * not be built again: the converter keeps what it built keyed by gen.
     */
    uint64_t gen;
    union {
        struct k8s_pod pod;
        struct k8s_service svc;
        struct k8s_ap ap;
        struct k8s_pa pa;
        struct k8s_slice slice;
    } u;
};

/* Returns the value of |key| in a sorted key/value array, or NULL. */
const char *k8s_kv_get(const struct k8s_kv *kv, size_t n, const char *key);

/* ---- The objects in effect (k8s_store.c, k8s_query.c) ---- */

/* Counts re-derivations of the objects in effect: equal means the same objects, pointers too. */
uint64_t k8s_store_eff_version(const struct k8s_store *st);
/* Unique among the stores of this process (object gens are unique per store only). */
uint64_t k8s_store_id(const struct k8s_store *st);
/* The objects in effect of |kind| in namespace |ns|: [*begin, *end). */
void k8s_store_ns_range(const struct k8s_store *st, enum k8s_kind kind, const char *ns,
                        size_t *begin, size_t *end);
/* How many objects of eff[kind] from |i| on are in eff[kind][i]'s namespace. */
size_t k8s_ns_run(const struct k8s_store *st, enum k8s_kind kind, size_t i);
/*
 * Appends, unsorted, each file's diagnostics from its last load (in path
 * order), then the duplicates between files: k8s_store_file_diags() sorts
 * them; the converter adds its own before sorting.
 */
void k8s_store_diags_unsorted(const struct k8s_store *st, struct k8s_diags *out);

/* ---- Arena (k8s_arena.c) ---- */

/* Allocations for one message, freed together once it is packed. */
struct k8s_arena {
    void **v;
    size_t n;
};

void *k8s_arena_alloc(struct k8s_arena *a, size_t size);
char *k8s_arena_printf(struct k8s_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void k8s_arena_free(struct k8s_arena *a);

#endif
