/*
 * telemetry.c - the waypoint's metrics registry (lib/metrics) and its updates: Istio's
 * request metrics and TCP metrics with reporter "waypoint" (istio-ambient.md 6.3), the
 * access-log line per request (access_log.c, on stdout as Envoy's /dev/stdout), and the
 * waypoint's own gauges. Rendered for :15020 /metrics and /stats/prometheus (admin.c).
 *
 *   istio_requests_total                 counter    one per finished request
 *   istio_request_duration_milliseconds  histogram  Envoy's bounds, ms from head to end
 *   istio_request_bytes                  histogram  request body bytes
 *   istio_response_bytes                 histogram  response body bytes
 *   istio_tcp_connections_opened_total   counter    passthrough tunnels established
 *   istio_tcp_connections_closed_total   counter    ... ended (labels as opened)
 *   istio_tcp_received_bytes_total       counter    client -> upstream bytes, at each
 *   istio_tcp_sent_bytes_total           counter    scrape and at close (as ztunnel)
 *
 * Each of those keeps at most WP_METRICS_MAX_SERIES label sets (the histograms
 * WP_METRICS_MAX_HIST_SERIES); past it an update with a new label set is dropped and counted
 * in amesh_metrics_series_overflow_total{metric}. A request with a new label set adds one
 * series to each of the four HTTP families.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_SCOPE "telemetry"
#include "base/base.h"
#include "conn/hs_guard.h"
#include "detect.h"
#include "hbone/hbone.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "metrics/process.h"
#include "telemetry.h"
#include "wp.h"

#ifndef MESH_VERSION
#define MESH_VERSION "0.1.0"
#endif

/*
 * The four request series of recent label sets. Finding a series in lib/metrics means
 * cleaning and hashing all 25 label values (~0.5 KB) once per family; a request almost always
 * has the label set of an earlier one, so its four series are looked for here first: a slot
 * chosen by the labels' addresses, taken only when every value is equal to the series' own,
 * so the result is the one metric_series() would return.
 */
#define WP_SERIES_CACHE 64 /* a power of 2 */
struct series_set {
    struct metric_series *req, *dur, *req_bytes, *resp_bytes;
};

static struct {
    struct metrics *reg;
    struct wp *wp;
    struct metric *requests, *duration, *req_bytes, *resp_bytes;
    struct metric *opened, *closed, *recv, *sent;
    struct metric *build, *ready, *conns_open, *conns_total, *sessions, *pending, *upstream;
    struct metric *detected;
    struct metric *cpu, *rss, *fds, *start_time;
    struct log_ratelimit rl_write;
    struct series_set cache[WP_SERIES_CACHE];
    struct wp_text log;          /* access-log lines not written yet */
    struct loop_defer log_defer; /* their write at the end of the iteration */
} T;

static uint64_t
wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The access log leaves in whole lines, one write(2) per loop iteration for all the lines of
 * the requests that ended in it (at saturation, several), or sooner past WP_LOG_FLUSH bytes.
 */
#define WP_LOG_FLUSH (64 * 1024)

static void
flush_log(void *arg)
{
    size_t off = 0;
    (void)arg;

    while (off < T.log.len) {
        ssize_t w = write(STDOUT_FILENO, T.log.p + off, T.log.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            log_warn_rl(&T.rl_write, "access log: write to stdout failed");
            break;
        }
        off += (size_t)w;
    }
    T.log.len = 0;
}

static bool
same_labels(const char *const *v, const struct metric_series *s)
{
    const char *const *have = metric_series_labels(s);

    for (size_t i = 0; i < TL_N_HTTP; i++)
        if (strcmp(v[i] != NULL ? v[i] : "", have[i]) != 0)
            return false;
    return true;
}

static struct series_set
request_series(const char *const *v, const struct wp_request_info *ri)
{
    uintptr_t h = (uintptr_t)ri->status * 31 + ri->flags;

    for (size_t i = 0; i < TL_N_HTTP; i++)
        if (i != TL_RESPONSE_CODE && i != TL_FLAGS) /* those two are in the caller's buffers */
            h = h * 0x9E3779B1u + (uintptr_t)v[i];
    struct series_set *c = &T.cache[(h ^ (h >> 17)) & (WP_SERIES_CACHE - 1)];
    if (c->req != NULL && same_labels(v, c->req))
        return *c;
    struct series_set ss = {
        .req = metric_series(T.requests, v),
        .dur = metric_series(T.duration, v),
        .req_bytes = metric_series(T.req_bytes, v),
        .resp_bytes = metric_series(T.resp_bytes, v),
    };
    /* Only a complete set: one lost to a cap must keep being counted as lost. */
    if (ss.req != NULL && ss.dur != NULL && ss.req_bytes != NULL && ss.resp_bytes != NULL)
        *c = ss;
    return ss;
}

void
wp_telemetry_request(const struct wp_peer_ctx *p, const struct wp_request_info *ri)
{
    const char *v[TL_N_HTTP];
    char code[12], flags[64];

    if (T.reg == NULL)
        return;
    wp_request_labels(p, ri, v, code, flags);
    struct series_set ss = request_series(v, ri);
    metric_series_add(ss.req, 1);
    metric_series_observe(ss.dur, (double)ri->duration_ms);
    metric_series_observe(ss.req_bytes, (double)ri->bytes_in);
    metric_series_observe(ss.resp_bytes, (double)ri->bytes_out);
    wp_access_append(&T.log, p, ri, wall_ms(), T.wp->opts.json_log);
    if (T.log.len >= WP_LOG_FLUSH || T.wp->loop == NULL)
        flush_log(NULL);
    else
        loop_defer(T.wp->loop, &T.log_defer, flush_log, NULL);
}

void
wp_telemetry_tcp_prepare(struct wp_tcp_tel *t, const struct wp_peer_ctx *p,
                         const struct workload *ep)
{
    if (T.reg == NULL || t->labels[0] != NULL)
        return;
    wp_tcp_labels(p, ep, t->labels);
    t->opened = metric_series(T.opened, t->labels);
    t->recv = metric_series(T.recv, t->labels);
    t->sent = metric_series(T.sent, t->labels);
    /* The series own copies of the values; the caller's strings may go now. */
    const struct metric_series *s = t->opened ? t->opened : t->recv ? t->recv : t->sent;
    if (s != NULL)
        memcpy(t->labels, metric_series_labels(s), sizeof(t->labels));
    else
        t->labels[0] = NULL; /* every family at its cap: nothing more to count */
}

void
wp_telemetry_tcp_open(struct wp_tcp_tel *t)
{
    if (T.reg == NULL || t->labels[0] == NULL || t->open)
        return;
    t->open = true;
    metric_series_add(t->opened, 1);
}

void
wp_telemetry_tcp_bytes(struct wp_tcp_tel *t, uint64_t a_to_b, uint64_t b_to_a)
{
    if (T.reg == NULL || !t->open)
        return;
    if (a_to_b > t->seen_ab) {
        metric_series_add(t->recv, (double)(a_to_b - t->seen_ab));
        t->seen_ab = a_to_b;
    }
    if (b_to_a > t->seen_ba) {
        metric_series_add(t->sent, (double)(b_to_a - t->seen_ba));
        t->seen_ba = b_to_a;
    }
}

void
wp_telemetry_tcp_close(struct wp_tcp_tel *t, uint64_t a_to_b, uint64_t b_to_a, int err)
{
    (void)err; /* Envoy's TCP metrics carry no error; the access log has it */
    if (T.reg == NULL || t->labels[0] == NULL || !t->open)
        return;
    wp_telemetry_tcp_bytes(t, a_to_b, b_to_a);
    metric_add(T.closed, t->labels, 1);
    t->open = false;
}

char *
wp_telemetry_render(struct wp *wp)
{
    struct process_stats ps;

    wp_in_collect(wp->in);
    metric_set(T.ready, NULL, wp->ready);
    metric_set(T.conns_open, NULL, (double)wp->n_conns);
    metric_set(T.conns_total, NULL, (double)wp->total_conns);
    metric_set(T.sessions, NULL, (double)wp_in_sessions(wp->in));
    metric_set(T.pending, NULL, (double)wp_in_handshake_stats(wp->in)->pending);
    metric_set(T.upstream, NULL, (double)hbone_pool_n_conns(wp->pool));
    for (int p = WP_PROTO_HTTP1; p <= WP_PROTO_TCP; p++)
        metric_set(T.detected, (const char *const[]){wp_proto_name(p)},
                   (double)wp_in_detected(wp->in, p));
    process_stats_read(&ps);
    metric_set(T.cpu, NULL, ps.cpu_seconds);
    metric_set(T.rss, NULL, ps.rss_bytes);
    metric_set(T.fds, NULL, ps.open_fds);
    metric_set(T.start_time, NULL, ps.start_time);
    return metrics_render(T.reg);
}

static struct metric *
http(const char *name, const char *help)
{
    return metrics_add(T.reg, METRIC_COUNTER, name, help, tl_names, TL_N_HTTP,
                       WP_METRICS_MAX_SERIES);
}

static struct metric *
hist(const char *name, const char *help)
{
    return metrics_add_histogram(T.reg, name, help, tl_names, TL_N_HTTP,
                                 WP_METRICS_MAX_HIST_SERIES, metrics_envoy_buckets,
                                 METRICS_ENVOY_N_BUCKETS);
}

static struct metric *
tcp(const char *name, const char *help)
{
    return metrics_add(T.reg, METRIC_COUNTER, name, help, tl_names, TL_N_TCP,
                       WP_METRICS_MAX_SERIES);
}

static struct metric *
single(enum metric_type type, const char *name, const char *help)
{
    return metrics_add(T.reg, type, name, help, NULL, 0, 0);
}

void
wp_telemetry_start(struct wp *wp)
{
    static const char *const build_labels[] = {"component", "tag"};

    T.wp = wp;
    T.rl_write = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 1);
    T.reg = metrics_new();
    T.requests = http("istio_requests_total", "Total number of requests");
    T.duration = hist("istio_request_duration_milliseconds", "Request duration in milliseconds");
    T.req_bytes = hist("istio_request_bytes", "Request body size in bytes");
    T.resp_bytes = hist("istio_response_bytes", "Response body size in bytes");
    T.opened =
        tcp("istio_tcp_connections_opened_total", "The total number of TCP connections opened");
    T.closed =
        tcp("istio_tcp_connections_closed_total", "The total number of TCP connections closed");
    T.recv = tcp("istio_tcp_received_bytes_total",
                 "The size of total bytes received during request in case of a TCP connection");
    T.sent = tcp("istio_tcp_sent_bytes_total",
                 "The size of total bytes sent during response in case of a TCP connection");
    T.build = metrics_add(T.reg, METRIC_GAUGE, "istio_build", "Istio component build info",
                          build_labels, 2, 1);
    metric_set(T.build, (const char *const[]){"waypoint", MESH_VERSION}, 1);
    T.ready = single(METRIC_GAUGE, "waypoint_ready", "1 when the waypoint has its certificate "
                                                     "and every watched config type.");
    T.conns_open = single(METRIC_GAUGE, "waypoint_connections_open",
                          "CONNECT streams being served (TCP and HTTP).");
    T.conns_total = single(METRIC_COUNTER, "waypoint_connections_total",
                           "CONNECT streams received since start.");
    T.sessions = single(METRIC_GAUGE, "waypoint_hbone_sessions", "HBONE connections on 15008.");
    T.pending = single(METRIC_GAUGE, "waypoint_hbone_pending_handshakes",
                       "HBONE connections whose TLS handshake has not completed.");
    T.upstream = single(METRIC_GAUGE, "waypoint_upstream_connections",
                        "Pooled upstream HBONE connections.");
    T.detected = metrics_add(T.reg, METRIC_COUNTER, "waypoint_protocol_detected_total",
                             "CONNECTs whose protocol was sniffed, by the protocol chosen.",
                             (const char *const[]){"protocol"}, 1, WP_PROTO_TCP);
    T.cpu = single(METRIC_COUNTER, "process_cpu_seconds_total",
                   "Total user and system CPU time spent in seconds.");
    T.rss = single(METRIC_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes.");
    T.fds = single(METRIC_GAUGE, "process_open_fds", "Number of open file descriptors.");
    T.start_time = single(METRIC_GAUGE, "process_start_time_seconds",
                          "Start time of the process since unix epoch in seconds.");
}

void
wp_telemetry_stop(void)
{
    flush_log(NULL);
    free(T.log.p);
    CHECK(!T.log_defer.queued); /* main runs the loop's deferred calls before stopping */
    metrics_free(T.reg);
    memset(&T, 0, sizeof(T));
}
