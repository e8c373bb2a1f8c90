/*
 * wp_labels.c - Istio's labels for what the waypoint reports (reporter "waypoint"), built
 * from lib/telemetry's table so they match ztunnel's names and "unknown"s.
 */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "telemetry.h"

/* Envoy's short names, in the order the engines' flags are declared. */
static const struct {
    unsigned flag;
    const char *name;
} flag_names[] = {
    {WP_FLAG_NR, "NR"},   {WP_FLAG_UH, "UH"},   {WP_FLAG_UF, "UF"}, {WP_FLAG_URX, "URX"},
    {WP_FLAG_UT, "UT"},   {WP_FLAG_UPE, "UPE"}, {WP_FLAG_UC, "UC"}, {WP_FLAG_DC, "DC"},
};

const char *
wp_flags_str(unsigned flags, char out[64])
{
    size_t n = 0;

    out[0] = '\0';
    for (size_t i = 0; i < ARRAY_LEN(flag_names); i++)
        if (flags & flag_names[i].flag)
            n += (size_t)snprintf(out + n, 64 - n, "%s%s", n ? "," : "", flag_names[i].name);
    return n ? out : "-";
}

/* Reporter, the source side and the fixed labels common to requests and connections. */
static void
peer_labels(const struct wp_peer_ctx *p, const char **v)
{
    const struct workload *src =
        p->model != NULL ? model_workload_by_ip(p->model, &p->client_ip) : NULL;

    v[TL_REPORTER] = "waypoint";
    tl_workload(v, true, src, NULL, p->cluster);
    /* Only the identity the client proved with its certificate, never the model's. */
    v[TL_SRC_PRINCIPAL] = tl_or_unknown(p->client_identity);
    v[TL_SECURITY] = "mutual_tls";
}

static void
destination_labels(const struct wp_peer_ctx *p, const struct workload *dst,
                   const struct service *svc, const char **v)
{
    tl_workload(v, false, dst, NULL, p->cluster);
    v[TL_DST_PRINCIPAL] = tl_or_unknown(dst != NULL ? dst->identity : NULL);
    tl_service(v, svc, NULL);
}

void
wp_request_labels(const struct wp_peer_ctx *p, const struct wp_request_info *ri,
                  const char **v, char code[12], char flags[64])
{
    peer_labels(p, v);
    destination_labels(p, ri->upstream != NULL ? ri->upstream : p->workload,
                       ri->backend != NULL ? ri->backend : p->service, v);
    /* Istio's stats: "grpc" for gRPC requests, with the grpc-status the client got. */
    v[TL_PROTOCOL] = ri->grpc ? "grpc" : "http";
    snprintf(code, 12, "%d", ri->status);
    v[TL_RESPONSE_CODE] = code;
    v[TL_GRPC_STATUS] = ri->grpc && ri->grpc_status != NULL ? ri->grpc_status : "";
    v[TL_FLAGS] = wp_flags_str(ri->flags, flags);
}

void
wp_tcp_labels(const struct wp_peer_ctx *p, const struct workload *ep, const char **v)
{
    peer_labels(p, v);
    destination_labels(p, ep, p->service, v);
    v[TL_PROTOCOL] = "tcp";
    v[TL_FLAGS] = "-";
}
