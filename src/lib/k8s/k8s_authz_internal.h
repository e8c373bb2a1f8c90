/*
 * k8s_authz_internal.h - what k8s_authz.c (validation, conversion for
 * ztunnel) shares with k8s_authz_wp.c (conversion for waypoints): the decode
 * context of one AuthorizationPolicy and the L4 pieces of istiod's
 * conversion, so both targets read from, to.ports and the L4 `when` keys
 * the same way.
 */
#ifndef MESH_LIB_K8S_AUTHZ_INTERNAL_H
#define MESH_LIB_K8S_AUTHZ_INTERNAL_H

#include "authorization.pb-c.h"
#include "k8s/k8s_internal.h"

/* Istio analyzer codes (istioctl analyze) and amesh's own. */
#define CODE_SCHEMA_ERROR   "IST0106" /* SchemaValidationError */
#define CODE_BAD_ANNOTATION "IST0125" /* InvalidAnnotation */
#define CODE_SCHEMA_WARNING "IST0133" /* SchemaWarning */
#define CODE_INEFFECTIVE    "IST0167" /* IneffectivePolicy */
#define CODE_WP_UNSUPPORTED "AM0006"  /* a targetRefs policy asks what amesh's waypoint cannot enforce */

enum action { A_ALLOW, A_DENY, A_AUDIT, A_CUSTOM };

/* One AuthorizationPolicy being decoded. */
struct apc {
    struct k8s_dctx *c;
    const struct k8s_meta *m;
    struct k8s_ap *ap;
    int errors;
};

/* A note (warning or info) kept with the policy and reported while it is in effect. */
void ap_note(struct apc *x, int sev, int line, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Conversion state (valid input only). */
struct ap_conv {
    struct apc *x;
    struct k8s_arena *a;
    const char *ns;
    size_t entries; /* rules, clauses, matches and values, against POLICY_MAX_ENTRIES */
    /* HTTP attributes found in the current rule, in order of appearance, and in any rule */
    const char *l7[32];
    size_t n_l7;
    int l7_line;
    const char *all_l7[64];
    size_t n_all_l7;
};

/* istiod's stringToMatch: "*" presence, "*x" suffix, "x*" prefix, else exact. */
Istio__Security__StringMatch *ap_string_match(struct k8s_arena *a, const char *v);
/* The strings, addresses (CIDRs) and ports of a validated list, into a Match field. */
void ap_strs(struct ap_conv *v, const json_t *arr, Istio__Security__StringMatch ***out, size_t *n);
void ap_ips(struct ap_conv *v, const json_t *arr, Istio__Security__Address ***out, size_t *n);
void ap_ports(struct ap_conv *v, const json_t *arr, uint32_t **out, size_t *n);
Istio__Security__Match *ap_new_match(struct ap_conv *v);
/* A `from` source's L4 fields (ipBlocks, namespaces, serviceAccounts, principals, not*). */
Istio__Security__Match *ap_from_match(struct ap_conv *v, const json_t *src);
/* A `when` condition on an L4 key (ap_l4_when_key) as a Match. */
Istio__Security__Match *ap_when_match(struct ap_conv *v, const json_t *cond);
bool ap_l4_when_key(const char *k);

/*
 * The rules of a valid policy with targetRefs converted for waypoints into
 * |x->ap|'s wp_* fields (k8s_authz_wp.c); what the waypoint cannot enforce
 * is a warning (AM0006), and never makes the policy more permissive.
 */
void ap_convert_waypoint(struct apc *x, const json_t *spec, enum action action, int action_line);

#endif
