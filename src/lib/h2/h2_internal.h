/*
 * h2_internal.h - state shared by h2_session.c and h2_stream.c; nothing
 * outside src/lib/h2 includes it.
 */
#ifndef MESH_LIB_H2_INTERNAL_H
#define MESH_LIB_H2_INTERNAL_H

#include <nghttp2/nghttp2.h>

#include "buf/buf.h"
#include "h2/h2.h"

#define H2_OUT_BATCH   (64 * 1024)
#define H2_OUT_MAX     (H2_OUT_BATCH + H2_MAX_FRAME + 64)
#define H2_TX_MAX      (256 * 1024)
#define H2_READ_ROUNDS 16
#define H2_DIRECT_MIN  4096 /* frames this large skip the |out| copy */
#define H2_FRAME_HEADER 9
/* DATA payload filling one TLS record (TLS_STREAM_RECORD_PAYLOAD); harmless on other transports */
#define H2_RECORD_PAYLOAD (16384 - H2_FRAME_HEADER)
#define H2_VALUE_MAX   4096
#define H2_ID_GAPS     8 /* server: ranges of client stream ids skipped, remembered */

enum h2_state { H2_HANDSHAKE = 0, H2_RUNNING, H2_DEAD };

/*
 * Header fields kept whole, as "name\0value\0" pairs: request headers of
 * requests with a :path, response headers and trailers of h2_session_request()
 * streams, trailers waiting to be sent. CONNECT tunnels keep none of these.
 */
struct h2_fields {
    char *data;
    size_t len, cap;
    unsigned n;
};

struct h2_session {
    struct loop *loop;
    nghttp2_session *ng;
    struct stream *xprt; /* the transport, owned; NULL once torn down */
    bool server;
    enum h2_state state;
    int err;
    int refs;
    bool goaway_recv;
    bool goaway_sent;
    bool ping_outstanding;
    bool proto_error;          /* we ended the connection with GOAWAY PROTOCOL_ERROR */
    /* At the start of a peer's SETTINGS: its INITIAL_WINDOW_SIZE and our largest send window. */
    int64_t settings_initial, settings_max_window;
    uint64_t ping_sent_ms;
    unsigned n_streams;
    /*
     * Server: the next stream id the client may open (RFC 9113 5.1.1), and the
     * latest ranges of ids it skipped, which are closed for good (a ring; h2_ids.c).
     */
    uint32_t next_peer_id;
    struct { uint32_t lo, hi; } id_gaps[H2_ID_GAPS];
    unsigned n_id_gaps;        /* ranges ever recorded; the ring keeps the last H2_ID_GAPS */
    struct buf out;            /* HTTP/2 frames not yet handed to the transport */
    struct loop_timer hs_timer;
    struct loop_timer ping_timer;
    struct loop_defer flush_defer;
    struct loop_defer ready_defer;
    struct loop_defer teardown_defer;
    struct loop_defer free_defer;
    struct h2_stream *streams; /* every h2_stream not yet freed */
    const struct h2_session_cbs *cbs;
    void *arg;
};

struct h2_stream {
    struct stream s;           /* must be first */
    struct h2_session *sess;
    struct h2_stream *prev, *next;
    int32_t id;
    struct buf rx;             /* received, not yet read by the user */
    struct buf tx;             /* written by the user, not yet framed */
    bool remote_eof;           /* END_STREAM received */
    bool local_eof;            /* user shut down writing */
    bool deferred;             /* nghttp2 is waiting for tx data */
    bool h2_closed;            /* nghttp2 is done with this stream */
    bool released;             /* the user closed it */
    bool end_sent;             /* our END_STREAM went out */
    bool rst_after_end;        /* reset (NO_ERROR) once END_STREAM went out */
    bool want_rd, want_wr;
    bool responded;            /* server: status sent; client: status received */
    bool response_pending;     /* client: status to deliver */
    bool request_pending;      /* server: request to deliver */
    bool delivered;            /* server: handed to on_request */
    int status;
    int err;
    uint32_t hdr_bytes;
    unsigned n_hdrs;
    char *method, *authority, *baggage, *forwarded, *traceparent;
    bool has_path;
    bool keep_fields;          /* not a CONNECT tunnel: every header goes to |fields| */
    bool final_seen;           /* client: the final response headers arrived */
    bool in_trailers;          /* the header block being received is trailers */
    char *path;                /* server: :path */
    struct h2_fields fields;   /* server: request headers; client: response headers */
    struct h2_fields trailers; /* trailers received (client: response's; server: request's) */
    /* Trailers to send once |tx| is out (h2_stream_send_trailers). */
    struct h2_fields trailers_out;
    h2_response_fn *resp_cb;
    void *resp_arg;
    struct loop_defer dispatch_defer;
    struct loop_defer free_defer;
};


/* h2_session.c */
void h2_schedule_flush(struct h2_session *s);
void h2_session_unref(struct h2_session *s);

/* h2_stream.c */
struct h2_stream *h2_stream_new(struct h2_session *s, size_t rx_max);
/* Client: submits a request with headers |nva| and a body read from |tx|; NULL on failure. */
struct h2_stream *h2_stream_submit(struct h2_session *s, const nghttp2_nv *nva, size_t n,
                                   h2_response_fn *cb, void *arg);
/* Wakes the stream's user (deferred) if something it waits for is ready. */
void h2_stream_kick(struct h2_stream *st);
void h2_stream_maybe_free(struct h2_stream *st);
/* nghttp2 is done with |st| (closed or session gone); |err| 0 when clean. */
void h2_stream_h2_closed(struct h2_stream *st, int err);
/* |n| bytes of |st|'s |tx| went out in a DATA frame. */
void h2_stream_sent(struct h2_stream *st, size_t n);
ssize_t h2_on_data_read(nghttp2_session *ng, int32_t id, uint8_t *p, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *user);

/* h2_ids.c */
/*
 * Server, from the first frame header of a HEADERS frame on odd stream |id|:
 * records a new stream's id, or returns true if |id| is one the client
 * skipped (RFC 9113 5.1.1: a connection error PROTOCOL_ERROR).
 */
bool h2_ids_bad_new_stream(struct h2_session *s, uint32_t id);

/* h2_msg.c */
void h2_fields_add(struct h2_fields *f, const uint8_t *name, size_t namelen, const uint8_t *value,
                   size_t valuelen);
const char *h2_fields_find(const struct h2_fields *f, const char *name);
/* Forgets the fields and keeps the storage. */
void h2_fields_clear(struct h2_fields *f);
void h2_fields_cleanup(struct h2_fields *f);
/* From the data read callback at the end of |tx|: queues |st|'s trailers; 0 or an nghttp2 error. */
int h2_stream_submit_trailers(nghttp2_session *ng, struct h2_stream *st);

#define H2_NV(k, v)                                                                                \
    (nghttp2_nv)                                                                                   \
    {                                                                                              \
        (uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE                 \
    }

#endif
