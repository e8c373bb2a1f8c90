/*
 * fuzz_wp_run.h - the driver both waypoint engine harnesses share. Input: one flags byte,
 * then the client's bytes, then "\xff\xfe", then what every endpoint connection answers with.
 * flags: bit 0 the first endpoint refuses connections; bit 1 the client half-closes after
 * sending; bit 2 each endpoint closes after answering; bit 3 real time (1 ms steps, so retry
 * backoffs and timeouts fire) instead of 200 loop iterations. The engine must not crash, leak
 * or hang: it must report its end (on_closed) exactly once when the client leaves (a tunnel
 * after a 101, where the engine has them: once the endpoints leave too).
 */
#ifndef MESH_FUZZ_WP_RUN_H
#define MESH_FUZZ_WP_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waypoint/l7.h"

struct fz_wp_engine {
    void (*serve)(const struct wp_l7_conn *c, struct stream *down);
    bool answer_after_request; /* endpoints answer only once the engine wrote to them */
    bool tunnel_after_101;     /* a 101 from an endpoint makes a tunnel that outlives the client */
};

void fz_wp_run(const struct fz_wp_engine *eng, const uint8_t *data, size_t size);

#endif
