/* local_config_internal.h - shared inside lib/config only. */
#ifndef MESH_LIB_LOCAL_CONFIG_INTERNAL_H
#define MESH_LIB_LOCAL_CONFIG_INTERNAL_H

#include <jansson.h>

/*
 * One `policies:` entry with Istio ztunnel's spellings (Allow, Namespace,
 * rules as nested lists, {Exact: s}...) rewritten into the proto3 JSON form
 * lib/policy reads (local_policy_istio.c). Our own spelling passes through.
 * A new reference; values not rewritten are shared with |p|.
 */
json_t *local_policy_from_istio(json_t *p);

#endif
