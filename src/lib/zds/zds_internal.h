/*
 * zds_internal.h - shared by zds_server.c and zds_cache.c only: encoded
 * messages with their descriptor, queues of them, and the agent's cache.
 */
#ifndef MESH_LIB_ZDS_INTERNAL_H
#define MESH_LIB_ZDS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "zds/zds_msg.h"

/* One encoded WorkloadRequest, shared by the cache and the connections' queues. */
struct zds_out {
    unsigned refs;
    enum zds_req_kind kind;
    int fd; /* add: our dup of the netns, closed with the last reference; else -1 */
    char uid[ZDS_UID_MAX + 1];
    size_t len;
    uint8_t bytes[];
};

/*
 * Encodes |r| into a new object holding one reference; takes ownership of
 * |fd| on success only. Returns 0 or zds_req_encode()'s error.
 */
int zds_out_new(const struct zds_req *r, int fd, struct zds_out **out);
struct zds_out *zds_out_ref(struct zds_out *o);
/* Accepts NULL. */
void zds_out_unref(struct zds_out *o);

/* A FIFO of references (a ring of power-of-two capacity). Zero it to init. */
struct zds_outq {
    struct zds_out **v;
    size_t head, len, cap;
};

/* Takes over the caller's reference to |o|. */
void zds_outq_push(struct zds_outq *q, struct zds_out *o);
/* The oldest entry (borrowed), or NULL when empty. */
struct zds_out *zds_outq_front(const struct zds_outq *q);
/* Removes the oldest entry and hands its reference to the caller. */
struct zds_out *zds_outq_pop(struct zds_outq *q);
/* Drops every reference and the storage; |q| is empty and reusable. */
void zds_outq_clear(struct zds_outq *q);

/* A cached workload: its add (with the netns) or keep message. */
struct zds_entry {
    struct zds_entry *hnext;       /* hash chain */
    struct zds_entry *prev, *next; /* in the order uids were first cached */
    struct zds_out *msg;
};

struct zds_cache {
    struct zds_entry **tab;
    size_t tab_cap; /* power of two */
    size_t n;
    struct zds_entry *head, *tail;
};

void zds_cache_init(struct zds_cache *c);
void zds_cache_cleanup(struct zds_cache *c);
struct zds_entry *zds_cache_get(const struct zds_cache *c, const char *uid);
/* Caches |msg| (a reference is taken) under its uid, replacing the entry's message in place. */
void zds_cache_put(struct zds_cache *c, struct zds_out *msg);
/* Returns true if |uid| was cached. */
bool zds_cache_del(struct zds_cache *c, const char *uid);

#endif
