/*
 * k8s_internal.h - what the k8s module's files share: decoded objects, the
 * YAML reader, field decoding helpers, diagnostics and the build context.
 *
 *   k8s_yaml.c     YAML bytes -> JSON documents with a line map
 *   k8s_decode.c   apiVersion/kind/metadata, Namespace, ServiceAccount, stored kinds
 *   k8s_pod.c      Pod fields            k8s_service.c  Service fields
 *   k8s_json.c     typed field getters with file:line errors, name/label rules
 *   k8s_store.c    files, last-good-state rules, objects in effect (re-derived from the
 *                  files that changed), object gens
 *   k8s_query.c    lookups over the objects in effect, object accessors
 *   k8s_files.c    reading files and directories
 *   k8s_build.c    resources, versions, memos of packed resources, the name order
 *   k8s_workload.c Workload per pod; which Services select which pods (the view)
 *   k8s_authz.c    AuthorizationPolicy: validation and conversion to istio.security.Authorization
 *   k8s_authz_pa.c PeerAuthentication: validation, effective mode, converted policies
 *   k8s_authz_sel.c which policies each workload lists, policy epochs, the Authorization resources
 *   k8s_diag.c     diagnostics, hashing
 */
#ifndef MESH_LIB_K8S_INTERNAL_H
#define MESH_LIB_K8S_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "authorization.pb-c.h"
#include "k8s/k8s.h"
#include "workload.pb-c.h"

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

/* ---- Line map (k8s_yaml.c) ---- */

/*
 * Where each JSON value of a document was written. Values are keyed by
 * pointer; object members also by (object, key) because true, false and null
 * are shared singletons in jansson. Refcounted: List items share one map.
 */
struct k8s_lines;
struct k8s_lines *k8s_lines_ref(struct k8s_lines *l);
void k8s_lines_unref(struct k8s_lines *l);
/* Returns 0 when unknown. */
int k8s_lines_get(const struct k8s_lines *l, const void *v, const char *key);

/* struct k8s_doc, k8s_yaml_parse(), k8s_docs_free(): public, in k8s.h. */

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

struct k8s_memo;

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
     * leaves an object's JSON equal keeps its gen (and memo); any other new
     * object gets a fresh one. Resources built from objects whose gens did not
     * change need not be built again.
     */
    uint64_t gen;
    struct k8s_memo *memo; /* what the builder remembers (k8s_build.c); NULL until built */
    union {
        struct k8s_pod pod;
        struct k8s_service svc;
        struct k8s_ap ap;
        struct k8s_pa pa;
    } u;
};

void k8s_obj_free(struct k8s_obj *o);
/* Returns the value of |key| in a sorted key/value array, or NULL. */
const char *k8s_kv_get(const struct k8s_kv *kv, size_t n, const char *key);

/* ---- Decoding (k8s_decode.c, k8s_pod.c, k8s_service.c, k8s_json.c) ---- */

struct k8s_dctx {
    const char *file;
    struct k8s_diags *d;
    const struct k8s_lines *lines;
    int line; /* the object's line: the fallback */
};

/* What a document said it is, as far as it got. */
struct k8s_ident {
    bool known; /* kind, namespace and name were all valid */
    enum k8s_kind kind;
    char *ns;
    char *name;
};

enum k8s_decode_rc {
    K8S_DECODED = 0,
    K8S_SKIPPED = 1, /* not ours (unknown kind): a warning was added */
};

/*
 * Decodes one object written at |line|. Returns K8S_DECODED with *out set,
 * K8S_SKIPPED, or -MESH_ECONFIG with an error added and |id| telling which
 * object it was meant to be (the caller frees id->ns and id->name).
 */
int k8s_decode(struct k8s_dctx *c, json_t *json, int line, struct k8s_lines *lines,
               struct k8s_obj **out, struct k8s_ident *id);
/* Kind-specific parts; |spec| and |status| may be NULL. */
int k8s_decode_pod(struct k8s_dctx *c, const json_t *json, struct k8s_pod *p);
int k8s_decode_service(struct k8s_dctx *c, const json_t *json, struct k8s_service *s);
void k8s_pod_cleanup(struct k8s_pod *p);
void k8s_service_cleanup(struct k8s_service *s);
/*
 * AuthorizationPolicy and PeerAuthentication: validated as Istio's webhook
 * does (errors make the object invalid: the store keeps its previous
 * version); an AuthorizationPolicy is also converted (k8s_authz.c).
 */
int k8s_decode_authz(struct k8s_dctx *c, const json_t *json, const struct k8s_meta *m,
                     struct k8s_ap *ap);
int k8s_decode_peerauthn(struct k8s_dctx *c, const json_t *json, const struct k8s_meta *m,
                         struct k8s_pa *pa);
void k8s_ap_cleanup(struct k8s_ap *ap);
void k8s_pa_cleanup(struct k8s_pa *pa);

/* Adds an error at |line| and returns -MESH_ECONFIG. */
int k8s_fail(struct k8s_dctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void k8s_warn(struct k8s_dctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int k8s_key_line(const struct k8s_dctx *c, const json_t *parent, const char *key);
int k8s_val_line(const struct k8s_dctx *c, const json_t *v);

/*
 * Field getters for member |key| of |parent|. |path| names |parent| in
 * messages ("spec.ports[2]"; "" for the object itself), which then say
 * "spec.ports[2].port: ...". A missing member or an explicit null leaves *out
 * NULL (false, 0) and returns 0; a wrong type or a value over a cap is an error.
 */
int k8s_get_str(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                const char **out);
int k8s_get_bool(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                 bool *out);
int k8s_get_obj(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                const json_t **out);
int k8s_get_arr(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                size_t max, const json_t **out);
/* An integer 1-65535 (JSON numbers with an integral value count). */
int k8s_get_port(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                 uint16_t *out);
/* Checks |v| is 1-65535; |line| is where it was written, |what| names it in full. */
int k8s_port_value(struct k8s_dctx *c, const json_t *v, int line, const char *what, uint16_t *out);

enum k8s_map_rule {
    K8S_MAP_LABELS = 0,  /* label keys and values */
    K8S_MAP_ANNOTATIONS, /* label-style keys, any values */
};
/* A string-to-string map, sorted by key into *out. */
int k8s_get_strmap(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                   enum k8s_map_rule rule, struct k8s_kv **out, size_t *n_out);
void k8s_kv_free(struct k8s_kv *kv, size_t n);

/* Parses a textual IPv4 or IPv6 address (no zone, no brackets). Returns 0 or -EINVAL. */
int k8s_parse_ip(const char *s, struct k8s_ip *ip);
/* k8s_dns_label(), k8s_dns_subdomain(): public, in k8s.h. */
/* "a mapping", "a list", "a string"... for messages about |v|'s type. */
const char *k8s_json_type_name(const json_t *v);
/* The member |key| of |parent|, or NULL when absent or null. */
const json_t *k8s_json_member(const json_t *parent, const char *key);
/* IANA service name, as a named port (<= 15, [a-z0-9-], a letter, no "--"). */
bool k8s_port_name(const char *s);

/* ---- Store internals (k8s_store.c) for k8s_files.c, k8s_query.c and the builder ---- */

/* Written only by k8s_store.c; the other files read the view (eff) through k8s_query.c. */
struct k8s_file {
    char *path;
    struct k8s_obj **objs; /* in document order */
    size_t n_objs;
    struct k8s_diags diags; /* from the last load */
    uint64_t data_hash;     /* of the bytes last loaded */
    size_t data_len;
    bool dirty; /* objs changed since the objects in effect were derived */
    bool gone;  /* forgotten: freed once they have been re-derived */
};

struct k8s_ref; /* k8s_store.c */

struct k8s_view;

struct k8s_store {
    struct k8s_file **files; /* sorted by path */
    size_t n_files;
    uint64_t generation;
    uint64_t last_gen;                    /* the last k8s_obj.gen given out */
    struct k8s_obj **eff[K8S_KIND_COUNT]; /* in effect, sorted by (ns, name) */
    size_t n_eff[K8S_KIND_COUNT];
    /* Every object, duplicates too, sorted by (ns, name, file path, position): re-derived
     * from the dirty and gone files only. */
    struct k8s_ref *all[K8S_KIND_COUNT];
    size_t n_all[K8S_KIND_COUNT];
    struct k8s_file **gone; /* forgotten since the last derivation */
    size_t n_gone;
    struct k8s_diags dups; /* duplicates between files */
    bool stale;            /* files changed since the view was derived */
    uint64_t eff_version;  /* counts re-derivations of eff */
    /*
     * What selection and building derived from eff, kept between calls: owned,
     * and updated by the (const) readers k8s_store_diags() and
     * k8s_build_resources(), which is why a store is not for concurrent use.
     */
    struct k8s_view *view;
};

/* Is |o| the object |kind| |ns|/|name|? */
bool k8s_same_ident(const struct k8s_obj *o, enum k8s_kind kind, const char *ns, const char *name);

/*
 * k8s_store_load_buf() and k8s_store_remove_file() with the re-derivation of
 * the objects in effect deferred unless |commit|: a directory sync loads
 * every file, then commits once. Diagnostics about duplicates between files
 * are only known after a commit.
 */
int k8s_store_load(struct k8s_store *st, const char *name, const char *data, size_t len,
                   struct k8s_diags *d, bool commit);
void k8s_store_forget(struct k8s_store *st, const char *path, bool commit);
void k8s_store_commit(struct k8s_store *st);
/* Appends the duplicate diagnostics of |path| (NULL: of every file) to |out|. */
void k8s_store_dups(const struct k8s_store *st, const char *path, struct k8s_diags *out);
bool k8s_store_has_dups(const struct k8s_store *st, const char *path);
/* The path of the |i|th file in path order, or NULL past the end. */
const char *k8s_store_file_path(const struct k8s_store *st, size_t i);
/* Records that |path| could not be read: its objects stay, the error stands until a good read. */
void k8s_store_file_error(struct k8s_store *st, const char *path, const char *msg);

/* The objects in effect of |kind| in namespace |ns|: [*begin, *end). */
void k8s_store_ns_range(const struct k8s_store *st, enum k8s_kind kind, const char *ns,
                        size_t *begin, size_t *end);

/* ---- Building (k8s_build.c, k8s_workload.c) ---- */

/*
 * Incremental building. k8s_build_resources() and k8s_check_ports() work
 * from a view derived from the objects in effect and kept between calls:
 *
 *   - per namespace, its Services (their gens) and an index of their
 *     selectors: each Service is filed under the selector entry (key=value)
 *     fewest of the namespace's Services share, so the Services selecting a
 *     pod are found by looking up the pod's own labels;
 *   - per pod (in its memo), the Services that select it, recomputed only
 *     when the pod or its namespace's Services changed;
 *   - per namespace, a policy epoch that changes with its AuthorizationPolicies
 *     and PeerAuthentications; per pod (memo), its authorization_policies,
 *     recomputed only when the epoch of its namespace or of the root namespace
 *     changed (the resource is built again only if the list differs);
 *   - the Authorization resources, kept while no policy's gen changes;
 *   - per pod and Service (memo), the packed resource with what it was built
 *     from (the object's gen in the memo, its Namespace's gen, the selecting
 *     Services' gens, the options), reused while all of that is unchanged;
 *   - the resource names in sorted order, patched when the set changes.
 *
 * Output is byte-identical to building everything from scratch
 * (test_k8s_diff checks this over random edits).
 */

/* One namespace's Services and their selector index (k8s_workload.c). */
struct k8s_nsview {
    char *ns;
    size_t begin;   /* its first Service in eff[K8S_SERVICE] */
    size_t n;       /* its Services */
    uint64_t *gens; /* theirs, in order: any change gives a new epoch */
    uint64_t epoch; /* >= 2, unique in the store */
    /* (key, value) hash -> chain of Service offsets (from begin) filed under it */
    uint64_t *slot_hash;
    uint32_t *slot_head; /* 1 + offset; 0 = free slot */
    size_t cap;          /* power of two */
    uint32_t *next;      /* per offset: 1 + next offset in its chain, 0 = end */
};

/* A namespace's AuthorizationPolicies and PeerAuthentications (their gens) and its policy epoch. */
struct k8s_polview {
    char *ns;
    uint64_t *gens; /* AuthorizationPolicies, then PeerAuthentications, in (ns, name) order */
    size_t n;
    uint64_t epoch; /* >= 2, unique in the store; changes whenever gens do */
};

/*
 * The Authorization resources of the last build, kept while the policies
 * (their gens) do not change: AuthorizationPolicies converted, and what
 * istiod derives from PeerAuthentications.
 */
struct k8s_authz_cache {
    bool valid;
    uint64_t *gens; /* every AuthorizationPolicy's, then every PeerAuthentication's */
    size_t n_gens;
    struct mesh_resource *res; /* sorted by name */
    size_t n_res;
    struct k8s_diags diags; /* PeerAuthentication warnings that depend on other objects */
};

/* Sorted names of the last build's resources. */
struct k8s_order {
    char **names; /* owned */
    size_t n;
    uint64_t epoch; /* changes when names are added or removed */
};

struct k8s_view {
    uint64_t eff_version;  /* of the store when derived */
    uint64_t last_epoch;   /* the last nsview epoch given out (K8S_EPOCH_NO_SERVICES at first) */
    struct k8s_nsview *ns; /* sorted by ns */
    size_t n_ns;
    size_t *warn; /* positions in eff[K8S_POD] of the pods whose memo has port_warn */
    size_t n_warn;
    char *opts[4]; /* the options of the last build; changes give a new opts_epoch */
    uint64_t opts_epoch;
    struct k8s_order order;
    struct k8s_polview *pol; /* namespaces with policies, sorted by ns */
    size_t n_pol;
    struct k8s_authz_cache authz;
};

/* The selection epoch of a namespace without Services, where pods select none (also
 * what a fresh view starts counting from: every namespace view has a larger one). */
#define K8S_EPOCH_NO_SERVICES 1

struct k8s_memo {
    /* Pods: the Services selecting this pod, as of sel_epoch (0: never computed). */
    uint64_t sel_epoch;
    uint32_t *sel;      /* offsets in the namespace's Services, ascending */
    uint64_t *sel_gens; /* their gens */
    size_t n_sel;
    bool port_warn; /* one of them has a named targetPort this pod lacks */
    /* Pods: authorization_policies, as of the policy epochs of the pod's namespace and of
     * the root namespace (0: never computed). */
    uint64_t pol_epoch;
    uint64_t pol_root_epoch;
    char **pols; /* owned */
    size_t n_pols;
    /* The packed resource, valid when built and made with b_opts and b_ns_gen. */
    bool built;
    uint64_t b_opts;
    uint64_t b_ns_gen; /* of the object's Namespace, 0 when there is none */
    char *name;
    uint8_t *data;
    size_t len;
    char version[17];
    size_t ord; /* position in the view's order, valid when ord_epoch matches */
    uint64_t ord_epoch;
};

void k8s_memo_free(struct k8s_memo *m);
struct k8s_memo *k8s_memo_get(struct k8s_obj *o);
void k8s_view_free(struct k8s_view *v);
/* Brings the namespaces' indexes and the pods' selections up to date with eff. */
void k8s_view_update(const struct k8s_store *st);
/* How many objects of eff[kind] from |i| on are in eff[kind][i]'s namespace. */
size_t k8s_ns_run(const struct k8s_store *st, enum k8s_kind kind, size_t i);
/* The Service at |off| in |nv|. */
struct k8s_obj *k8s_nsview_service(const struct k8s_store *st, const struct k8s_nsview *nv,
                                   uint32_t off);
/* The namespace view of |ns|, or NULL when it has no Services. */
const struct k8s_nsview *k8s_view_ns(const struct k8s_view *v, const char *ns);

/* Allocations for one message, freed together once it is packed. */
struct k8s_arena {
    void **v;
    size_t n;
};

void *k8s_arena_alloc(struct k8s_arena *a, size_t size);
char *k8s_arena_printf(struct k8s_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void k8s_arena_free(struct k8s_arena *a);

struct k8s_build_ctx {
    const struct k8s_store *st;
    const char *cluster_id;
    const char *trust_domain; /* NULL when cluster.local: then not sent */
    const char *domain_suffix;
    const char *network;
    struct k8s_diags *d;
};

/* "<name>.<ns>.svc.<domain_suffix>" in |a|. */
char *k8s_service_hostname(struct k8s_arena *a, const struct k8s_build_ctx *b,
                           const struct k8s_obj *svc);
/*
 * Fills |w| for |pod| (which has IPs and is not terminal) with memory from
 * |a|; its services are those of the pod's memo (k8s_view_update() first).
 * Pointers into the store are borrowed.
 */
void k8s_build_workload(const struct k8s_build_ctx *b, struct k8s_arena *a,
                        const struct k8s_obj *pod, Istio__Workload__Workload *w);
/*
 * Warns about what the conversion drops silently, as istiod does: a named
 * targetPort a selected pod has no TCP container port for.
 */
void k8s_check_ports(const struct k8s_store *st, struct k8s_diags *out);

/* ---- Authorization (k8s_authz_sel.c, k8s_authz_pa.c) ---- */

/* The policy views of the namespaces, from the objects in effect (called by k8s_view_update()). */
void k8s_authz_view_update(const struct k8s_store *st);
/* The policy epoch of namespace |ns|: K8S_EPOCH_NO_SERVICES when it has no policies. */
uint64_t k8s_authz_epoch(const struct k8s_view *v, const char *ns);
/*
 * Recomputes |pod|'s authorization_policies into its memo for epochs |epoch|
 * (its namespace) and |root_epoch|; the resource is built again only when the
 * list changed.
 */
void k8s_authz_select(const struct k8s_store *st, const struct k8s_obj *pod, struct k8s_memo *m,
                      uint64_t epoch, uint64_t root_epoch);
/*
 * The Authorization resources for the objects in effect (cached while the
 * policies are unchanged): a pointer to the view's sorted array.
 */
const struct k8s_authz_cache *k8s_authz_resources(const struct k8s_store *st);
/* Appends the policies' diagnostics (of the objects in effect) to |out|. */
void k8s_authz_diags(const struct k8s_store *st, struct k8s_diags *out);
void k8s_authz_view_free(struct k8s_view *v);

/* PeerAuthentication (k8s_authz_pa.c). */
/*
 * The PeerAuthentication keys workload |pod| lists (istiod's
 * convertedSelectorPeerAuthentications): the static STRICT policy and/or its
 * port-level policy. Appends heap strings to *v (n, cap as in a vector).
 */
void k8s_pa_keys(const struct k8s_store *st, const struct k8s_obj *pod, char ***v, size_t *n);
/*
 * Appends the resources derived from PeerAuthentications (the static STRICT
 * policy when there is any, converted port-level policies) to *res, unsorted,
 * and the warnings that depend on other objects to |d|.
 */
void k8s_pa_resources(const struct k8s_store *st, struct mesh_resource **res, size_t *n,
                      struct k8s_diags *d);
/* Packs |a| into |r|: named "<namespace>/<name>", of the Authorization type, versioned. */
void k8s_authz_pack(const Istio__Security__Authorization *a, struct mesh_resource *r);

#endif
