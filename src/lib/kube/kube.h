/*
 * kube.h - a Kubernetes API client: where the server is (kubeconfig or
 * in-cluster), single requests, and reflectors that keep a local copy of one
 * resource kind current (list, then watch), with client-go's semantics.
 *
 * One client is one TLS connection speaking HTTP/2 (ALPN h2, lib/h2) to the
 * API server, re-dialled with backoff when it fails; every request and every
 * watch is a stream of it. Nothing here blocks: callbacks run from the loop.
 *
 * A reflector (one per kind): LIST (paged with limit/continue, first from
 * resourceVersion "0") then WATCH from the list's resourceVersion with
 * allowWatchBookmarks and a random timeoutSeconds in [300, 600]; a normal
 * end of the watch re-watches from the last seen resourceVersion; "too old"
 * (an in-stream ERROR event with code 410, or HTTP 410 on a LIST or a
 * continue page, reason Expired or Gone) relists with resourceVersion "";
 * HTTP 504 with cause ResourceVersionTooLarge relists "" too; 429 waits for
 * Retry-After; other failures back off (800 ms doubling to 30 s, jittered,
 * reset after 2 min of health). A relist reports objects that vanished as
 * removals, so a sink never sees a stale object. Watch events are split
 * into lines whatever the TLS records and DATA frames did, and each line is
 * capped (KUBE_MAX_EVENT_BYTES; more fails the watch, which relists). A
 * kind the server does not serve (404) is retried every KUBE_ABSENT_RETRY_MS.
 */
#ifndef MESH_LIB_KUBE_H
#define MESH_LIB_KUBE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "loop/loop.h"

#define KUBE_MAX_EVENT_BYTES  (16u << 20) /* one watch event line */
#define KUBE_MAX_BODY_BYTES   (64u << 20) /* one response body (a LIST page) */
#define KUBE_LIST_PAGE_LIMIT  500         /* limit= of LIST requests */
#define KUBE_ABSENT_RETRY_MS  30000       /* a kind the server does not serve (404) */
#define KUBE_BACKOFF_MIN_MS   800
#define KUBE_BACKOFF_MAX_MS   30000

/* ---- Where the server is ---- */

struct kube_config {
    char *server;         /* "https://host:port" */
    char *token;          /* bearer token, or NULL */
    char *token_file;     /* re-read when it changes (rotation), or NULL */
    char *ca_pem;         /* trusted CA certificates (PEM), or NULL */
    char *client_cert_pem; /* client certificate and key (PEM), or NULL */
    char *client_key_pem;
    bool insecure_skip_verify;
    char *namespace;      /* in-cluster: the pod's own namespace, else "default" */
};

/*
 * A kubeconfig file (YAML): the |context| named (NULL: current-context), its
 * cluster's server, certificate-authority(-data), insecure-skip-tls-verify,
 * and its user's token, tokenFile, client-certificate(-data) and
 * client-key(-data). Other ways to authenticate (exec, auth-provider) are
 * refused with a clear error. Relative paths are relative to the file.
 * Returns 0, or -1 with |err|.
 */
int kube_config_load_file(const char *path, const char *context, struct kube_config *out,
                          char *err, size_t errlen);
/* In-cluster: KUBERNETES_SERVICE_HOST/PORT and the service-account files
 * under /var/run/secrets/kubernetes.io/serviceaccount/ (|dir| overrides that
 * directory for tests). Returns 0, or -1 with |err|. */
int kube_config_in_cluster(const char *dir, struct kube_config *out, char *err, size_t errlen);
void kube_config_free(struct kube_config *c);
/* kube_config_load_file() on |len| bytes named |name|; relative paths are relative to |dir|. */
int kube_config_load_buf(const char *name, const char *data, size_t len, const char *dir,
                         const char *context, struct kube_config *out, char *err, size_t errlen);

/* ---- Client and single requests ---- */

struct kube_client;

/* Returns NULL with |err| when |cfg| cannot be used (bad PEM, bad server URL). */
struct kube_client *kube_client_new(struct loop *l, const struct kube_config *cfg, char *err,
                                    size_t errlen);
/*
 * Stops every reflector and request of |c| (no callback runs afterwards) and
 * frees it; the last memory goes at the end of the loop iteration (after
 * loop_run() returned: loop_run_deferred()).
 */
void kube_client_free(struct kube_client *c);
/* Backoff range of reconnects and reflector retries (tests shorten it; defaults KUBE_BACKOFF_*). */
void kube_client_set_backoff(struct kube_client *c, unsigned min_ms, unsigned max_ms);

/* Lowers the watch line cap (KUBE_MAX_EVENT_BYTES) and the 404 retry period (KUBE_ABSENT_RETRY_MS); for tests. */
void kube_client_set_limits(struct kube_client *c, size_t max_event, unsigned absent_retry_ms);

struct kube_client_stats {
    unsigned long connects;    /* connections that became ready */
    unsigned long requests;    /* streams opened (requests, list pages, watches) */
    unsigned long goaways;     /* connections retired after the server's GOAWAY */
    unsigned long token_reads; /* token file (re-)reads */
};
void kube_client_stats(const struct kube_client *c, struct kube_client_stats *out);

/*
 * The answer to one request: |status| is the HTTP status, or a negative errno
 * when there was none (connection failed, timed out). |body| is the parsed
 * JSON body (borrowed for the call), NULL when the body was empty or not JSON.
 */
typedef void kube_response_fn(void *arg, int status, const json_t *body);

struct kube_request;

/*
 * Sends |method| |path| (e.g. "/api/v1/namespaces/demo/configmaps") with
 * |body| (NULL: none) as |content_type| (NULL: application/json; PATCH
 * takes "application/merge-patch+json" or "application/strategic-merge-patch+json").
 * Times out after |timeout_ms| (0: 30 s). |cb| runs exactly once unless the
 * request is cancelled first. NULL when it cannot be sent at all.
 */
struct kube_request *kube_request(struct kube_client *c, const char *method, const char *path,
                                  const char *content_type, const json_t *body,
                                  unsigned timeout_ms, kube_response_fn *cb, void *arg);
void kube_request_cancel(struct kube_request *r);

/* ---- Reflectors ---- */

struct kube_resource {
    const char *group_version; /* "v1", "discovery.k8s.io/v1", "security.istio.io/v1" */
    const char *plural;        /* "pods" */
    const char *kind;          /* "Pod" */
    bool namespaced;
};

/*
 * What a reflector reports. Objects are borrowed for the call; listed items
 * get the apiVersion and kind that LIST responses leave out, so every object
 * looks like a watch event's. metadata.managedFields is removed (nothing in
 * the mesh reads it; it is often most of a small object's size).
 */
struct kube_sink {
    /* Listed, ADDED or MODIFIED. */
    void (*upsert)(void *arg, const struct kube_resource *r, const json_t *obj);
    /* DELETED, or gone from a relist (the last state seen). */
    void (*remove)(void *arg, const struct kube_resource *r, const json_t *obj);
    /*
     * A complete LIST was reported (after each list and relist). |served| is
     * false when the server does not serve the kind (404): the sink should not
     * wait for it; it is retried slowly and reported again if it appears.
     */
    void (*synced)(void *arg, const struct kube_resource *r, bool served);
};

struct kube_reflector;

/* |field_selector| / |label_selector| may be NULL. |r| must outlive the reflector. */
struct kube_reflector *kube_reflector_start(struct kube_client *c, const struct kube_resource *r,
                                            const char *field_selector,
                                            const char *label_selector,
                                            const struct kube_sink *sink, void *arg);
void kube_reflector_stop(struct kube_reflector *rf);

/* Counters for /metrics and tests. */
struct kube_reflector_stats {
    unsigned long lists, relists, watches, events, bookmarks, expired, errors;
};
void kube_reflector_stats(const struct kube_reflector *rf, struct kube_reflector_stats *out);

#endif
