/*
 * local_config.h - ztunnel's local-mode configuration file.
 *
 *   workloads: [Workload...]   services: [Service...]   policies: [...]
 *   routes: [amesh.waypoint.v1.Route...]   waypointPolicies: [amesh.waypoint.v1.Policy...]
 *   (the last two for the waypoint, in proto3 JSON)
 *
 * Errors are reported as "<file>:<line>: <reason>".
 */
#ifndef MESH_LIB_LOCAL_CONFIG_H
#define MESH_LIB_LOCAL_CONFIG_H

#include <stddef.h>

#include "model/model.h"

#define CONFIG_MAX_BYTES  (16 * 1024 * 1024)
#define CONFIG_MAX_ITEMS  200000
#define CONFIG_MAX_LIST   1024
#define CONFIG_MAX_ADDRS  16
#define CONFIG_MAX_STRING 1024

/* Parses |len| bytes named |name| (for messages). Returns 0 with *out set, or <0. */
int local_config_parse(const char *data, size_t len, const char *name, struct model **out,
                       char *err, size_t errlen);
/* Reads and parses |path|. */
int local_config_load(const char *path, struct model **out, char *err, size_t errlen);

struct policy_set;
/*
 * The `policies:` list (istio.security.Authorization in proto3 JSON form) as
 * a policy set, from |len| bytes named |name| or from |path|. Returns 0 with
 * *out set (maybe empty), or <0 with |err| naming the entry.
 */
int local_config_policies(const char *data, size_t len, const char *name, struct policy_set **out,
                          char *err, size_t errlen);
int local_config_load_policies(const char *path, struct policy_set **out, char *err,
                               size_t errlen);

/* Reads |path| (at most CONFIG_MAX_BYTES) into *data (NUL-terminated, free()). */
int local_config_read(const char *path, char **data, size_t *len, char *err, size_t errlen);

struct route_store;
struct l7pol_set;
/*
 * The waypoint's lists: every `routes:` entry applied to |routes| in one batch, the
 * `waypointPolicies:` entries as a new set in *pols. Each entry is encoded to wire bytes and
 * checked by the decoder meshd's pushes go through. 0, or <0 with |err| naming the entry's
 * line, and nothing applied.
 */
int local_config_waypoint(const char *data, size_t len, const char *name,
                          struct route_store *routes, struct l7pol_set **pols, char *err,
                          size_t errlen);
int local_config_load_waypoint(const char *path, struct route_store *routes,
                               struct l7pol_set **pols, char *err, size_t errlen);

#endif
