/*
 * test_xds_ref.h - the previous server stream implementation (test_xds_ref.c),
 * the reference model of the differential test. Same contract as the
 * xds_server_stream_* functions of xds_server.h.
 */
#ifndef MESH_TESTS_TEST_XDS_REF_H
#define MESH_TESTS_TEST_XDS_REF_H

#include <stddef.h>
#include <stdint.h>

#include "xds/xds.h"
#include "xds/xds_server.h"

struct ref_stream;

struct ref_stream *ref_stream_new(const struct xds_server_config *cfg);
void ref_stream_free(struct ref_stream *s);
int ref_stream_on_request(struct ref_stream *s, const uint8_t *msg, size_t len,
                          struct xds_out *out);
size_t ref_stream_push(struct ref_stream *s, struct xds_snapshot *snap, struct xds_out *out);
const struct xds_server_stats *ref_stream_stats(const struct ref_stream *s);
const char *ref_stream_node_id(const struct ref_stream *s);
const char *ref_stream_node_meta(const struct ref_stream *s, const char *key);
size_t ref_stream_n_types(const struct ref_stream *s);
void ref_stream_type_status(const struct ref_stream *s, size_t i,
                            struct xds_server_type_status *st);
int ref_stream_type_status_by_url(const struct ref_stream *s, const char *type_url,
                                  struct xds_server_type_status *st);

#endif
