/*
 * unit_http1.h - a transcript of what lib/http1's parser makes of a byte
 * stream fed as a connection would (test_http1.c, test_http1_api.c).
 */
#ifndef MESH_TESTS_UNIT_HTTP1_H
#define MESH_TESTS_UNIT_HTTP1_H

#include <stdbool.h>
#include <stddef.h>

#include "http1/http1.h"

#define OUT_MAX 4096

/*
 * Feeds |in| (|n| bytes), |step| bytes more per read (0: all at once), and
 * writes into |out| (OUT_MAX bytes) one entry per event: "HEAD ...", "END
 * '<body>' t:<trailer>=<value>", "RAW '<rest>'", "ERR <status> <why>", and
 * at the end of the input "EOF-END ..." or "EOF-ERR <why>". |method| is the
 * request the responses answer (response parsers); |lim| may be NULL.
 */
void transcript(const char *in, size_t n, bool response, const char *method,
                const struct http1_limits *lim, size_t step, char *out);

#endif
