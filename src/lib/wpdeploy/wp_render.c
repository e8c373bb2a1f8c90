/*
 * wp_render.c - what a waypoint Gateway deploys, as istiod's deployment controller renders it
 * (istio-discovery files/waypoint.yaml): pure JSON in, JSON out, unit tested.
 *
 * A Gateway of class istio-waypoint gets a ServiceAccount, a Deployment and a Service, named
 * after it (annotations gateway.istio.io/name-override and gateway.istio.io/service-account
 * rename them) and owned by it (ownerReferences, so deleting the Gateway removes them). The
 * pod is labelled istio.io/dataplane-mode: none: ztunnel never captures the waypoint itself.
 * The container runs amesh's `waypoint` with meshd's address, the mesh root and a token:
 * in the local cluster the node's token file ($(NODE_NAME), expanded at start) and the
 * cluster's root file; on Kubernetes a projected service-account token (audience istio-ca,
 * which meshd's CA reviews) and the istio-ca-root-cert ConfigMap, as volumes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "wpdeploy/wpdeploy.h"

bool
wp_is_waypoint(const json_t *gw)
{
    const char *cls =
        json_string_value(json_object_get(json_object_get(gw, "spec"), "gatewayClassName"));
    return cls != NULL && strcmp(cls, WP_CLASS) == 0;
}

static const char *
meta_str(const json_t *obj, const char *map, const char *key)
{
    json_t *m = json_object_get(json_object_get(obj, "metadata"), map);
    return json_string_value(json_object_get(m, key));
}

const char *
wp_traffic_type(const json_t *gw)
{
    const char *t = meta_str(gw, "labels", WP_LABEL_FOR);
    return t != NULL ? t : "service";
}

const char *
wp_deployment_name(const json_t *gw)
{
    const char *o = meta_str(gw, "annotations", "gateway.istio.io/name-override");
    return o != NULL && o[0] != '\0'
               ? o
               : json_string_value(json_object_get(json_object_get(gw, "metadata"), "name"));
}

const char *
wp_service_account(const json_t *gw)
{
    const char *o = meta_str(gw, "annotations", "gateway.istio.io/service-account");
    return o != NULL && o[0] != '\0' ? o : wp_deployment_name(gw);
}

int
wp_replicas(const json_t *gw)
{
    const char *r = meta_str(gw, "annotations", WP_ANNOTATION_REPLICAS);
    if (r == NULL)
        return 1;
    char *end;
    long v = strtol(r, &end, 10);
    return *end == '\0' && end != r && v >= 0 && v <= WP_MAX_REPLICAS ? (int)v : -1;
}

/* Labels every rendered object carries, plus the managed label where istiod puts it. */
static json_t *
infra_labels(const char *gw_name, bool managed)
{
    json_t *l = json_pack("{s:s, s:s}", WP_LABEL_GATEWAY_NAME, gw_name,
                          "gateway.networking.k8s.io/gateway-class-name", WP_CLASS);
    if (managed)
        json_object_set_new(l, "gateway.istio.io/managed", json_string(WP_CONTROLLER_LABEL));
    return l;
}

static json_t *
owner_refs(const char *gw_name, const char *uid)
{
    return json_pack("[{s:s, s:s, s:s, s:s}]", "apiVersion", WP_GATEWAY_API_VERSION, "kind",
                     "Gateway", "name", gw_name, "uid", uid);
}

static json_t *
field_env(const char *name, const char *path)
{
    return json_pack("{s:s, s:{s:{s:s}}}", "name", name, "valueFrom", "fieldRef", "fieldPath",
                     path);
}

/*
 * On Kubernetes: the image, the token and root volumes (as manifests/base/ztunnel.yaml gives
 * ztunnel its own), no API token (the waypoint never calls the API server) and a non-root,
 * capability-free container (it only listens above 1024 and dials out).
 */
static void
kube_pod_spec(json_t *pod_spec, json_t *ctr, const char *image)
{
    json_object_set_new(ctr, "image", json_string(image != NULL ? image : "amesh/waypoint:dev"));
    json_object_set_new(ctr, "imagePullPolicy", json_string("IfNotPresent"));
    json_object_set_new(ctr, "volumeMounts",
                        json_pack("[{s:s, s:s, s:b}, {s:s, s:s, s:b}]", "name", "istio-token",
                                  "mountPath", WP_KUBE_TOKEN_DIR, "readOnly", 1, "name",
                                  "istiod-ca-cert", "mountPath", WP_KUBE_ROOT_DIR, "readOnly", 1));
    json_object_set_new(ctr, "securityContext",
                        json_pack("{s:b, s:b, s:b, s:i, s:i, s:{s:[s]}}",
                                  "allowPrivilegeEscalation", 0, "readOnlyRootFilesystem", 1,
                                  "runAsNonRoot", 1, "runAsUser", 65532, "runAsGroup", 65532,
                                  "capabilities", "drop", "ALL"));
    json_object_set_new(pod_spec, "automountServiceAccountToken", json_false());
    json_object_set_new(pod_spec, "terminationGracePeriodSeconds", json_integer(30));
    json_object_set_new(pod_spec, "volumes",
                        json_pack("[{s:s, s:{s:[{s:{s:s, s:s, s:i}}]}}, {s:s, s:{s:s}}]", "name",
                                  "istio-token", "projected", "sources", "serviceAccountToken",
                                  "path", "istio-token", "audience", "istio-ca",
                                  "expirationSeconds", WP_KUBE_TOKEN_TTL_S, "name",
                                  "istiod-ca-cert", "configMap", "name", "istio-ca-root-cert"));
}

static json_t *
render_deployment(const json_t *gw, const struct wp_env *env, const char *ns, const char *gname,
                  const char *uid, int replicas)
{
    const char *dname = wp_deployment_name(gw), *sa = wp_service_account(gw);
    const char *rev = meta_str(gw, "labels", "istio.io/rev");
    bool kube = env->creds == WP_CREDS_KUBE;
    char *token = kube ? xstrdup(WP_KUBE_TOKEN_FILE)
                       : xasprintf("%s/nodes/$(NODE_NAME)/token", env->cluster_dir);
    char *root =
        kube ? xstrdup(WP_KUBE_ROOT_FILE) : xasprintf("%s/state/root-cert.pem", env->cluster_dir);

    json_t *pod_labels =
        json_pack("{s:s, s:s, s:s, s:s}", "sidecar.istio.io/inject", "false",
                  "istio.io/dataplane-mode", "none", "service.istio.io/canonical-name", dname,
                  "service.istio.io/canonical-revision", "latest");
    json_t *infra = infra_labels(gname, true);
    json_object_update(pod_labels, infra);
    json_decref(infra);
    json_t *pod_ann = json_pack("{s:s, s:s, s:s, s:s}", "istio.io/rev", rev ? rev : "default",
                                "prometheus.io/path", "/metrics", "prometheus.io/port", "15020",
                                "prometheus.io/scrape", "true");
    json_t *envs = json_pack("[o, o, o, o, o]", field_env("NODE_NAME", "spec.nodeName"),
                             field_env("POD_NAME", "metadata.name"),
                             field_env("POD_NAMESPACE", "metadata.namespace"),
                             field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
                             field_env("INSTANCE_IP", "status.podIP"));
    json_t *args =
        json_pack("[s,s, s,s, s,s, s,s, s,s, s,s, s,s]", "--xds-address", env->xds_address,
                  "--root-cert", root, "--token", token, "--node", "$(NODE_NAME)", "--namespace",
                  "$(POD_NAMESPACE)", "--name", gname, "--service-account", "$(SERVICE_ACCOUNT)");
    json_t *probe = json_pack("{s:{s:s, s:i, s:s}, s:i, s:i, s:i}", "httpGet", "path",
                              "/healthz/ready", "port", WP_STATUS_PORT, "scheme", "HTTP",
                              "periodSeconds", 15, "timeoutSeconds", 1, "failureThreshold", 4);
    json_t *ports = json_pack(
        "[{s:i, s:s, s:s}, {s:i, s:s, s:s}, {s:i, s:s, s:s}]", "containerPort", WP_HBONE_PORT,
        "name", "mesh", "protocol", "TCP", "containerPort", 15020, "name", "metrics", "protocol",
        "TCP", "containerPort", WP_STATUS_PORT, "name", "status-port", "protocol", "TCP");
    json_t *ctr =
        json_pack("{s:s, s:[s], s:o, s:o, s:o, s:o}", "name", "waypoint", "command", "waypoint",
                  "args", args, "env", envs, "ports", ports, "readinessProbe", probe);
    json_t *pod_spec = json_pack("{s:s, s:[o]}", "serviceAccountName", sa, "containers", ctr);
    if (kube)
        kube_pod_spec(pod_spec, ctr, env->image);
    json_t *dep = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:o, s:o}, s:{s:i, s:{s:{s:s}}, s:{s:{s:o, s:o}, s:o}}}",
        "apiVersion", "apps/v1", "kind", "Deployment", "metadata", "name", dname, "namespace", ns,
        "labels", infra_labels(gname, true), "ownerReferences", owner_refs(gname, uid), "spec",
        "replicas", replicas, "selector", "matchLabels", WP_LABEL_GATEWAY_NAME, gname, "template",
        "metadata", "labels", pod_labels, "annotations", pod_ann, "spec", pod_spec);
    free(token);
    free(root);
    return dep;
}

/*
 * The Gateway's spec.infrastructure labels and annotations on what it deploys, as Gateway API
 * asks and istiod does; what istiod renders itself wins over them.
 */
static void
add_infra(json_t *meta, const json_t *infra)
{
    static const char *const maps[] = {"labels", "annotations"};
    for (size_t i = 0; i < ARRAY_LEN(maps); i++) {
        const json_t *from = json_object_get(infra, maps[i]);
        const char *k;
        json_t *v;
        if (!json_is_object(from) || json_object_size(from) == 0)
            continue;
        json_t *to = json_object_get(meta, maps[i]);
        if (to == NULL) {
            to = json_object();
            json_object_set_new(meta, maps[i], to);
        }
        json_object_foreach((json_t *)from, k, v)
        {
            if (json_is_string(v) && json_object_get(to, k) == NULL)
                json_object_set(to, k, v);
        }
    }
}

json_t *
wp_render(const json_t *gw, const struct wp_env *env)
{
    const json_t *meta = json_object_get(gw, "metadata");
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *gname = json_string_value(json_object_get(meta, "name"));
    const char *uid = json_string_value(json_object_get(meta, "uid"));
    int replicas = wp_replicas(gw);

    if (ns == NULL || gname == NULL || !wp_is_waypoint(gw) || replicas < 0)
        return NULL;
    if (uid == NULL)
        uid = "";
    const char *dname = wp_deployment_name(gw), *sa = wp_service_account(gw);

    json_t *sa_obj =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:o, s:o}}", "apiVersion", "v1", "kind",
                  "ServiceAccount", "metadata", "name", sa, "namespace", ns, "labels",
                  infra_labels(gname, false), "ownerReferences", owner_refs(gname, uid));
    json_t *svc = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:o, s:{s:s}, s:o}, s:{s:s, s:[{s:s, s:i, s:s, s:s}, {s:s, "
        "s:i, s:s, s:s}], s:{s:s}, s:s}}",
        "apiVersion", "v1", "kind", "Service", "metadata", "name", dname, "namespace", ns, "labels",
        infra_labels(gname, false), "annotations", "networking.istio.io/traffic-distribution",
        "PreferClose", "ownerReferences", owner_refs(gname, uid), "spec", "ipFamilyPolicy",
        "PreferDualStack", "ports", "name", "status-port", "port", WP_STATUS_PORT, "protocol",
        "TCP", "appProtocol", "tcp", "name", "mesh", "port", WP_HBONE_PORT, "protocol", "TCP",
        "appProtocol", "hbone", "selector", WP_LABEL_GATEWAY_NAME, gname, "type", "ClusterIP");
    json_t *dep = render_deployment(gw, env, ns, gname, uid, replicas);
    const json_t *infra = json_object_get(json_object_get(gw, "spec"), "infrastructure");
    add_infra(json_object_get(sa_obj, "metadata"), infra);
    add_infra(json_object_get(dep, "metadata"), infra);
    add_infra(
        json_object_get(json_object_get(json_object_get(dep, "spec"), "template"), "metadata"),
        infra);
    add_infra(json_object_get(svc, "metadata"), infra);
    return json_pack("[o, o, o]", sa_obj, dep, svc);
}

bool
wp_owned_by(const json_t *obj, const char *gw_name)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), i, r)
    {
        const char *k = json_string_value(json_object_get(r, "kind"));
        const char *n = json_string_value(json_object_get(r, "name"));
        if (k != NULL && n != NULL && strcmp(k, "Gateway") == 0 && strcmp(n, gw_name) == 0)
            return true;
    }
    return false;
}

bool
wp_holds(const json_t *have, const json_t *want)
{
    if (json_is_object(want)) {
        const char *k;
        json_t *v;
        if (!json_is_object(have))
            return false;
        json_object_foreach((json_t *)want, k,
                            v) if (!wp_holds(json_object_get(have, k), v)) return false;
        return true;
    }
    if (json_is_array(want)) {
        size_t i;
        json_t *v;
        if (!json_is_array(have) || json_array_size(have) != json_array_size(want))
            return false;
        json_array_foreach(want, i, v) if (!wp_holds(json_array_get(have, i), v)) return false;
        return true;
    }
    return have != NULL && json_equal((json_t *)have, (json_t *)want);
}
