/*
 * unit_loop.h - test helpers around the event loop: non-blocking socketpairs
 * and running a loop until a condition holds or a deadline passes.
 */
#ifndef MESH_TESTS_UNIT_LOOP_H
#define MESH_TESTS_UNIT_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"

typedef bool unit_cond_fn(void *arg);

/* A non-blocking, close-on-exec AF_UNIX stream socketpair; aborts the test on failure. */
void unit_socketpair(int fds[2]);

/*
 * Runs |l| until |cond| returns true (checked every millisecond and once
 * before starting) or |timeout_ms| elapsed. A NULL |cond| runs for the whole
 * timeout. Returns true if |cond| held.
 */
bool unit_run_until(struct loop *l, unit_cond_fn *cond, void *arg, uint64_t timeout_ms);

/* Runs |l| for |ms| milliseconds. */
void unit_run_for(struct loop *l, uint64_t ms);

/* A connected loopback TCP pair, both ends non-blocking; aborts the test on failure. */
void unit_tcp_pair(int *a, int *b);

/* CPU time (user + system) this process used so far, in seconds. */
double unit_cpu_seconds(void);

/*
 * Runs |l| for |ms| milliseconds on one timer (no polling tick) and returns the
 * CPU seconds the process used meanwhile: an idle loop should use almost none.
 */
double unit_idle_cpu(struct loop *l, uint64_t ms);

/* Fills |fd| until it would block; returns the bytes written. */
size_t unit_fill(int fd);

/* Reads and discards until |fd| would block; returns the bytes read (EOF stops too). */
size_t unit_drain(int fd);

/* One outer socket end driven by a test: sends |tx| (then half-closes if asked), collects rx. */
struct unit_peer {
    int fd;
    const uint8_t *tx;
    size_t tx_len, tx_off;
    bool shut_when_sent;
    bool shut;
    bool reading; /* false: never read (a stalled receiver) */
    uint8_t *rx;  /* NULL: count and discard */
    size_t rx_cap, rx_len;
    bool eof;
    int rx_err;
};

/* Moves what can move without blocking; fails the test if more than rx_cap arrives. */
void unit_peer_pump(struct unit_peer *p);

/* |n| bytes of a deterministic pattern (heap; caller frees). */
uint8_t *unit_pattern(size_t n, uint32_t seed);

#endif
