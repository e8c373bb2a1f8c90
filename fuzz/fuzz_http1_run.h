/*
 * fuzz_http1_run.h - the driver both HTTP/1 codec harnesses share: feeds one
 * input through lib/http1 the way a connection would (consumed bytes dropped,
 * the rest passed again), whole and then in uneven pieces, and aborts if the
 * two runs disagree on any event, span, body byte or error.
 */
#ifndef MESH_FUZZ_HTTP1_RUN_H
#define MESH_FUZZ_HTTP1_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Runs |data| as a request stream (|response| false) or as responses to
 * requests with method |method| (GET, HEAD or CONNECT). |small| uses tight
 * caps, so the cap paths are reached by small inputs.
 */
void fuzz_http1_run(const uint8_t *data, size_t size, bool response, const char *method,
                    bool small);

#endif
