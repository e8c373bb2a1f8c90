/*
 * model_json.h - model objects as /config_dump JSON (Istio's workload API names).
 */
#ifndef MESH_LIB_MODEL_JSON_H
#define MESH_LIB_MODEL_JSON_H

#include <jansson.h>

#include "model/model.h"

/* New references. */
json_t *model_workload_json(const struct workload *w);
json_t *model_service_json(const struct service *s);

#endif
