/*
 * xds_internal.h - helpers shared by the files of lib/xds; nothing outside
 * the module includes this.
 */
#ifndef MESH_LIB_XDS_INTERNAL_H
#define MESH_LIB_XDS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pbcheck/pbcheck.h"
#include "xds/xds.h"
#include "xds/xds_server.h"

/*
 * A string-keyed hash table (linear probing, backward-shift deletion). Keys
 * are borrowed: each must live as long as its entry, usually inside the value.
 * Keys come from peers, so the hash is SipHash-1-3 with a random key per map:
 * crafted names cannot pile up in one probe run.
 */
struct xds_map_slot {
    const char *key; /* NULL: empty */
    void *val;
    uint64_t hash;
};

struct xds_map {
    struct xds_map_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t n;
    uint64_t k0, k1;
};

void xds_map_init(struct xds_map *m);
/* Frees the table only; values are the caller's. */
void xds_map_cleanup(struct xds_map *m);
void *xds_map_get(const struct xds_map *m, const char *key);
/* Inserts or replaces; returns the value replaced, or NULL. */
void *xds_map_put(struct xds_map *m, const char *key, void *val);
/* Removes |key|; returns its value, or NULL if absent. */
void *xds_map_del(struct xds_map *m, const char *key);
/*
 * Iteration: start with *|i| = 0; returns false at the end. The map must not
 * change during an iteration.
 */
bool xds_map_next(const struct xds_map *m, size_t *i, const char **key, void **val);

/* Appends a message; takes ownership of |data|. */
struct xds_msg *xds_out_add(struct xds_out *o, uint8_t *data, size_t len);

/* NULL-safe string equality. */
bool xds_streq(const char *a, const char *b);

/* 64 random bits for hash keys and nonce tags (getrandom, clock fallback). */
uint64_t xds_random64(void);

/* ---- Snapshot diffs (xds_snapshot.c) ---- */

/*
 * One name that differs between two snapshots: indices into each, SIZE_MAX
 * where absent (added: |from| absent; removed: |to| absent; changed: both,
 * with other versions).
 */
struct xds_diff_item {
    size_t from, to;
};

/* What changed from one snapshot to another, in (type_url, name) order. */
struct xds_diff {
    uint64_t from_id;
    struct xds_diff_item *v;
    size_t n;
    struct xds_diff *next; /* the cache list of the newer snapshot */
};

/* Unique per snapshot made in this process (a freed one's address may be reused, this is not). */
uint64_t xds_snapshot_id(const struct xds_snapshot *s);

/*
 * The differences from |from| to |to| (distinct snapshots). Computed once and
 * cached in |to| (valid as long as |to| is), so all streams that held |from|
 * share it; when the cache is full *|owned| is set and the caller frees the
 * diff with xds_diff_free(). Thread-safe.
 */
const struct xds_diff *xds_snapshot_diff(struct xds_snapshot *to, const struct xds_snapshot *from,
                                         bool *owned);
void xds_diff_free(struct xds_diff *d);
/* The items of |type_url| are [*first, *first + *n) of |d| (from |from| to |to|). */
void xds_diff_type_range(const struct xds_diff *d, const struct xds_snapshot *from,
                         const struct xds_snapshot *to, const char *type_url, size_t *first,
                         size_t *n);
/* Index of |name| among the |n| resources from |first| (one type), or SIZE_MAX. */
size_t xds_snapshot_find_in(const struct xds_snapshot *s, size_t first, size_t n, const char *name);

/* ---- Server stream state (xds_server.c: requests; xds_server_push.c: pushes) ---- */

struct xds_server_config;
struct xds_server_stream;

/*
 * What the stream knows about the names of one type. A wildcard type whose
 * last push was built from snapshot S is "based" on S: every name of S's
 * type range is held at S's version (unsubscribed, nothing rejected, no flag)
 * unless an explicit entry says otherwise. Explicit entries are the
 * exceptions: names held at other versions, rejected versions, explicit
 * subscriptions, names not in S. A client that took every push has none, so
 * its state costs nothing per name and the next push is the diff from S to
 * the new snapshot, shared by all such streams.
 */
struct srv_entry {
    char *held;       /* version the client holds, as far as we know; NULL: none */
    char *nacked;     /* version the client rejected: never sent again on this stream */
    bool subscribed;  /* explicitly subscribed (or listed in initial_resource_versions) */
    bool told_absent; /* a removal was sent and nothing since: do not repeat it */
    bool unsure;      /* after a NACK naming no resource: the client holds |held| or |nacked| */
    bool shadows;     /* based: the name is in the base range, which this entry overrides */
    bool gone;        /* removed by the push being recorded: freed when it is rebased */
    char name[];
};

/* One resource or removal of an unanswered response. */
struct srv_item {
    const struct xds_resource *res; /* NULL: removal; in the type's |synced| snapshot */
    const char *str; /* removal: the name; resource: version held before (for a NACK) or NULL */
    char *own;       /* |str| when it is a copy; else |str| lies in the flight's |base| */
};

/* One unanswered response. */
struct srv_flight {
    char nonce[XDS_MAX_NONCE_LEN];
    uint64_t sent_ms;
    struct srv_item *items;
    size_t n_items;
    struct xds_snapshot *base; /* the snapshot the push started from (borrowed strings) */
};

struct srv_type {
    char *type_url;
    bool served;
    bool own;       /* from the stream's own snapshot (own_type_urls) */
    bool wildcard;
    bool initial_pending;        /* first request not answered yet: answer even if empty */
    bool dirty;                  /* subscriptions changed since the last push was built */
    bool push_nacked;            /* some response of the current push was NACKed */
    bool based;                  /* names of |synced|'s range are held implicitly (above) */
    struct xds_map entries;      /* name -> struct srv_entry: the explicit ones */
    size_t n_shadows;            /* entries with |shadows| */
    struct xds_snapshot *synced; /* snapshot the last push was built from (a reference) */
    size_t base_first, base_n;   /* this type's range in |synced| */
    struct srv_flight *flights;  /* oldest first */
    size_t n_flights;
    uint64_t push_ms;
    char *acked_version;
    char *last_nack;
    uint64_t last_ack_ms;
    uint64_t push_latency_ms;
};

struct srv_meta {
    char *key;
    char *value;
};

struct xds_server_stream {
    char **served;
    size_t n_served;
    size_t max_types;
    size_t max_names;
    size_t max_name_len;
    size_t max_response_bytes;
    void (*on_event)(void *arg, const struct xds_server_event *ev);
    void *arg;
    uint64_t (*now_ms)(void *arg);

    struct srv_type **types; /* in order of first request */
    size_t n_types;
    struct xds_snapshot *snap; /* current, a reference; NULL before the first push */
    char **own;                /* own_type_urls */
    size_t n_own;
    struct xds_snapshot *own_snap; /* theirs, a reference; NULL until push_own */
    char *node_id;
    struct srv_meta *meta;
    size_t n_meta;
    uint64_t nonce_tag; /* random per stream: nonces of other streams never match */
    uint64_t nonce_seq;
    struct xds_server_stats stats;
    char error[PB_ERR_MAX]; /* why the last request was refused, "" if it was not */
};

uint64_t srv_now(const struct xds_server_stream *s);
void srv_emit(const struct xds_server_stream *s, const struct xds_server_event *ev);
void srv_entry_free(struct srv_entry *e);
/* The explicit entry of |name|, or NULL (the name may still be held implicitly). */
struct srv_entry *srv_entry_get(const struct srv_type *t, const char *name);
/*
 * The entry of |name|, made explicit: a based name gets an entry holding the
 * base version, an unknown one an entry (unsubscribed) holding nothing.
 */
struct srv_entry *srv_entry_get_or_add(struct srv_type *t, const char *name);
/* Removes and frees the explicit entry |e|. */
void srv_entry_del(struct srv_type *t, struct srv_entry *e);
/* Names the stream tracks for |t| (explicit and implicit), for the cap on names. */
size_t srv_type_n_names(const struct srv_type *t);
/* Names of |t| the client holds a version of. */
size_t srv_type_n_held(const struct srv_type *t);

/*
 * Builds the next push of |t| if one is due (a served type, a snapshot, no
 * push in flight, and the snapshot or the subscriptions changed or the first
 * request is unanswered) and appends its responses to |out|. Returns how many.
 */
size_t srv_type_sync(struct xds_server_stream *s, struct srv_type *t, struct xds_out *out);

/*
 * Settles the flights of |t| up to and including index |idx|: the last one
 * with |error_message| set is a NACK (code |code|), all others ACKs.
 */
void srv_type_settle(struct xds_server_stream *s, struct srv_type *t, size_t idx,
                     const char *error_message, int code);

/* Frees everything |t| holds, and |t|. */
void srv_type_free(struct srv_type *t);

#endif
