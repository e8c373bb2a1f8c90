/*
 * telemetry.h - the waypoint's request metrics and access log (issue 10 section 3,
 * istio-ambient.md 6.3): what the binary knows of a request beyond the engine's report
 * (struct wp_request_info, l7.h), and the pure parts the unit tests drive.
 *
 *   wp_labels.c    Istio's labels for a request or a TCP connection, reporter "waypoint"
 *   access_log.c   one access-log line per request: Istio's Envoy text format or its JSON keys
 *   telemetry.c    (binary) the registry on :15020, per-request and per-connection updates
 */
#ifndef MESH_WAYPOINT_TELEMETRY_H
#define MESH_WAYPOINT_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "l7.h"
#include "model/model.h"
#include "net/addr.h"
#include "telemetry/traffic_labels.h"

/*
 * Label sets kept per family: an update with a new label set past the cap is dropped and
 * counted in amesh_metrics_series_overflow_total{metric=...} (lib/metrics), as ztunnel does.
 * A label set costs ~650 bytes of heap per family, and in a scrape ~0.8 KB per counter but
 * ~15 KB per histogram (22 lines of 25 labels each), so the histograms keep fewer: at both
 * caps the heap is ~3 MB and a scrape ~16 MB (all eight families full; measured).
 */
#define WP_METRICS_MAX_SERIES      1000 /* istio_requests_total, each istio_tcp_* */
#define WP_METRICS_MAX_HIST_SERIES 200  /* each of the three histograms */

/* A request or TCP connection as the binary sees it: the HBONE peer and the CONNECT. */
struct wp_peer_ctx {
    const struct model *model;       /* for the client's workload (may be NULL) */
    const char *client_identity;     /* the HBONE peer certificate's SPIFFE URI */
    struct ipaddr client_ip;
    uint16_t client_port;
    struct ipaddr dst_ip;            /* the CONNECT :authority */
    uint16_t dst_port;
    const struct service *service;   /* the bound service, or NULL */
    const struct workload *workload; /* the bound workload (pod-addressed), or NULL */
    const char *cluster;             /* the cluster name for workloads without one */
};

/*
 * Envoy's response flags of |flags| (WP_FLAG_*), comma-joined, or "-": the short names
 * %RESPONSE_FLAGS% prints. RBAC is not a response flag in Envoy (it shows in
 * %RESPONSE_CODE_DETAILS%), so it is left out. |out| has room for 64 bytes.
 */
const char *wp_flags_str(unsigned flags, char out[64]);

/*
 * istio_requests_total's labels (TL_N_HTTP of them) for request |ri|: reporter "waypoint";
 * the source from the client's workload in the model and the HBONE peer's identity; the
 * destination from the endpoint that served it (else the bound workload), the service from
 * the route's backend (else the bound service); request_protocol "grpc" for gRPC requests,
 * else "http"; response_code (into |code|); grpc_response_status the grpc-status a gRPC
 * client got ("" for others); Envoy's response flags (into |flags|) and
 * connection_security_policy "mutual_tls" (the downstream is always HBONE).
 */
void wp_request_labels(const struct wp_peer_ctx *p, const struct wp_request_info *ri,
                       const char **v, char code[12], char flags[64]);

/* istio_tcp_*'s labels (TL_N_TCP) for a passthrough connection to endpoint |ep|. */
void wp_tcp_labels(const struct wp_peer_ctx *p, const struct workload *ep, const char **v);

/*
 * The access-log line of |ri| (with the trailing newline) in Istio's default Envoy text
 * format (pilot/pkg/model/telemetry_logging.go EnvoyTextLogFormat), or with |json| one JSON
 * object with Istio's keys (EnvoyJSONLogFormatIstio; numbers as numbers, absent values
 * null). |wall_end_ms| is the wall clock at the end, so START_TIME is it minus the duration.
 * Peer-supplied fields are escaped (text: '"', '\' and control bytes as \xNN; JSON: as JSON
 * strings, bytes >= 0x80 as \u00NN) and cut to WP_ACCESS_FIELD_MAX bytes. A new string.
 */
#define WP_ACCESS_FIELD_MAX 2048
char *wp_access_line(const struct wp_peer_ctx *p, const struct wp_request_info *ri,
                     uint64_t wall_end_ms, bool json);

/* A growing text buffer (free |p| when done); wp_access_append() adds one line to it. */
struct wp_text {
    char *p;
    size_t len, cap;
};
void wp_access_append(struct wp_text *t, const struct wp_peer_ctx *p,
                      const struct wp_request_info *ri, uint64_t wall_end_ms, bool json);

/* ---- telemetry.c (the binary) ---- */
struct wp;
struct metric_series;

/* A passthrough connection's series and the bytes already counted. */
struct wp_tcp_tel {
    struct metric_series *opened, *recv, *sent; /* NULL: lost to the cap */
    const char *labels[TL_N_TCP];               /* the series' copies; NULL [0]: none */
    uint64_t seen_ab, seen_ba;
    bool open;                                  /* counted as opened */
};

void wp_telemetry_start(struct wp *wp);
void wp_telemetry_stop(void);
/* A request ended: metrics and the access-log line on stdout. */
void wp_telemetry_request(const struct wp_peer_ctx *p, const struct wp_request_info *ri);
/*
 * A passthrough connection to |ep| was accepted (labels taken from the model now, while |ep|
 * is valid), its tunnel established (counted as opened), moved bytes, ended. Only an
 * established tunnel counts: one refused with 503 opens and closes nothing.
 */
void wp_telemetry_tcp_prepare(struct wp_tcp_tel *t, const struct wp_peer_ctx *p,
                              const struct workload *ep);
void wp_telemetry_tcp_open(struct wp_tcp_tel *t);
void wp_telemetry_tcp_bytes(struct wp_tcp_tel *t, uint64_t a_to_b, uint64_t b_to_a);
void wp_telemetry_tcp_close(struct wp_tcp_tel *t, uint64_t a_to_b, uint64_t b_to_a, int err);
/* The exposition for /metrics: a new string. */
char *wp_telemetry_render(struct wp *wp);

#endif
