/*
 * model.h - the mesh state a proxy serves from: workloads and services in the
 * shape of Istio's workload API (istio.workload.Workload / Service).
 *
 * A model is immutable once built and reference counted: a new config builds
 * a new model and swaps it in; connections keep the one they started with.
 */
#ifndef MESH_LIB_MODEL_H
#define MESH_LIB_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"

#define MODEL_DEFAULT_TRUST_DOMAIN "cluster.local"

enum tunnel_protocol { TUNNEL_NONE = 0, TUNNEL_HBONE = 1 };
enum workload_status { WORKLOAD_HEALTHY = 0, WORKLOAD_UNHEALTHY = 1 };

struct port_map {
    uint16_t service_port;
    uint16_t target_port; /* 0: named port, resolved per endpoint */
};

/* One entry of Workload.services: "<ns>/<hostname>" -> port list. */
struct workload_svc {
    char *key;
    struct port_map *ports;
    size_t n_ports;
};

struct workload {
    char *uid;
    char *name;
    char *ns;
    char *service_account; /* "default" when unset */
    char *trust_domain;    /* MODEL_DEFAULT_TRUST_DOMAIN when unset */
    char *node;
    char *network;
    char *hostname;
    char *canonical_name;
    char *canonical_revision;
    char *workload_name;
    char *cluster_id;
    struct ipaddr *addrs;
    size_t n_addrs;
    enum tunnel_protocol tunnel;
    enum workload_status status;
    struct workload_svc *services;
    size_t n_services;
    char **authz_policies;
    size_t n_authz_policies;
    char *identity; /* spiffe://<td>/ns/<ns>/sa/<sa>, derived */
};

struct service {
    char *name;
    char *ns;
    char *hostname;
    char *key; /* "<ns>/<hostname>", derived */
    struct ipaddr *vips;
    size_t n_vips;
    struct port_map *ports;
    size_t n_ports;
    char **sans; /* subject_alt_names */
    size_t n_sans;
};

struct model {
    int refs;
    struct workload **workloads;
    size_t n_workloads;
    struct service **services;
    size_t n_services;
    size_t n_policies; /* parsed by the policy issue; counted for now */
};

struct model *model_new(void);
void model_ref(struct model *m);
void model_unref(struct model *m);

/* Adds (takes ownership); derives identity/key fields. */
void model_add_workload(struct model *m, struct workload *w);
void model_add_service(struct model *m, struct service *s);
void workload_free(struct workload *w);
void service_free(struct service *s);

/* Lookups. Return NULL when absent. */
const struct workload *model_workload_by_ip(const struct model *m, const struct ipaddr *ip);
const struct workload *model_workload_by_uid(const struct model *m, const char *uid);
const struct service *model_service_by_vip(const struct model *m, const struct ipaddr *ip);

/*
 * The target port |w| serves |svc|'s |service_port| on: the workload's own
 * port map wins over the service's. Returns 0 if |w| is not an endpoint of
 * that port.
 */
uint16_t model_endpoint_port(const struct workload *w, const struct service *svc,
                             uint16_t service_port);

/*
 * Picks a healthy endpoint of |svc| for |service_port| with an address of
 * |family| (or any family if none matches); |seed| spreads choices. Stores the
 * target port. Returns NULL when there is none.
 */
const struct workload *model_pick_endpoint(const struct model *m, const struct service *svc,
                                           uint16_t service_port, int family, uint32_t seed,
                                           uint16_t *target_port);

/* The first address of |w| in |family|, else its first address. NULL if none. */
const struct ipaddr *workload_addr(const struct workload *w, int family);

#endif
