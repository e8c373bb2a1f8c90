/*
 * replay_stream.h - a stream that first returns bytes already read from another stream, then
 * that stream's own bytes (see stream.h).
 *
 * A reader that looked at the start of a stream to decide who handles it (the waypoint's
 * protocol sniffing) hands the bytes it read back this way: the next owner reads the stream
 * from its first byte, whatever it is (the HTTP/1.1 engine, an HTTP/2 session, a pipe), and
 * nothing is lost or reordered. Writes, half-close, zero-copy output and the setup phase go
 * straight to the inner stream; zero-copy input (peek) is offered when the inner stream
 * offers it.
 */
#ifndef MESH_LIB_REPLAY_STREAM_H
#define MESH_LIB_REPLAY_STREAM_H

#include <stddef.h>

#include "conn/stream.h"
#include "loop/loop.h"

/*
 * Wraps |inner|, which it owns from now on (its handler is replaced), replaying a copy of
 * |p|[0..n) before the bytes |inner| still holds. n == 0 is allowed.
 */
struct stream *replay_stream_new(struct loop *l, struct stream *inner, const void *p, size_t n);

#endif
