/*
 * model_internal.h - the model's hash indexes, shared by model.c and
 * model_index.c only.
 */
#ifndef MESH_LIB_MODEL_INTERNAL_H
#define MESH_LIB_MODEL_INTERNAL_H

#include "model/model.h"

struct model_index *model_index_new(void);
void model_index_free(struct model_index *ix);

/* Index |w| / |s| (first added wins on every key). */
void model_index_add_workload(struct model_index *ix, struct workload *w);
void model_index_add_service(struct model_index *ix, struct service *s);

struct workload *model_index_workload_by_ip(const struct model_index *ix, const struct ipaddr *ip);
struct workload *model_index_workload_by_uid(const struct model_index *ix, const char *uid);
struct service *model_index_service_by_vip(const struct model_index *ix, const struct ipaddr *ip);
struct service *model_index_service_by_key(const struct model_index *ix, const char *key);
struct workload *const *model_index_endpoints(const struct model_index *ix, const char *key,
                                              size_t *n);

#endif
