/*
 * fuzz_wp_http1.c - the waypoint's HTTP/1.1 engine (src/waypoint/http1_*.c) between a client
 * and endpoints that both send arbitrary bytes (fuzz_wp_run.h: input format and checks).
 */
#include "fuzz_wp_run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct fz_wp_engine eng = {.serve = wp_http1_serve, .tunnel_after_101 = true};
    fz_wp_run(&eng, data, size);
    return 0;
}
