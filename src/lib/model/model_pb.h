/*
 * model_pb.h - workloads and services from xDS: decodes the value of a
 * type.googleapis.com/istio.workload.Address resource (protobuf) into the
 * model's structs.
 *
 * Validation follows ztunnel: IPs are 4 or 16 bytes, enums must be known,
 * gateway addresses need a destination, services map keys are
 * "<namespace>/<hostname>". Every list and string has a cap, so one resource
 * cannot make ztunnel allocate without bound.
 */
#ifndef MESH_LIB_MODEL_PB_H
#define MESH_LIB_MODEL_PB_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

#define MODEL_PB_MAX_BYTES    (1024 * 1024) /* one encoded Address */
#define MODEL_PB_MAX_ADDRS    16            /* addresses of a workload, VIPs of a service */
#define MODEL_PB_MAX_PORTS    1024          /* ports of one service or one services entry */
#define MODEL_PB_MAX_SERVICES 1024          /* services map entries of a workload */
#define MODEL_PB_MAX_LIST     1024          /* authorization_policies, subject_alt_names */
#define MODEL_PB_MAX_STRING   1024          /* bytes of any string */

/* One decoded Address: exactly one of the two is set. */
struct model_address {
    struct workload *workload;
    struct service *service;
};

/*
 * Decodes |len| bytes of an istio.workload.Address into |out|; the objects
 * are complete (defaults and derived fields set, see workload_derive()) and
 * owned by the caller (one reference each). On failure |out| is left empty
 * and |err| says why, naming the object ("workload <uid>: ...") when known.
 * Returns 0, -MESH_EPROTO (malformed or invalid) or -MESH_ELIMIT (a cap).
 */
int model_pb_decode_address(const uint8_t *data, size_t len, struct model_address *out, char *err,
                            size_t errlen);

/* Drops the references in |a| and clears it. */
void model_address_release(struct model_address *a);

#endif
