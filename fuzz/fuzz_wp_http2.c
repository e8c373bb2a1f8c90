/*
 * fuzz_wp_http2.c - the waypoint's HTTP/2 engine (src/waypoint/http2_*.c) between a client
 * and endpoints that both send arbitrary bytes: HTTP/2 frames (the corpus has real exchanges
 * written with python3-h2, fuzz/corpus/fuzz_wp_http2/README). The client's bytes start with
 * the connection preface; endpoints answer with their SETTINGS, then frames for streams 1,
 * 3, ... (fuzz_wp_run.h: input format and checks).
 */
#include "fuzz_wp_run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct fz_wp_engine eng = {.serve = wp_http2_serve, .answer_after_request = true};
    fz_wp_run(&eng, data, size);
    return 0;
}
