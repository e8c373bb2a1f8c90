/*
 * model.h - the mesh state a proxy serves from: workloads and services in the
 * shape of Istio's workload API (istio.workload.Workload / Service).
 *
 * A model is immutable once built and reference counted: a new config builds
 * a new model and swaps it in; connections keep the one they started with.
 * Workloads and services are reference counted too, so a model rebuilt after
 * an xDS push shares every object that did not change (model_build()).
 */
#ifndef MESH_LIB_MODEL_H
#define MESH_LIB_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"

#define MODEL_DEFAULT_TRUST_DOMAIN    "cluster.local"
#define MODEL_DEFAULT_SERVICE_ACCOUNT "default"

enum tunnel_protocol { TUNNEL_NONE = 0, TUNNEL_HBONE = 1 };
enum workload_status { WORKLOAD_HEALTHY = 0, WORKLOAD_UNHEALTHY = 1 };
/* HOST_NETWORK workloads share the node's IP, so they are never found by IP. */
enum network_mode { NETWORK_MODE_STANDARD = 0, NETWORK_MODE_HOST = 1 };

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

/*
 * Istio's GatewayAddress (a waypoint or an east-west gateway): either a
 * namespaced hostname (|hostname| set) or a network address (|ip| set).
 */
struct gateway_addr {
    char *ns;         /* hostname form */
    char *hostname;   /* hostname form; NULL in the address form */
    char *network;    /* address form; NULL = default network */
    struct ipaddr ip; /* address form; family 0 in the hostname form */
    uint16_t hbone_mtls_port;
};

struct workload {
    atomic_int refs; /* holders beyond the first: zero-filled means one owner */
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
    char *locality[3]; /* region, zone, subzone; NULL when unset */
    struct ipaddr *addrs;
    size_t n_addrs;
    enum tunnel_protocol tunnel;
    enum workload_status status;
    enum network_mode network_mode;
    bool native_tunnel;
    struct gateway_addr *waypoint;        /* NULL: none */
    struct gateway_addr *network_gateway; /* NULL: none */
    struct workload_svc *services;
    size_t n_services;
    char **authz_policies;
    size_t n_authz_policies;
    char *identity; /* spiffe://<td>/ns/<ns>/sa/<sa>, derived */
};

struct service {
    atomic_int refs; /* as in struct workload */
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
    struct gateway_addr *waypoint; /* NULL: none */
    bool canonical;
};

struct model_index;

/* The arrays are read-only outside model.c; lookups go through the index. */
struct model {
    atomic_int refs;
    struct workload **workloads;
    size_t n_workloads;
    struct service **services;
    size_t n_services;
    size_t n_policies; /* parsed by the policy issue; counted for now */
    size_t cap_workloads, cap_services;
    struct model_index *index;
};

/* Lifecycle. model_unref() releases the model's reference to every object. */
struct model *model_new(void);
void model_ref(struct model *m);
void model_unref(struct model *m);

/*
 * Adds |w| (takes the caller's reference); fills defaults and derived fields
 * first (workload_derive()). Lookups see it at once, so a builder can check
 * for duplicates as it goes.
 */
void model_add_workload(struct model *m, struct workload *w);
void model_add_service(struct model *m, struct service *s);

/*
 * Builds a model holding a new reference to each of |ws| and |ss|, in order;
 * the caller keeps its own references. Objects must not change once shared,
 * so this is how a model is rebuilt per push without copying them.
 */
struct model *model_build(struct workload *const *ws, size_t n_ws, struct service *const *ss,
                          size_t n_ss);

/*
 * Object references. A freshly allocated (zero-filled) object has one owner;
 * workload_free()/service_free() are the same as unref, kept for that owner.
 * All accept NULL. Counts are atomic: models may be released on any thread.
 */
struct workload *workload_ref(struct workload *w);
void workload_unref(struct workload *w);
void workload_free(struct workload *w);
struct service *service_ref(struct service *s);
void service_unref(struct service *s);
void service_free(struct service *s);

/*
 * Fills unset service account and trust domain with Istio's defaults and
 * derives |identity| (workloads) or |key| (services). Only for objects not
 * yet shared; idempotent.
 */
void workload_derive(struct workload *w);
void service_derive(struct service *s);
void gateway_addr_free(struct gateway_addr *g);

/*
 * Lookups (hash indexes built as objects are added). Return NULL when absent.
 * When several objects match, the first added wins.
 */
const struct workload *model_workload_by_ip(const struct model *m, const struct ipaddr *ip);
const struct workload *model_workload_by_uid(const struct model *m, const char *uid);
const struct service *model_service_by_vip(const struct model *m, const struct ipaddr *ip);
/* By "<namespace>/<hostname>". */
const struct service *model_service_by_key(const struct model *m, const char *key);

/*
 * The workloads whose services map names |key| ("<ns>/<hostname>"), healthy
 * or not, in the order they were added. Stores the count; the array belongs
 * to the model. Returns NULL with *n = 0 when there are none.
 */
struct workload *const *model_endpoints(const struct model *m, const char *key, size_t *n);

/*
 * The target port |w| serves |svc|'s |service_port| on: the workload's own
 * port map wins over the service's. Returns 0 if |w| is not an endpoint of
 * that port.
 */
uint16_t model_endpoint_port(const struct workload *w, const struct service *svc,
                             uint16_t service_port);

/*
 * Picks a healthy endpoint of |svc| for |service_port| with an address of
 * |family|; |seed| spreads choices. Stores the target port. Returns NULL when
 * there is none.
 */
const struct workload *model_pick_endpoint(const struct model *m, const struct service *svc,
                                           uint16_t service_port, int family, uint32_t seed,
                                           uint16_t *target_port);

/* The first address of |w| in |family|, else its first address. NULL if none. */
const struct ipaddr *workload_addr(const struct workload *w, int family);

#endif
