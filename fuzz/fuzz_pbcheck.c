/*
 * fuzz_pbcheck.c - the wire walk in front of protobuf-c (lib/pbcheck).
 *
 * Byte 0 picks the message type (every type a peer sends amesh, plus
 * google.protobuf.Value, the one that nests without end), byte 1 the depth
 * limit (0: the default); the rest is the message. Checked: a refusal says
 * why and a pass says nothing; a pass at one limit passes at every higher
 * one; a cap one byte short refuses; the wrapper refuses what the walk
 * refuses at the default limit, and what it decodes re-encodes to bytes that
 * pass again (re-encoding never nests deeper).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authorization.pb-c.h"
#include "ca.pb-c.h"
#include "discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "workload.pb-c.h"
#include "zds.pb-c.h"

#include "base/base.h"
#include "pbcheck/pbcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const descs[] = {
    &google__protobuf__value__descriptor,
    &google__protobuf__struct__descriptor,
    &istio__v1__auth__istio_certificate_request__descriptor,
    &istio__v1__auth__istio_certificate_response__descriptor,
    &envoy__service__discovery__v3__delta_discovery_request__descriptor,
    &envoy__service__discovery__v3__delta_discovery_response__descriptor,
    &istio__workload__address__descriptor,
    &istio__security__authorization__descriptor,
    &istio__workload__zds__workload_request__descriptor,
    &istio__workload__zds__workload_response__descriptor,
    &istio__workload__zds__zds_hello__descriptor,
};

#define BIG ((size_t)1 << 24)

static int
check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, size_t cap, unsigned depth)
{
    char err[PB_ERR_MAX];
    int rc = pb_check(d, p, n, cap, depth, err, sizeof(err));

    if (rc != 0 && rc != -MESH_ELIMIT && rc != -MESH_EPROTO)
        abort();
    if ((rc == 0) != (err[0] == '\0'))
        abort(); /* a refusal says why, a pass says nothing */
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const ProtobufCMessageDescriptor *d = descs[data[0] % ARRAY_LEN(descs)];
    unsigned depth = data[1] % 41; /* 0 (the default) .. 40 */
    const uint8_t *p = data + 2;
    size_t n = size - 2;

    int rc = check(d, p, n, BIG, depth);
    if (n > 0 && check(d, p, n, n - 1, depth) != -MESH_ELIMIT)
        abort(); /* the size cap holds */
    if (rc != 0)
        return 0;
    if (depth != 0 && depth < 40 && check(d, p, n, BIG, depth + 1) != 0)
        abort(); /* a higher limit passes what a lower one did */

    /*
     * What the walk lets through protobuf-c may still refuse on rules of its
     * own (1.4.1 refuses a singular message field that occurs twice, both
     * times empty): the wrapper then says it does not decode.
     */
    char err[PB_ERR_MAX];
    ProtobufCMessage *m = pb_unpack_checked(d, p, n, BIG, err, sizeof(err));
    if (check(d, p, n, BIG, 0) != 0) {
        if (m != NULL)
            abort(); /* the wrapper applies the default limit */
        return 0;
    }
    if (m == NULL) {
        if (strncmp(err, "does not decode as ", 19) != 0)
            abort();
        return 0;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *again = malloc(len ? len : 1);
    if (again == NULL)
        abort();
    if (protobuf_c_message_pack(m, again) != len || check(d, again, len, BIG, 0) != 0)
        abort(); /* re-encoding never nests deeper */
    free(again);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
