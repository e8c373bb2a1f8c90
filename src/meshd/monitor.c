/*
 * monitor.c - 15014: Prometheus metrics (/metrics) and readiness (/ready), as
 * istiod serves them on its monitoring port. Metric names are istiod's where
 * it has one, so existing dashboards find them; the rest are meshd_*.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "meshd"
#include "admin/admin_http.h"
#include "base/base.h"
#include "conn/hs_guard.h"
#include "log/log.h"
#include "meshd.h"
#include "metrics/process.h"

static struct admin_http *srv;

/* Upper bounds of the push latency buckets, milliseconds (matches meshd_stats). */
static const uint64_t latency_le_ms[8] = {1, 5, 10, 50, 100, 500, 1000, 5000};

void
monitor_observe_push_latency(struct meshd *d, uint64_t ms)
{
    for (size_t i = 0; i < 8; i++)
        if (ms <= latency_le_ms[i])
            d->stats.push_latency_le[i]++;
    d->stats.push_latency_count++;
    d->stats.push_latency_sum_s += (double)ms / 1000.0;
}

static void
metric(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static char *
render(struct meshd *d)
{
    char *p = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&p, &len);
    const struct meshd_stats *s = &d->stats;
    struct process_stats ps;

    metric(f, "pilot_xds", "gauge", "Number of proxies connected over xDS.");
    fprintf(f, "pilot_xds{version=\"amesh\"} %u\n", server_n_xds_streams(d->server));
    metric(f, "pilot_xds_pushes", "counter", "xDS responses pushed, by type.");
    fprintf(f, "pilot_xds_pushes{type=\"wds\"} %" PRIu64 "\n", s->xds_pushes);
    metric(f, "meshd_xds_push_bytes_total", "counter", "Bytes of xDS responses pushed.");
    fprintf(f, "meshd_xds_push_bytes_total %" PRIu64 "\n", s->xds_push_bytes);
    metric(f, "meshd_xds_resources_sent_total", "counter", "Resources sent in xDS responses.");
    fprintf(f, "meshd_xds_resources_sent_total %" PRIu64 "\n", s->xds_resources_sent);
    metric(f, "meshd_xds_acks_total", "counter", "xDS responses acknowledged.");
    fprintf(f, "meshd_xds_acks_total %" PRIu64 "\n", s->xds_acks);
    metric(f, "pilot_total_xds_rejects", "counter", "xDS responses rejected (NACK) by proxies.");
    fprintf(f, "pilot_total_xds_rejects{type=\"wds\"} %" PRIu64 "\n", s->xds_nacks);
    metric(f, "meshd_xds_streams_total", "counter", "xDS streams accepted since start.");
    fprintf(f, "meshd_xds_streams_total %" PRIu64 "\n", s->xds_streams_total);
    metric(f, "meshd_xds_auth_failures_total", "counter",
           "xDS streams refused for a missing or invalid node credential.");
    fprintf(f, "meshd_xds_auth_failures_total %" PRIu64 "\n", s->xds_auth_failures);
    metric(f, "meshd_xds_streams_revoked_total", "counter",
           "xDS streams closed because their node's tokens were revoked.");
    fprintf(f, "meshd_xds_streams_revoked_total %" PRIu64 "\n", s->xds_streams_revoked);
    metric(f, "meshd_token_renewals_total", "counter", "Node tokens renewed.");
    fprintf(f, "meshd_token_renewals_total %" PRIu64 "\n", s->tokens_renewed);
    metric(f, "meshd_token_renewal_failures_total", "counter",
           "Token renewals refused (invalid, expired or revoked token).");
    fprintf(f, "meshd_token_renewal_failures_total %" PRIu64 "\n", s->token_renew_failures);

    const struct hs_guard_stats *hs = server_handshake_stats(d->server);
    metric(f, "meshd_tls_handshakes_pending", "gauge",
           "15012 connections whose TLS handshake has not completed.");
    fprintf(f, "meshd_tls_handshakes_pending %zu\n", hs->pending);
    metric(f, "meshd_tls_handshakes_total", "counter",
           "15012 TLS handshakes by outcome: completed, failed, timeout (deadline), evicted "
           "(total cap), refused (per-address cap).");
    fprintf(f, "meshd_tls_handshakes_total{outcome=\"completed\"} %" PRIu64 "\n", hs->completed);
    fprintf(f, "meshd_tls_handshakes_total{outcome=\"failed\"} %" PRIu64 "\n", hs->failed);
    fprintf(f, "meshd_tls_handshakes_total{outcome=\"timeout\"} %" PRIu64 "\n", hs->timed_out);
    fprintf(f, "meshd_tls_handshakes_total{outcome=\"evicted\"} %" PRIu64 "\n", hs->evicted);
    fprintf(f, "meshd_tls_handshakes_total{outcome=\"refused\"} %" PRIu64 "\n", hs->refused);

    metric(f, "pilot_proxy_convergence_time", "histogram",
           "Seconds from a push to the proxy's acknowledgement.");
    for (size_t i = 0; i < 8; i++)
        fprintf(f, "pilot_proxy_convergence_time_bucket{le=\"%g\"} %" PRIu64 "\n",
                (double)latency_le_ms[i] / 1000.0, s->push_latency_le[i]);
    fprintf(f, "pilot_proxy_convergence_time_bucket{le=\"+Inf\"} %" PRIu64 "\n",
            s->push_latency_count);
    fprintf(f, "pilot_proxy_convergence_time_sum %.6f\n", s->push_latency_sum_s);
    fprintf(f, "pilot_proxy_convergence_time_count %" PRIu64 "\n", s->push_latency_count);

    metric(f, "citadel_server_csr_count", "counter", "Certificate signing requests received.");
    fprintf(f, "citadel_server_csr_count %" PRIu64 "\n", s->ca_requests);
    metric(f, "citadel_server_success_cert_issuance_count", "counter", "Certificates issued.");
    fprintf(f, "citadel_server_success_cert_issuance_count %" PRIu64 "\n", s->ca_signed);
    metric(f, "citadel_server_authentication_failure_count", "counter",
           "CA requests without a valid node credential.");
    fprintf(f, "citadel_server_authentication_failure_count %" PRIu64 "\n", s->ca_auth_failures);
    metric(f, "meshd_ca_refusals_total", "counter",
           "CA requests refused after authentication (node restriction, bad CSR).");
    fprintf(f, "meshd_ca_refusals_total %" PRIu64 "\n", s->ca_refused);

    unsigned kr_inflight, kr_waiting;
    kreview_counts(d->server, &kr_inflight, &kr_waiting);
    metric(f, "meshd_kube_token_reviews_total", "counter",
           "TokenReviews sent to the API server for Kubernetes tokens on CA and xDS calls.");
    fprintf(f, "meshd_kube_token_reviews_total %" PRIu64 "\n", s->kube_reviews);
    metric(f, "meshd_kube_token_review_cache_hits_total", "counter",
           "Kubernetes-token calls answered from the review cache.");
    fprintf(f, "meshd_kube_token_review_cache_hits_total %" PRIu64 "\n", s->kube_review_cache_hits);
    metric(f, "meshd_kube_token_review_coalesced_total", "counter",
           "Kubernetes-token calls that waited for a review of the same token already in flight.");
    fprintf(f, "meshd_kube_token_review_coalesced_total %" PRIu64 "\n", s->kube_review_coalesced);
    metric(f, "meshd_kube_token_review_failures_total", "counter",
           "Kubernetes-token calls failed UNAVAILABLE: review timed out, failed, or over the cap.");
    fprintf(f, "meshd_kube_token_review_failures_total %" PRIu64 "\n", s->kube_review_failures);
    metric(f, "meshd_kube_token_review_refusals_total", "counter",
           "TokenReviews whose answer did not authenticate a pod-bound istio-ca token.");
    fprintf(f, "meshd_kube_token_review_refusals_total %" PRIu64 "\n", s->kube_review_refusals);
    metric(f, "meshd_kube_token_reviews_in_flight", "gauge", "TokenReviews awaiting an answer.");
    fprintf(f, "meshd_kube_token_reviews_in_flight %u\n", kr_inflight);
    metric(f, "meshd_kube_token_review_waiting_calls", "gauge",
           "CA and xDS calls held until their token's review answers.");
    fprintf(f, "meshd_kube_token_review_waiting_calls %u\n", kr_waiting);
    metric(f, "meshd_kube_token_review_duration_seconds", "summary",
           "Time from a TokenReview sent to its answer.");
    fprintf(f, "meshd_kube_token_review_duration_seconds_sum %.3f\n",
            (double)s->kube_review_latency_ms_sum / 1000.0);
    fprintf(f, "meshd_kube_token_review_duration_seconds_count %" PRIu64 "\n",
            s->kube_review_latency_count);
    metric(f, "meshd_kube_token_review_duration_seconds_max", "gauge",
           "Longest time a TokenReview took to answer.");
    fprintf(f, "meshd_kube_token_review_duration_seconds_max %.3f\n",
            (double)s->kube_review_latency_ms_max / 1000.0);

    metric(f, "meshd_config_reloads_total", "counter", "Config directory reloads.");
    fprintf(f, "meshd_config_reloads_total %" PRIu64 "\n", s->config_reloads);
    metric(f, "meshd_config_errors", "gauge",
           "Config errors standing now (files or resources not applied).");
    fprintf(f, "meshd_config_errors %" PRIu64 "\n", s->config_errors_now);
    metric(f, "meshd_config_errors_total", "counter", "Config errors reported since start.");
    fprintf(f, "meshd_config_errors_total %" PRIu64 "\n", s->config_errors_total);

    meshd_kube_metrics(d, f);

    metric(f, "istiod_uptime_seconds", "gauge", "Seconds since meshd started.");
    fprintf(f, "istiod_uptime_seconds %.3f\n", (double)(clock_wall_ms() - d->start_ms) / 1000.0);
    process_stats_read(&ps);
    metric(f, "process_cpu_seconds_total", "counter", "User and system CPU seconds.");
    fprintf(f, "process_cpu_seconds_total %.3f\n", ps.cpu_seconds);
    metric(f, "process_resident_memory_bytes", "gauge", "Resident memory in bytes.");
    fprintf(f, "process_resident_memory_bytes %.0f\n", ps.rss_bytes);
    metric(f, "process_open_fds", "gauge", "Open file descriptors.");
    fprintf(f, "process_open_fds %.0f\n", ps.open_fds);
    fclose(f);
    return p;
}

static void
on_request(void *arg, const struct http1_req *req, struct admin_resp *r)
{
    struct meshd *d = arg;

    if (strcmp(req->method, "GET") != 0) {
        r->status = 405;
        return;
    }
    if (strcmp(req->path, "/metrics") == 0 || strcmp(req->path, "/stats/prometheus") == 0) {
        r->status = 200;
        r->content_type = "text/plain; version=0.0.4";
        r->body = render(d);
    } else if (strcmp(req->path, "/ready") == 0) {
        /* With the Kubernetes source: not before every kind was listed and a snapshot built. */
        bool ready = d->ready && config_snapshot(d->config) != NULL;
        r->status = ready ? 200 : 503;
        r->body = xstrdup(ready ? "ready\n" : "not ready\n");
    } else if (strcmp(req->path, "/debug/config_errors") == 0) {
        r->status = 200;
        r->body = config_errors_text(d->config);
    } else if (strcmp(req->path, "/debug/waypoints") == 0) {
        r->status = 200;
        r->body = meshd_kube_waypoints_text(d);
    }
}

int
monitor_start(struct meshd *d, char *err, size_t errlen)
{
    srv = admin_http_start(d->loop, &d->opts.monitor_ip, d->opts.monitor_port, 0, on_request, d,
                           err, errlen);
    return srv ? 0 : -1;
}

void
monitor_stop(void)
{
    admin_http_stop(srv);
    srv = NULL;
}
