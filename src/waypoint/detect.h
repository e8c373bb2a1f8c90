/*
 * detect.h - what a CONNECT to a port of undeclared protocol carries (issue 10 section 3:
 * "sniff with a short window, then TCP passthrough so server-first protocols never hang").
 *
 * The waypoint answers the CONNECT 200 and reads at most WP_SNIFF_MAX bytes for at most
 * WP_SNIFF_WINDOW_MS: an HTTP/1.x request line goes to the HTTP/1.1 engine, the HTTP/2 client
 * preface to the HTTP/2 engine, anything else to TCP passthrough at once (a TLS ClientHello,
 * binary junk: decided on the first byte that is neither), and nothing at all within the
 * window (a server that speaks first: SMTP, MySQL) to TCP passthrough when the window ends.
 * The bytes read are replayed to whoever takes the stream (lib/conn replay stream).
 *
 * Fail-closed for L7 policy: bytes that could still be the start of an HTTP request when the
 * window ends, the cap is reached or the peer half-closes go to an HTTP engine, which applies
 * policy or answers 400; so a client cannot slip an HTTP request past L7 policy by sending
 * its first bytes slowly.
 */
#ifndef MESH_WAYPOINT_DETECT_H
#define MESH_WAYPOINT_DETECT_H

#include <stdbool.h>
#include <stddef.h>

#include "conn/stream.h"
#include "loop/loop.h"

#define WP_SNIFF_MAX       1024 /* more than the h2 preface; an HTTP/1 method and target start */
#define WP_SNIFF_WINDOW_MS 200

enum wp_proto {
    WP_PROTO_MORE = 0, /* undecided: read more (never returned when |final|) */
    WP_PROTO_HTTP1,
    WP_PROTO_HTTP2,
    WP_PROTO_TCP,
};

const char *wp_proto_name(enum wp_proto p); /* "http1", "http2", "tcp" */

/*
 * The decision on the first |n| bytes of a stream. |final|: no more will come (the window
 * ended, the cap was reached or the peer half-closed). Pure; for tests and fuzzing.
 */
enum wp_proto wp_sniff(const void *p, size_t n, bool final);

struct wp_detect;

/*
 * The decision: |s| (a stream that replays the bytes read, then |down|'s) and the protocol;
 * or s == NULL and err < 0 when |down| failed first (it was closed). The callee owns |s|.
 */
typedef void wp_detect_fn(void *arg, struct stream *s, enum wp_proto proto, int err);

/*
 * Starts sniffing |down|, which it owns until |cb| runs (once, never inside this call). A
 * failing |down| (its session closed) ends the sniff with an error, so nothing else stops it.
 */
void wp_detect_start(struct loop *l, struct stream *down, wp_detect_fn *cb, void *arg);

#endif
