/*
 * tcp_stream.h - a connected TCP socket as a stream (see stream.h).
 */
#ifndef MESH_LIB_TCP_STREAM_H
#define MESH_LIB_TCP_STREAM_H

#include "conn/stream.h"
#include "loop/loop.h"

/* Takes ownership of the connected non-blocking |fd|. */
struct stream *tcp_stream_new(struct loop *l, int fd);
int tcp_stream_fd(const struct stream *s);

#endif
