/*
 * test_xds_util.h - helpers shared by the lib/xds tests (test_xds_util.c).
 */
#ifndef MESH_TESTS_TEST_XDS_UTIL_H
#define MESH_TESTS_TEST_XDS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "discovery.pb-c.h"

#include "xds/xds.h"
#include "xds/xds_client.h"
#include "xds/xds_server.h"

#define ADDR XDS_TYPE_ADDRESS
#define AUTH XDS_TYPE_AUTHORIZATION

typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest pb_request;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse pb_response;

/* Events seen, with the last NACK's rejected names copied. */
struct events {
    size_t n[XDS_SERVER_EV_OVERSIZED + 1];
    char rejected[8][64];
    size_t n_rejected;
    uint64_t last_latency;
    char last_message[256];
};

struct res_spec {
    const char *type;
    const char *name;
    const char *value;
};

struct req_spec {
    bool node;
    const char *type;
    const char *sub[4];
    const char *unsub[4];
    const char *init_names[4];
    const char *init_versions[4];
    const char *nonce;
    const char *error;
};

struct applied {
    size_t begins, ends, applies, removes;
    const char *reject_name; /* rejected by on_apply */
    char log[1024];
};

/* The time streams from new_stream() see, in ms. */
extern uint64_t fake_now;
/* Address a, b, c and Authorization ns/deny, first versions. */
extern const struct res_spec base_set[4];

/* A snapshot of |n| resources from a table; versions computed from the values. */
struct xds_snapshot *snap_of(const struct res_spec *spec, size_t n);
/* xds_version_of(|value|), in one of four rotating static buffers. */
const char *version_of(const char *value);

/* ---- Server side ---- */

/* An xds_server_event_fn counting events into a struct events. */
void record_event(void *arg, const struct xds_server_event *ev);
/* A server stream on the fake clock, recording events into |ev|; |max_response| 0: default. */
struct xds_server_stream *new_stream(struct events *ev, size_t max_response);
/* Packs a DeltaDiscoveryRequest (heap, length in |len|). */
uint8_t *pack_req(const struct req_spec *rs, size_t *len);
/* Packs |rs| and hands it to |s|; returns what the stream returned. */
int feed(struct xds_server_stream *s, const struct req_spec *rs, struct xds_out *out);
/* Decodes response |i| of |out| (checking the counts the stream reported). */
pb_response *resp_at(const struct xds_out *out, size_t i);
void resp_free(pb_response *r);
/* "name name -removed" of a response's resources and removals. */
void describe(const pb_response *r, char *buf, size_t cap);
/*
 * Checks that |out| holds exactly one response of |type| described as
 * |want|, empties |out| and returns the response's nonce (heap).
 */
char *expect_one(struct xds_out *out, const char *type, const char *want);
/* ACKs |nonce| (freed) of |type|. */
void ack(struct xds_server_stream *s, const char *type, char *nonce, struct xds_out *out);
/* Subscribes wildcard Address, expects |want| from |snap| and ACKs it. */
void connect_acked(struct xds_server_stream *s, struct xds_snapshot *snap, const char *want);

/* ---- Client side ---- */

/* Callbacks logging "+name " and "-name " into a struct applied. */
const char *cb_apply(void *arg, const char *type_url, const char *name, const char *version,
                     const uint8_t *bytes, size_t len);
const char *cb_remove(void *arg, const char *type_url, const char *name);
void cb_begin(void *arg, const char *type_url);
void cb_end(void *arg, const char *type_url);
/* A ztunnel-like client (node id, four metadata keys) with the callbacks above on |a|. */
struct xds_client *new_client(struct applied *a);
/* Decodes request |i| of |out|. */
pb_request *req_at(const struct xds_out *out, size_t i);
/*
 * Packs a response of |type| with resources from |spec| (value "<none>":
 * no Any) and |n_removed| removed names (heap, length in |len|).
 */
uint8_t *pack_resp(const char *type, const char *nonce, const struct res_spec *spec, size_t n,
                   const char *const *removed, size_t n_removed, size_t *len);

#endif
