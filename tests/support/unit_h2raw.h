/*
 * unit_h2raw.h - a server h2_session (lib/h2) on one end of a socketpair, driven by a test
 * that writes hand-built frames on the other end and parses what the server answers: for
 * RFC 9113 conformance tests, where the client must be able to break every rule.
 */
#ifndef MESH_TESTS_UNIT_H2RAW_H
#define MESH_TESTS_UNIT_H2RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h2/h2.h"
#include "loop/loop.h"

enum {
    H2F_DATA = 0,
    H2F_HEADERS = 1,
    H2F_PRIORITY = 2,
    H2F_RST = 3,
    H2F_SETTINGS = 4,
    H2F_PING = 6,
    H2F_GOAWAY = 7,
    H2F_WINDOW_UPDATE = 8,
    H2F_CONTINUATION = 9,
};
enum {
    H2FL_END_STREAM = 0x1,
    H2FL_ACK = 0x1,
    H2FL_END_HEADERS = 0x4,
    H2FL_PRIORITY = 0x20,
};
/* RFC 9113 7 error codes. */
enum {
    H2E_NO_ERROR = 0,
    H2E_PROTOCOL_ERROR = 1,
    H2E_INTERNAL_ERROR = 2,
    H2E_FLOW_CONTROL_ERROR = 3,
    H2E_STREAM_CLOSED = 5,
    H2E_FRAME_SIZE_ERROR = 6,
    H2E_REFUSED_STREAM = 7,
    H2E_CANCEL = 8,
    H2E_COMPRESSION_ERROR = 9,
};

#define H2RAW_MAX_REQ 256

struct h2raw {
    struct loop *loop;
    struct h2_session *srv;
    int peer;
    uint8_t *rx; /* everything the server sent */
    size_t rx_len, rx_cap;
    bool eof;
    uint8_t *tx; /* written by the test, not yet taken by the socket */
    size_t tx_len, tx_off, tx_cap;
    int closed_calls;
    struct h2_stream *req[H2RAW_MAX_REQ];
    int32_t req_id[H2RAW_MAX_REQ];
    int n_req;
};

/* One frame the server sent. */
struct h2raw_frame {
    uint8_t type, flags;
    uint32_t sid, len;
    uint32_t code;     /* RST_STREAM, GOAWAY */
    uint32_t last_sid; /* GOAWAY */
    const uint8_t *payload;
};

/* A server session and the raw client end; nothing sent yet. */
void h2raw_start(struct h2raw *r);
/* h2raw_start(), then the preface, an empty SETTINGS and an ACK of the server's; the server answers
 * each request 200. */
void h2raw_setup(struct h2raw *r);
void h2raw_teardown(struct h2raw *r);
/* Queues a frame and writes what the socket takes, running the loop until it took it all. */
void h2raw_frame(struct h2raw *r, uint8_t type, uint8_t flags, uint32_t sid, const void *p,
                 size_t n);
/* A frame header only (its length may be a lie: the payload is the test's business). */
void h2raw_header(struct h2raw *r, uint32_t len, uint8_t type, uint8_t flags, uint32_t sid);
void h2raw_send(struct h2raw *r, const void *p, size_t n);
/* Reads what the server sent so far. */
void h2raw_pump(struct h2raw *r);
/* The frames the server sent so far (from its first), up to |max|; returns the count. */
size_t h2raw_frames(const struct h2raw *r, struct h2raw_frame *out, size_t max);
/* Runs |ms| milliseconds, reading. */
void h2raw_run(struct h2raw *r, unsigned ms);
/* Runs until the server closed the connection (EOF) and on_closed ran; false on timeout. */
bool h2raw_wait_closed(struct h2raw *r, unsigned timeout_ms);

/* HPACK: static-table entry |idx| (indexed field). */
size_t h2raw_idx(uint8_t *p, uint8_t idx);
/* HPACK: literal without indexing, name from static-table entry |idx| (< 15). */
size_t h2raw_lit_idx(uint8_t *p, uint8_t idx, const char *value);
/* HPACK: literal without indexing, new name (|name| and |value| < 127 bytes, may hold NUL: n). */
size_t h2raw_lit_n(uint8_t *p, const char *name, size_t nlen, const char *value, size_t vlen);
size_t h2raw_lit(uint8_t *p, const char *name, const char *value);
/* The fields of "GET /x" over https to "a.example", in that order. */
size_t h2raw_get_fields(uint8_t *p);
/* HEADERS opening a CONNECT tunnel to 198.18.0.10:8080 on |sid|, with |extra| "x-h: v". */
void h2raw_connect(struct h2raw *r, uint32_t sid, unsigned extra);

#endif
