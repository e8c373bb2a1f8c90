/*
 * model_store.h - the current set of istio.workload.Address resources, keyed
 * by xDS resource name, from which ztunnel snapshots a model after each push.
 *
 * Each resource is decoded once, when it arrives; a snapshot shares the
 * decoded objects with earlier models, so a push that changes one workload
 * out of 10,000 costs one decode plus re-indexing, not 10,000 decodes.
 * Single-threaded: the xDS side owns the store; models go to any thread.
 */
#ifndef MESH_LIB_MODEL_STORE_H
#define MESH_LIB_MODEL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "model/model_pb.h"

struct model_store;

struct model_store *model_store_new(void);
void model_store_free(struct model_store *st);

/*
 * Decodes |len| bytes of an Address and stores it as resource |name|,
 * replacing the resource of that name (in its place, so snapshot order
 * stays stable). On failure the store is unchanged and |err| says why; the
 * caller NACKs. Returns 0 or a negative error from model_pb_decode_address().
 */
int model_store_put(struct model_store *st, const char *name, const uint8_t *value, size_t len,
                    char *err, size_t errlen);
/* Stores an already decoded address; takes the references in |a| and clears it. */
void model_store_put_address(struct model_store *st, const char *name, struct model_address *a);
/* Removes resource |name|. Returns false if there was none. */
bool model_store_remove(struct model_store *st, const char *name);
size_t model_store_count(const struct model_store *st);

/*
 * A model of every stored resource, workloads and services each in the order
 * their names were first stored. Returns a new reference; while nothing has
 * changed, the same model again.
 */
struct model *model_store_snapshot(struct model_store *st);

#endif
