/*
 * metrics.c - 15020: Prometheus metrics (/metrics, /stats/prometheus) with
 * Istio ztunnel's names and labels (reference 6.1), on [::] like ztunnel.
 *
 * Traffic: istio_tcp_connections_{opened,closed,failed}_total and
 * istio_tcp_{received,sent}_bytes_total, labelled with CommonTrafficLabels:
 * reporter "source" for outbound and "destination" for inbound, the two
 * workloads (workload name, canonical service and revision, namespace, app,
 * version, cluster) from the model, the destination service, the principals
 * (source_principal only from the mTLS identity actually used: ours when we
 * dial HBONE, the peer's certificate when we accept it), "tcp",
 * response_flags and connection_security_policy ("mutual_tls" for HBONE).
 *
 * When things are counted: a connection is "opened" once its tunnel is
 * established (the first scrape that sees its pipe) or when it ends,
 * whichever comes first; outbound connections whose source is not a workload of
 * ours are refused before that and never counted (ztunnel's early deny).
 * Bytes are counted under the labels it opened with: at each scrape what the
 * pipe moved since the last one, the rest at close, so at close the totals
 * equal the access log's (received = request direction = bytes_sent of the
 * access line, sent = response direction). Closed and failed carry the final
 * response_flags: the one set with zconn_set_flag(), else "-" for a clean end
 * and, for an error, DENY / TLS_FAILURE / IDENTITY_ERROR by error code or
 * CONNECT (as ztunnel defaults). Every flag other than "-" is a failure.
 *
 * Pending HBONE handshakes (15008, lib/conn/hs_guard.h), amesh's own names:
 * amesh_hbone_handshakes_pending and amesh_hbone_handshakes_total{outcome=
 * completed|failed|timeout|evicted|refused}; refused and evicted are the
 * per-source and total caps at work, timeout the handshake deadline.
 *
 * Also: istio_build, process_* (CPU, memory, fds, start time), the xDS
 * client's terminations and messages, and amesh_ztunnel_self_connections_
 * refused_total{listener,reason} (selfcall.c: connections that would have
 * made ztunnel dial itself) and amesh_ztunnel_held_connections_refused_total
 * {listener,reason} (held for a workload that did not come: "expired", or
 * not held because too many were: "cap"). Each traffic family keeps at most
 * ZT_METRICS_MAX_SERIES label sets (lib/metrics counts the overflow).
 *
 * Per-pod limits (tenant.c): amesh_ztunnel_pod_limit_refused_total{limit}.
 *
 * Workers: amesh_ztunnel_workers, and per worker amesh_ztunnel_worker_connections
 * {worker} (open connections and HBONE sessions: what balancing compares) and
 * amesh_ztunnel_worker_handoffs_total{worker} (accepted there, served by a less
 * loaded worker). Every worker updates the one registry (lib/metrics locks it
 * per update); a scrape visits each worker on its own thread (loop_call) for
 * the bytes its open connections moved, since per-connection state is only
 * ever touched by its owner. The registry exists before the workers start
 * and goes after they are joined (main.c), so the hooks need no lock of
 * their own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_http.h"
#include "base/base.h"
#include "conn/hs_guard.h"
#include "metrics/metrics.h"
#include "metrics/process.h"
#include "net/sock.h"
#include "telemetry/traffic_labels.h"
#include "ztunnel.h"

#ifndef MESH_VERSION
#define MESH_VERSION "0.1.0"
#endif
#define ZT_METRICS_MAX_SERIES 5000 /* per traffic family: about 6 MB of text at most */
#define ZT_METRICS_MAX_XDS    64   /* per xDS family (type URLs, reasons) */

/* Per connection, from its opening to its end. */
struct zconn_metrics {
    struct metric_series *opened, *sent, *recv; /* NULL: lost to the cap */
    uint64_t seen_ab, seen_ba;                  /* bytes already counted */
    bool skip;                                  /* refused before routing: not counted */
};

static struct {
    struct metrics *reg;
    struct admin_http *srv;
    struct zt *zt;
    size_t xds_pending_len; /* the response being decoded */
    struct metric *opened, *closed, *failed, *recv, *sent;
    struct metric *build, *cpu, *rss, *vsize, *fds, *max_fds, *start_time;
    struct metric *xds_terminations, *xds_messages, *xds_bytes;
    struct metric *self_refused, *hold_refused, *pod_limit;
    struct metric *hs_pending, *hs_total;
    struct metric *workers, *worker_conns, *worker_handoffs;
} M;

/* Outbound: the service the app dialled (its hostname is on the connection). */
static const struct service *
outbound_service(const struct zt *zt, const struct workload *dst, const char *hostname)
{
    const struct model *m = zt->model;

    for (size_t i = 0; dst != NULL && i < dst->n_services; i++) {
        const char *slash = strchr(dst->services[i].key, '/');
        if (slash != NULL && strcmp(slash + 1, hostname) == 0)
            return model_service_by_key(m, dst->services[i].key);
    }
    for (size_t i = 0; dst == NULL && i < m->n_services; i++)
        if (strcmp(m->services[i]->hostname, hostname) == 0)
            return m->services[i];
    return NULL;
}

/* Inbound: the first service of |dst| with a port mapping to |port| (ztunnel's guess). */
static const struct service *
inbound_service(const struct zt *zt, const struct workload *dst, uint16_t port)
{
    for (size_t i = 0; dst != NULL && i < dst->n_services; i++) {
        const struct service *svc = model_service_by_key(zt->model, dst->services[i].key);
        for (size_t j = 0; svc != NULL && j < svc->n_ports; j++)
            if (model_endpoint_port(dst, svc, svc->ports[j].service_port) == port)
                return svc;
    }
    return NULL;
}

/*
 * Fills |v| for |c| from the model as it is now. Returns false for an
 * outbound connection without a source workload (refused before routing).
 */
static bool
traffic_labels_of(const struct zt *zt, const struct zconn *c, const char **v)
{
    const struct model *m = zt->model;
    const struct workload *src = NULL, *dst = NULL;
    const struct service *svc = NULL;

    if (!c->inbound) {
        if (c->src_workload == NULL)
            return false;
        src = c->pod ? zpod_workload(c->pod, &c->src_ip) : zt_local_workload(zt, &c->src_ip);
        if (c->dst_workload != NULL)
            dst = model_workload_by_ip(m, c->mtls ? &c->hbone_ip : &c->dst_ip);
        if (c->dst_service != NULL)
            svc = outbound_service(zt, dst, c->dst_service);
    } else {
        bool tunnel = c->hbone_ip.family != 0;
        const struct ipaddr *ip = tunnel ? &c->hbone_ip : &c->dst_ip;
        if (c->src_workload != NULL)
            src = model_workload_by_ip(m, &c->src_ip);
        dst = model_workload_by_ip(m, ip);
        if (dst == NULL && c->pod != NULL && c->pod->netns_fd >= 0)
            dst = zpod_workload(c->pod, ip);
        svc = inbound_service(zt, dst, tunnel ? c->hbone_port : c->dst_port);
    }
    v[TL_REPORTER] = c->inbound ? "destination" : "source";
    tl_workload(v, true, src, c->src_ns, zt->opts.cluster);
    tl_workload(v, false, dst, c->dst_ns, zt->opts.cluster);
    /* The identity the tunnel really used: ours outbound, the peer's certificate inbound. */
    v[TL_SRC_PRINCIPAL] = tl_or_unknown(c->mtls ? c->src_identity : NULL);
    v[TL_DST_PRINCIPAL] = tl_or_unknown(dst ? dst->identity : NULL);
    tl_service(v, svc, c->inbound ? NULL : c->dst_service);
    v[TL_PROTOCOL] = "tcp";
    v[TL_FLAGS] = "-";
    v[TL_SECURITY] = c->mtls ? "mutual_tls" : "unknown";
    return true;
}

/* Counts |c| as opened, once. */
static struct zconn_metrics *
conn_open(struct zt *zt, struct zconn *c)
{
    const char *v[TL_N_TCP];

    if (c->metrics != NULL)
        return c->metrics;
    struct zconn_metrics *cm = xcalloc(1, sizeof(*cm));
    c->metrics = cm;
    if (!traffic_labels_of(zt, c, v)) {
        cm->skip = true;
        return cm;
    }
    cm->opened = metric_series(M.opened, v);
    cm->recv = metric_series(M.recv, v);
    cm->sent = metric_series(M.sent, v);
    metric_series_add(cm->opened, 1);
    return cm;
}

static void
count_bytes(struct zconn_metrics *cm, uint64_t ab, uint64_t ba)
{
    if (ab > cm->seen_ab) {
        metric_series_add(cm->recv, (double)(ab - cm->seen_ab));
        cm->seen_ab = ab;
    }
    if (ba > cm->seen_ba) {
        metric_series_add(cm->sent, (double)(ba - cm->seen_ba));
        cm->seen_ba = ba;
    }
}

static const char *
end_flag(const struct zconn *c, const struct pipe_result *res)
{
    int err = res ? res->err : 0;

    if (c->flag != NULL)
        return c->flag;
    if (c->error == NULL && err == 0)
        return "-";
    switch (-err) {
    case MESH_EDENIED:
        return "DENY";
    case MESH_ETLS:
        return "TLS_FAILURE";
    case MESH_ENOIDENTITY:
        return "IDENTITY_ERROR";
    default:
        return "CONNECT";
    }
}

void
zt_metrics_conn_end(struct zt *zt, struct zconn *c, const struct pipe_result *res)
{
    const char *v[TL_N_TCP];

    if (M.reg == NULL)
        return;
    struct zconn_metrics *cm = conn_open(zt, c);
    c->metrics = NULL;
    if (!cm->skip) {
        count_bytes(cm, res ? res->a_to_b : 0, res ? res->b_to_a : 0);
        const struct metric_series *s = cm->opened ? cm->opened : cm->recv ? cm->recv : cm->sent;
        if (s != NULL)
            memcpy(v, metric_series_labels(s), sizeof(v));
        else
            traffic_labels_of(zt, c, v);
        v[TL_FLAGS] = end_flag(c, res);
        metric_add(M.closed, v, 1);
        if (strcmp(v[TL_FLAGS], "-") != 0)
            metric_add(M.failed, v, 1);
    }
    free(cm);
}

/* ---- xDS (hooks in xds.c) ------------------------------------------------ */

void
zt_metrics_xds_response(size_t len)
{
    M.xds_pending_len = len;
}

void
zt_metrics_xds_message(const char *type_url)
{
    if (M.reg != NULL) {
        metric_add(M.xds_messages, &type_url, 1);
        metric_add(M.xds_bytes, &type_url, (double)M.xds_pending_len);
        M.xds_pending_len = 0;
    }
}

void
zt_metrics_xds_end(const char *reason)
{
    if (M.reg != NULL)
        metric_add(M.xds_terminations, &reason, 1);
}

void
zt_metrics_hold_refused(const char *listener, const char *reason)
{
    if (M.reg != NULL)
        metric_add(M.hold_refused, (const char *const[]){listener, reason}, 1);
}

void
zt_metrics_self_refused(const char *listener, const char *reason)
{
    if (M.reg != NULL)
        metric_add(M.self_refused, (const char *const[]){listener, reason}, 1);
}

void
zt_metrics_pod_limit_refused(const char *what)
{
    if (M.reg != NULL)
        metric_add(M.pod_limit, &what, 1);
}

/* What a scrape gathers from the workers, one at a time. */
struct scrape {
    struct hs_guard_stats hs;
};

/* On worker |zt|'s thread: its open connections' bytes, its handshake counters. */
static void
collect_worker(struct zt *zt, void *arg)
{
    struct scrape *sc = arg;
    char id[16];

    /* Tunnels established since the last scrape count as opened; bytes moved so far. */
    for (struct zconn *c = zt->conns; M.reg != NULL && c != NULL; c = c->next) {
        if (c->pipe == NULL)
            continue;
        struct zconn_metrics *cm = conn_open(zt, c);
        uint64_t ab, ba;
        pipe_counts(c->pipe, &ab, &ba);
        if (!cm->skip)
            count_bytes(cm, ab, ba);
    }
    snprintf(id, sizeof(id), "%u", zt->id);
    const char *lv[] = {id};
    metric_set(M.worker_conns, lv, (double)atomic_load(&zt->load));
    metric_set(M.worker_handoffs, lv, (double)atomic_load(&zt->handed_off));
    if (zt->inbound != NULL) {
        const struct hs_guard_stats *hs = inbound_handshake_stats(zt->inbound);
        sc->hs.pending += hs->pending;
        sc->hs.completed += hs->completed;
        sc->hs.failed += hs->failed;
        sc->hs.timed_out += hs->timed_out;
        sc->hs.evicted += hs->evicted;
        sc->hs.refused += hs->refused;
    }
}

/* The process-wide values, after every worker's. */
static void
collect(struct zt *zt, const struct scrape *sc)
{
    struct process_stats ps;

    metric_set(M.workers, NULL, (double)zt->n_workers);
    metric_set(M.hs_pending, NULL, (double)sc->hs.pending);
    metric_set(M.hs_total, (const char *const[]){"completed"}, (double)sc->hs.completed);
    metric_set(M.hs_total, (const char *const[]){"failed"}, (double)sc->hs.failed);
    metric_set(M.hs_total, (const char *const[]){"timeout"}, (double)sc->hs.timed_out);
    metric_set(M.hs_total, (const char *const[]){"evicted"}, (double)sc->hs.evicted);
    metric_set(M.hs_total, (const char *const[]){"refused"}, (double)sc->hs.refused);
    process_stats_read(&ps);
    metric_set(M.cpu, NULL, ps.cpu_seconds);
    metric_set(M.rss, NULL, ps.rss_bytes);
    metric_set(M.vsize, NULL, ps.vsize_bytes);
    metric_set(M.fds, NULL, ps.open_fds);
    metric_set(M.max_fds, NULL, ps.max_fds);
    metric_set(M.start_time, NULL, ps.start_time);
}

static void
on_request(void *arg, const struct http1_req *req, struct admin_resp *r)
{
    struct zt *zt = arg;

    if (strcmp(req->path, "/metrics") != 0 && strcmp(req->path, "/stats/prometheus") != 0)
        return;
    if (strcmp(req->method, "GET") != 0) {
        r->status = 405;
        return;
    }
    struct scrape sc;
    memset(&sc, 0, sizeof(sc));
    workers_each(zt, collect_worker, &sc);
    collect(zt, &sc);
    r->status = 200;
    r->content_type = METRICS_CONTENT_TYPE;
    r->body = metrics_render(M.reg);
}

static struct metric *
traffic(const char *name, const char *help)
{
    return metrics_add(M.reg, METRIC_COUNTER, name, help, tl_names, TL_N_TCP,
                       ZT_METRICS_MAX_SERIES);
}

static struct metric *
single(enum metric_type type, const char *name, const char *help)
{
    return metrics_add(M.reg, type, name, help, NULL, 0, 0);
}

static void
register_all(void)
{
    static const char *const build_labels[] = {"component", "tag"};
    static const char *const reason[] = {"reason"};
    static const char *const url[] = {"url"};
    static const char *const listener_reason[] = {"listener", "reason"};
    static const char *const outcome[] = {"outcome"};
    static const char *const worker[] = {"worker"};

    M.reg = metrics_new();
    M.opened =
        traffic("istio_tcp_connections_opened_total", "The total number of TCP connections opened");
    M.closed =
        traffic("istio_tcp_connections_closed_total", "The total number of TCP connections closed");
    M.failed = traffic("istio_tcp_connections_failed_total",
                       "The total number of TCP connections that failed to establish or ended "
                       "with an error (unstable)");
    M.recv = traffic("istio_tcp_received_bytes_total",
                     "The size of total bytes received during request in case of a TCP connection");
    M.sent = traffic("istio_tcp_sent_bytes_total",
                     "The size of total bytes sent during response in case of a TCP connection");
    M.build = metrics_add(M.reg, METRIC_GAUGE, "istio_build", "Istio component build info",
                          build_labels, 2, 1);
    metric_set(M.build, (const char *const[]){"ztunnel", MESH_VERSION}, 1);
    M.xds_terminations =
        metrics_add(M.reg, METRIC_COUNTER, "istio_xds_connection_terminations_total",
                    "The total number of completed connections to xds server (unstable)", reason, 1,
                    ZT_METRICS_MAX_XDS);
    M.xds_messages =
        metrics_add(M.reg, METRIC_COUNTER, "istio_xds_message_total",
                    "Total number of messages received (unstable)", url, 1, ZT_METRICS_MAX_XDS);
    M.xds_bytes =
        metrics_add(M.reg, METRIC_COUNTER, "istio_xds_message_bytes_total",
                    "Total number of bytes received (unstable)", url, 1, ZT_METRICS_MAX_XDS);
    M.self_refused = metrics_add(
        M.reg, METRIC_COUNTER, "amesh_ztunnel_self_connections_refused_total",
        "Captured connections refused because their destination was ztunnel itself or they "
        "were not redirected",
        listener_reason, 2, ZT_METRICS_MAX_XDS);
    M.hold_refused = metrics_add(
        M.reg, METRIC_COUNTER, "amesh_ztunnel_held_connections_refused_total",
        "Connections held for a workload (or certificate) that did not come in time (reason "
        "expired) or refused because too many were held (reason cap)",
        listener_reason, 2, ZT_METRICS_MAX_XDS);
    M.pod_limit = metrics_add(
        M.reg, METRIC_COUNTER, "amesh_ztunnel_pod_limit_refused_total",
        "New connections refused because their local pod was at its limit of open connections "
        "(limit connections, --pod-max-connections) or of dials in progress (dials, "
        "--pod-max-dials)",
        (const char *const[]){"limit"}, 1, 4);
    M.hs_pending = single(METRIC_GAUGE, "amesh_hbone_handshakes_pending",
                          "HBONE (15008) connections whose TLS handshake has not completed.");
    M.hs_total = metrics_add(M.reg, METRIC_COUNTER, "amesh_hbone_handshakes_total",
                             "HBONE (15008) TLS handshakes by outcome: completed, failed, timeout "
                             "(deadline), evicted (total cap), refused (per-source cap).",
                             outcome, 1, 8);
    M.workers = single(METRIC_GAUGE, "amesh_ztunnel_workers",
                       "Data-path threads (--workers), each with its own event loop.");
    M.worker_conns = metrics_add(M.reg, METRIC_GAUGE, "amesh_ztunnel_worker_connections",
                                 "Open connections and HBONE sessions per worker (what accepted "
                                 "connections are balanced on).",
                                 worker, 1, ZT_MAX_WORKERS);
    M.worker_handoffs = metrics_add(M.reg, METRIC_COUNTER, "amesh_ztunnel_worker_handoffs_total",
                                    "Connections a worker accepted and handed to a less loaded "
                                    "worker.",
                                    worker, 1, ZT_MAX_WORKERS);
    M.cpu = single(METRIC_COUNTER, "process_cpu_seconds_total",
                   "Total user and system CPU time spent in seconds.");
    M.rss = single(METRIC_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes.");
    M.vsize = single(METRIC_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes.");
    M.fds = single(METRIC_GAUGE, "process_open_fds", "Number of open file descriptors.");
    M.max_fds = single(METRIC_GAUGE, "process_max_fds", "Maximum number of open file descriptors.");
    M.start_time = single(METRIC_GAUGE, "process_start_time_seconds",
                          "Start time of the process since unix epoch in seconds.");
}

int
zt_metrics_start(struct zt *zt, char *err, size_t errlen)
{
    struct ipaddr any;

    register_all();
    M.zt = zt;
    /* All addresses of the namespace, as Istio's ztunnel (Prometheus scrapes the pod IP). */
    ipaddr_parse("::", &any);
    M.srv = admin_http_start(zt->loop, &any, ZT_PORT_METRICS, SOCK_MARK_ZTUNNEL, on_request, zt,
                             err, errlen);
    return M.srv ? 0 : -1;
}

void
zt_metrics_stop(void)
{
    admin_http_stop(M.srv);
    M.srv = NULL;
    /* Connections still open are not counted any more; their per-connection state goes. */
    for (struct zconn *c = M.zt ? M.zt->conns : NULL; c != NULL; c = c->next) {
        free(c->metrics);
        c->metrics = NULL;
    }
    metrics_free(M.reg);
    memset(&M, 0, sizeof(M));
}
