/*
 * fuzz_wp_sniff.c - the waypoint's protocol sniffing decision (src/waypoint/detect.c).
 * Checks its invariants: a final decision is never "undecided"; a decision taken while more
 * could come holds for every longer input (bytes read later never change what was decided).
 */
#include <stdint.h>
#include <stdlib.h>

#include "waypoint/detect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum wp_proto first = WP_PROTO_MORE;

    for (size_t n = 0; n <= size && n <= WP_SNIFF_MAX; n++) {
        enum wp_proto p = wp_sniff(data, n, false), f = wp_sniff(data, n, true);
        if (f == WP_PROTO_MORE || (p != WP_PROTO_MORE && f != p))
            abort();
        if (first == WP_PROTO_MORE)
            first = p;
        else if (p != first)
            abort();
    }
    return 0;
}
