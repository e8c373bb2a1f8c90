/*
 * fuzz_peer.h - the hostile end of an HTTP/2 connection for the h2 harnesses:
 * a loop, a socketpair whose other end the harness gives to an h2_session,
 * and a driver that writes the fuzz input (after an optional prefix) and
 * drops whatever comes back. A tick runs once per loop iteration and stops
 * the loop after a bounded number of iterations, so every input terminates.
 */
#ifndef MESH_FUZZ_PEER_H
#define MESH_FUZZ_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"

struct fuzz_peer {
    struct loop *loop;
    int session_fd; /* hand this to h2_session_new(); the session owns it */
    int peer;
    const uint8_t *in;
    size_t len, off;
    const char *prefix; /* sent before the input, e.g. the client preface */
    size_t prefix_len, prefix_off;
    struct loop_io peer_io, tick_io;
    int tick[2];
    int iter, idle;
    bool progress; /* harness callbacks set it: something happened this iteration */
    bool done;     /* harness sets it: stop at the next tick */
};

/* Sets up the loop and sockets; aborts if the system refuses (not an input's fault). */
void fuzz_peer_init(struct fuzz_peer *p, const uint8_t *in, size_t len, const char *prefix);
/* Runs until the input is consumed and things went quiet, |done|, or the iteration cap. */
void fuzz_peer_run(struct fuzz_peer *p);
/* Runs the deferred teardown the harness started, then frees the loop and sockets. */
void fuzz_peer_finish(struct fuzz_peer *p);

#endif
