/*
 * k8s.h - the reader: Kubernetes-style YAML in, a store of decoded objects out.
 *
 * A store holds the objects read from a set of files (meshd --config-dir):
 * Namespace, ServiceAccount, Pod, Service, Node (its labels) and EndpointSlice
 * (discovery.k8s.io v1 or v1beta1) are decoded for conversion;
 * AuthorizationPolicy and PeerAuthentication (security.istio.io) are
 * validated as Istio's webhook does and converted for ztunnel; Gateway,
 * GatewayClass, HTTPRoute, GRPCRoute (gateway.networking.k8s.io) and VirtualService
 * (networking.istio.io) are validated lightly and kept as JSON with line
 * numbers for the modules that convert them. Other kinds get a warning.
 *
 * Errors never throw away good state: a file that does not parse keeps what it
 * loaded before, an invalid object keeps its previous version (same kind,
 * namespace and name), and when two files define the same object the one whose
 * path sorts first wins. Every problem is a diagnostic with file and line.
 *
 * Converting the store into what istiod serves is lib/k8sconv's (k8sconv.h),
 * which depends on this module; this one never calls it.
 */
#ifndef MESH_LIB_K8S_H
#define MESH_LIB_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Caps on what one file controls. */
#define K8S_MAX_FILE_BYTES (8 * 1024 * 1024)
#define K8S_MAX_OBJECTS    10000     /* documents and List items per file */
#define K8S_MAX_NODES      (1 << 19) /* YAML values per file, aliases expanded */
#define K8S_MAX_DEPTH      64        /* nesting of mappings and sequences */
#define K8S_MAX_STRING     (256 * 1024)
#define K8S_MAX_LABELS     256  /* labels, annotations or selector entries per object */
#define K8S_MAX_PORTS      1024 /* ports per Service, per container, containers per pod */
#define K8S_MAX_IPS        16   /* pod IPs, cluster IPs */
#define K8S_MAX_ENDPOINTS  1000 /* per EndpointSlice, as the API server caps them */
#define K8S_MAX_EP_ADDRS   100  /* addresses per endpoint, as the API server caps them */
#define K8S_MAX_FILES      4096 /* per directory */

/* Istio's root namespace: mesh-wide policies live here (meshConfig.rootNamespace). */
#define K8S_ROOT_NAMESPACE "istio-system"

/* ---- Diagnostics ---- */

enum k8s_severity {
    K8S_ERROR = 0,
    K8S_WARNING,
    K8S_INFO, /* worth knowing, nothing wrong (e.g. a policy left to the waypoint) */
};

struct k8s_diag {
    char *file;
    int line;     /* 1-based; 0 when the whole file is meant */
    int severity; /* enum k8s_severity */
    char *code;   /* Istio analyzer code such as "IST0101", or NULL */
    char *msg;
};

struct k8s_diags {
    struct k8s_diag *v;
    size_t n;
};

/* Frees every entry; |d| is then empty and reusable. */
void k8s_diags_clear(struct k8s_diags *d);
/* Number of entries of |severity|. */
size_t k8s_diags_count(const struct k8s_diags *d, int severity);
/* "file:line: error: msg [code]" in a fresh heap string. */
char *k8s_diag_str(const struct k8s_diag *g);

/* ---- Store ---- */

enum k8s_kind {
    K8S_NAMESPACE = 0,
    K8S_SERVICE_ACCOUNT,
    K8S_POD,
    K8S_SERVICE,
    K8S_AUTHORIZATION_POLICY,
    K8S_PEER_AUTHENTICATION,
    K8S_GATEWAY,
    K8S_HTTP_ROUTE,
    K8S_VIRTUAL_SERVICE,
    K8S_GATEWAY_CLASS, /* cluster-scoped, like Namespace */
    K8S_GRPC_ROUTE,
    K8S_NODE,           /* cluster-scoped: its topology labels give pods their locality */
    K8S_ENDPOINT_SLICE, /* discovery.k8s.io: endpoints of Services without a selector */
    K8S_KIND_COUNT,
};

struct k8s_store;
struct k8s_obj;

struct k8s_store *k8s_store_new(void);
void k8s_store_free(struct k8s_store *st);

/*
 * Re-reads |path| and replaces what came from it, following the rules at the
 * top of this file. Appends what this load found to |d| (NULL: not wanted).
 * Returns 0, or -MESH_ECONFIG when there was an error (valid objects are
 * still applied), or -errno when the file cannot be read (its objects stay;
 * the error stands until a good read).
 */
int k8s_store_load_file(struct k8s_store *st, const char *path, struct k8s_diags *d);
/* The same for |len| bytes known as |name| (tests, fuzzing, stdin). */
int k8s_store_load_buf(struct k8s_store *st, const char *name, const char *data, size_t len,
                       struct k8s_diags *d);
/* Forgets everything that came from |path|. */
void k8s_store_remove_file(struct k8s_store *st, const char *path);

/*
 * API objects (meshd's Kubernetes source). Each object is a source of its
 * own, named by the caller (e.g. "api:Pod/demo/echo-1"), with the rules of a
 * file of one document: k8s_store_put_json() replaces what came from |name|
 * with |obj| (borrowed: copied, without metadata.managedFields), an invalid
 * object keeps the previous good version from |name|, and every diagnostic
 * has |name| as its file and line 0. Returns 0, or -MESH_ECONFIG when |obj|
 * has an error. k8s_store_forget() removes a source (a file or an object).
 *
 * With |commit| false the objects in effect are not re-derived: a relist
 * puts thousands of objects, then calls k8s_store_commit() once. Until
 * then queries (k8s_store_count(), k8s_store_find(), ...), duplicate
 * diagnostics and k8s_store_generation() all see the last commit, and the
 * objects they return stay valid.
 */
int k8s_store_put_json(struct k8s_store *st, const char *name, const json_t *obj,
                       struct k8s_diags *d, bool commit);
void k8s_store_forget(struct k8s_store *st, const char *name, bool commit);
void k8s_store_commit(struct k8s_store *st);
/*
 * Loads every regular file of |dir| (not recursive; names starting with '.'
 * and editor leftovers "*~", "*.swp", "*.swx", "#*#" are skipped) in name
 * order, and forgets files of |dir| loaded before that are gone. Unchanged
 * files are not parsed again; their standing diagnostics are appended to |d|
 * again. Returns 0, -MESH_ECONFIG if any file has an error, or -errno when
 * |dir| cannot be listed (nothing changes).
 */
int k8s_store_sync_dir(struct k8s_store *st, const char *dir, struct k8s_diags *d);

/*
 * Increases whenever the objects in the store, and so the resources built
 * from them, may differ (at the commit that makes them visible).
 */
uint64_t k8s_store_generation(const struct k8s_store *st);

/*
 * Appends the diagnostics of loading standing for the whole store to |out|:
 * each file's from its last load and duplicates between files, sorted by
 * file and line. k8s_conv_diags() (lib/k8sconv) adds the conversion's: that
 * is what `meshctl analyze` prints and meshd logs.
 */
void k8s_store_file_diags(const struct k8s_store *st, struct k8s_diags *out);

/*
 * Node restriction for the CA (reference 4.2): does a pod that has not
 * terminated (phase neither Succeeded nor Failed) on |node| run as
 * service account |sa| in namespace |ns|?
 */
bool k8s_sa_on_node(const struct k8s_store *st, const char *node, const char *ns, const char *sa);

/*
 * The same for a waypoint's claim on an xDS stream: does a pod that has not
 * terminated on |node| run in |ns| as |sa| with label
 * gateway.networking.k8s.io/gateway-name=|gw| (a replica of that waypoint)?
 */
bool k8s_waypoint_on_node(const struct k8s_store *st, const char *node, const char *ns,
                          const char *gw, const char *sa);

/* What the CA and the node agent need of a pod. Pointers are borrowed from the store. */
struct k8s_pod_info {
    const char *uid;             /* metadata.uid, "" when absent */
    const char *service_account; /* defaulted to "default" */
    const char *node;            /* spec.nodeName, "" when unscheduled */
    bool terminated;             /* phase Succeeded or Failed */
    bool has_ipv6;               /* one of its IPs is IPv6 */
    bool enrolled;               /* istio-cni's rule: ambient by namespace or pod label (below) */
};

/*
 * The local cluster records where a pod's network namespace is (what a CNI
 * plugin learns from the kubelet) in this annotation: a path such as
 * /run/netns/<name>.
 */
#define K8S_ANNOTATION_NETNS "amesh.io/netns"

/*
 * istio-cni's enrollment rule (PodRedirectionEnabled): label
 * istio.io/dataplane-mode=ambient on the pod or its namespace, not "none" on
 * the pod, no sidecar, not host network.
 */
bool k8s_pod_enrolled(const struct k8s_store *st, const struct k8s_obj *pod);
/* A metadata.annotations value, or NULL. */
const char *k8s_obj_annotation(const struct k8s_obj *o, const char *key);
/* Returns false when no pod |ns|/|name| is in the store. */
bool k8s_pod_info(const struct k8s_store *st, const char *ns, const char *name,
                  struct k8s_pod_info *out);

/*
 * Objects in effect (duplicates removed), per kind, sorted by namespace then
 * name. Valid until the next load, remove or sync on |st|.
 */
size_t k8s_store_count(const struct k8s_store *st, enum k8s_kind kind);
const struct k8s_obj *k8s_store_at(const struct k8s_store *st, enum k8s_kind kind, size_t i);
/* |ns| is ignored ("" is fine) for the cluster-scoped kinds (Namespace, GatewayClass, Node).
 * Returns NULL when absent. */
const struct k8s_obj *k8s_store_find(const struct k8s_store *st, enum k8s_kind kind, const char *ns,
                                     const char *name);

enum k8s_kind k8s_obj_kind(const struct k8s_obj *o);
const char *k8s_obj_namespace(const struct k8s_obj *o); /* "" for cluster-scoped kinds */
const char *k8s_obj_name(const struct k8s_obj *o);
const char *k8s_obj_file(const struct k8s_obj *o);
int k8s_obj_line(const struct k8s_obj *o);
/* Returns NULL when absent. */
const char *k8s_obj_label(const struct k8s_obj *o, const char *key);
/* The whole object as read (YAML turned into JSON values); read-only. */
const json_t *k8s_obj_json(const struct k8s_obj *o);
/*
 * Source lines inside the object, for messages about its fields:
 * k8s_obj_line_of() gives the line of value |v| (an object, array, string or
 * number of k8s_obj_json()), k8s_obj_key_line() the line where |key| of
 * object |parent| is written. Both return the object's line when unknown.
 */
int k8s_obj_line_of(const struct k8s_obj *o, const json_t *v);
int k8s_obj_key_line(const struct k8s_obj *o, const json_t *parent, const char *key);

const char *k8s_kind_name(enum k8s_kind kind);
/* Namespace, GatewayClass and Node: their namespace is "". */
bool k8s_kind_cluster_scoped(enum k8s_kind kind);

/* ---- Reading manifests (also for tools such as meshctl apply) ---- */

struct k8s_lines; /* where each value was written */

struct k8s_doc {
    json_t *json; /* owned */
    int line;
    struct k8s_lines *lines; /* owned reference */
};

struct k8s_docs {
    struct k8s_doc *v;
    size_t n;
};

/*
 * Reads every document of |len| bytes named |file|. Empty documents are
 * dropped. On a YAML error, or when a cap is exceeded, appends one error to
 * |d| and returns -MESH_ECONFIG with |out| empty.
 */
int k8s_yaml_parse(const char *file, const char *data, size_t len, struct k8s_docs *out,
                   struct k8s_diags *d);
void k8s_docs_free(struct k8s_docs *docs);
/*
 * Lines in a document read by k8s_yaml_parse(), as k8s_obj_line_of() and
 * k8s_obj_key_line() give them for stored objects: the line of value |v|, or
 * where |key| of object |parent| is written; the document's line when unknown.
 */
int k8s_doc_line_of(const struct k8s_doc *doc, const json_t *v);
int k8s_doc_key_line(const struct k8s_doc *doc, const json_t *parent, const char *key);

/* RFC 1123 label (<= 63, [a-z0-9-], alphanumeric ends); |dns1035| also wants a letter first. */
bool k8s_dns_label(const char *s, bool dns1035);
/* RFC 1123 subdomain (<= 253, dot-separated labels). */
bool k8s_dns_subdomain(const char *s);

#endif
