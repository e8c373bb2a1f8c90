/*
 * kube_proto.h - lib/kube's protocol logic without I/O, public so that unit
 * tests and fuzzers drive it directly: the server URL, the watch line
 * splitter, event and Status decoding, the reflector's decisions, the
 * backoff, and the reflector's cache. (kube_client_priv.h has the rest.)
 *
 *   kube_config.c     kubeconfig / in-cluster -> struct kube_config
 *   kube_url.c        server URL, query escaping
 *   kube_lines.c      bytes -> '\n'-terminated lines, capped
 *   kube_event.c      a watch line -> event; a Status -> what it means
 *   kube_backoff.c    jittered exponential backoff with a reset
 *   kube_client.c     the connection (dial, TLS, h2, re-dial) and streaming calls
 *   kube_request.c    single requests (whole body, JSON)
 *   kube_reflector.c  list + watch per kind
 *   kube_cache.c      the reflector's copy of the objects (for removals on relist)
 */
#ifndef MESH_LIB_KUBE_PROTO_H
#define MESH_LIB_KUBE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kube/kube.h"

#define KUBE_MAX_CONFIG_BYTES (1u << 20) /* a kubeconfig, CA bundle, key or token file */
#define KUBE_MAX_HOST 256

/* ---- kube_config.c ---- */

/* Reads at most |max| bytes of |path| into a NUL-terminated heap string. NULL with |err|. */
char *kube_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/* ---- kube_url.c ---- */

struct kube_server {
    char host[KUBE_MAX_HOST]; /* DNS name or IP literal (no brackets) */
    uint16_t port;
    char authority[KUBE_MAX_HOST + 16]; /* host:port as :authority carries it */
    char prefix[KUBE_MAX_HOST];         /* path before /api, "" or "/x/y" without the final '/' */
};

/* "https://host[:port][/prefix]". Returns 0, or -1 with |err|. */
int kube_server_parse(const char *url, struct kube_server *out, char *err, size_t errlen);
/* Appends "&|key|=" and |val| percent-encoded to |out| (size |cap|); false if it does not fit. */
bool kube_query_add(char *out, size_t cap, const char *key, const char *val);

/* ---- kube_lines.c ---- */

/* Gets each complete line without its '\n' (and '\r'); <0 stops the feed with that error. */
typedef int kube_line_fn(void *arg, const char *line, size_t len);

struct kube_lines {
    char *buf; /* the unfinished line */
    size_t len, cap;
    size_t max; /* longest line accepted */
    bool failed;
};

void kube_lines_init(struct kube_lines *lb, size_t max);
/*
 * Splits |n| bytes into lines whatever the chunking; empty lines are skipped.
 * Returns 0, the callback's error, or -MESH_ELIMIT once a line exceeds |max|
 * (the splitter then refuses everything: the stream must be dropped).
 */
int kube_lines_feed(struct kube_lines *lb, const void *p, size_t n, kube_line_fn *cb, void *arg);
/* Bytes held for an unfinished line. */
static inline size_t
kube_lines_pending(const struct kube_lines *lb)
{
    return lb->len;
}
void kube_lines_reset(struct kube_lines *lb);
void kube_lines_free(struct kube_lines *lb);

/* ---- kube_event.c ---- */

enum kube_event_type {
    KUBE_EV_ADDED,
    KUBE_EV_MODIFIED,
    KUBE_EV_DELETED,
    KUBE_EV_BOOKMARK,
    KUBE_EV_ERROR,
};

struct kube_event {
    enum kube_event_type type;
    json_t *obj;    /* owned reference: the object (a Status for ERROR) */
    const char *rv; /* metadata.resourceVersion of |obj| ("" for ERROR) */
};

#define KUBE_RV_MAX 128 /* a resourceVersion longer than this is refused */
#define KUBE_MAX_DEPTH 100 /* JSON nesting accepted from the server (jansson recurses) */

/* True if the JSON text |p| nests deeper than KUBE_MAX_DEPTH (checked before parsing it). */
bool kube_json_too_deep(const char *p, size_t n);

/* One watch line. Returns 0, or -1 with |err| (bad JSON, unknown type, no object or RV). */
int kube_event_decode(const char *line, size_t len, struct kube_event *ev, char *err,
                      size_t errlen);
void kube_event_clear(struct kube_event *ev);

/* What a failed answer (HTTP status and Status body, or an ERROR event) asks the client to do. */
enum kube_verdict {
    KUBE_V_OK,        /* 2xx */
    KUBE_V_EXPIRED,   /* 410 / reason Expired or Gone: relist with resourceVersion "" */
    KUBE_V_TOO_LARGE, /* 504 with ResourceVersionTooLarge: relist with resourceVersion "" */
    KUBE_V_THROTTLED, /* 429: wait Retry-After */
    KUBE_V_ABSENT,    /* 404: the kind is not served */
    KUBE_V_RETRY,     /* anything else: back off and retry */
};

/*
 * |status| is the HTTP status (an ERROR event passes 0 and its Status in
 * |body|); |retry_after| the Retry-After header or NULL. *|wait_ms| gets the
 * server's asked-for delay (429; retryAfterSeconds), else 0.
 */
enum kube_verdict kube_classify(int status, const json_t *body, const char *retry_after,
                                unsigned *wait_ms);
const char *kube_verdict_name(enum kube_verdict v);

/* ---- kube_plan.c: the reflector's next step, decided without I/O ---- */

enum kube_outcome {
    KUBE_OUT_STATUS,     /* a non-2xx answer (|v| says what it means) */
    KUBE_OUT_EVENT,      /* an in-stream ERROR event (|v| from its Status) */
    KUBE_OUT_END,        /* the watch ended cleanly after a while or with events */
    KUBE_OUT_SHORT,      /* the watch ended cleanly in < 1 s without an event */
    KUBE_OUT_CUT,        /* the stream or connection failed (no status, reset, timeout) */
    KUBE_OUT_BAD,        /* a line we could not take (not JSON, over the cap, no RV) */
};

enum kube_step {
    KUBE_STEP_WATCH,       /* watch from the last resourceVersion */
    KUBE_STEP_LIST,        /* list again from the last resourceVersion ("0" before any) */
    KUBE_STEP_LIST_FRESH,  /* list from resourceVersion "": a consistent read */
    KUBE_STEP_SAME,        /* the same request again (the same list page) */
    KUBE_STEP_ABSENT,      /* the kind is not served: report it, look again slowly */
};

struct kube_plan {
    enum kube_step step;
    bool backoff;     /* wait the backoff's next delay first */
    unsigned wait_ms; /* else wait this long (0: at once) */
};

struct kube_plan kube_plan_next(bool watching, enum kube_outcome o, enum kube_verdict v,
                                unsigned wait_ms);

/* ---- kube_cache.c: the reflector's copy, to report what a relist no longer has ---- */

struct kube_cache {
    json_t *objs; /* key -> the last object seen (a reference, not a copy) */
    json_t *seen; /* keys listed since kube_cache_list_begin() */
};

#define KUBE_KEY_MAX 512 /* "namespace/name" (253 + 1 + 253) */

void kube_cache_init(struct kube_cache *c);
void kube_cache_free(struct kube_cache *c);
/* "namespace/name" or "name" of |obj| into |key|; false without a usable name. */
bool kube_obj_key(const json_t *obj, char key[KUBE_KEY_MAX]);
void kube_cache_put(struct kube_cache *c, const char *key, json_t *obj);
/* The object under |key| (an owned reference) removed from the cache; NULL if absent. */
json_t *kube_cache_take(struct kube_cache *c, const char *key);
void kube_cache_list_begin(struct kube_cache *c);
void kube_cache_mark(struct kube_cache *c, const char *key);
/* Every object not marked since kube_cache_list_begin(): taken out, one owned reference each. */
size_t kube_cache_sweep(struct kube_cache *c, json_t ***out);
size_t kube_cache_size(const struct kube_cache *c);

/* ---- kube_backoff.c ---- */

#define KUBE_BACKOFF_RESET_MS (2 * 60 * 1000)

struct kube_backoff {
    uint64_t cur_ms;  /* the next step before jitter; 0: at the start */
    uint64_t last_ms; /* when the last step was taken; 0: never */
    uint64_t min_ms, max_ms;
};

void kube_backoff_init(struct kube_backoff *b, uint64_t min_ms, uint64_t max_ms);
/*
 * The delay before the next attempt at |now_ms|: the step, plus jitter of up
 * to the step again (|rnd| in [0, 1)), capped at max_ms; the step doubles.
 * After KUBE_BACKOFF_RESET_MS without a step it starts again from min_ms.
 */
uint64_t kube_backoff_next(struct kube_backoff *b, uint64_t now_ms, double rnd);
/* A uniform double in [0, 1) from the process's PRNG (seeded once). */
double kube_rand(void);

#endif
