/*
 * xds.c - DeltaAggregatedResources streams: each is a lib/xds server state
 * fed with the proxy's requests and with every new snapshot; what it produces
 * goes out on the call in order. One log line per push at debug level.
 *
 * Waypoints: a stream whose node metadata claims a waypoint (xds.h,
 * XDS_META_WAYPOINT) gets that waypoint's Routes and Policies from its own
 * snapshot (lib/xds own_type_urls), rebuilt when the store changes, while
 * Address and Authorization stay the one shared snapshot. Per-stream
 * snapshots rather than a filter inside lib/xds: the filter would have to
 * follow bindings too (a Service bound to another waypoint changes what a
 * waypoint sees without any Route changing), and a snapshot already diffs
 * whatever changed. The claim holds only while the node of the stream's
 * credential runs a pod of that waypoint as that service account
 * (k8s_waypoint_on_node), and, for a stream opened with a Kubernetes token,
 * while that account is the caller's own; otherwise the stream holds an empty set, so a
 * claim that stops holding removes what it had. Other streams (ztunnel)
 * never get these types, even when they ask.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "xds"
#include "base/base.h"
#include "grpc/grpc.h"
#include "k8s/k8s.h"
#include "log/log.h"
#include "meshd_server.h"
#include "pbcheck/pbcheck.h"
#include "rpc/rpc.h"
#include "xds/xds.h"
#include "xds/xds_server.h"

/*
 * A proxy that leaves a push unanswered this long holds back every later push
 * of that type (one in flight per type): its stream is closed, so it
 * reconnects and resyncs with initial_resource_versions.
 */
#define XDS_ACK_TIMEOUT_MS 60000
#define XDS_STUCK_CHECK_MS 5000

/*
 * A request is small (ACKs, subscriptions); the largest is a reconnect's
 * initial_resource_versions, ~100 bytes per resource: 4 MiB holds 40,000.
 */
#define XDS_MAX_REQUEST XDS_MAX_REQUEST_BYTES
#define XDS_MAX_NAMES ((size_t)1 << 17) /* names per list in a request and held per type */

struct xds_conn {
    struct xds_conn *prev, *next;
    struct meshd_server *srv;
    struct rpc_call *call;
    const struct h2_session *sess; /* for counting streams per connection only */
    struct xds_server_stream *xs;
    char node[TOKEN_NODE_MAX + 1];
    uint64_t gen; /* of the node token that opened it */
    /* Opened with a Kubernetes token: the caller's account (a waypoint claim must be its own). */
    bool kube;
    char kube_ns[KUBEAUTH_NS_MAX + 1], kube_sa[KUBEAUTH_NAME_MAX + 1];
    bool ended;
    bool push_pending; /* a snapshot arrived while output was still queued */
    /* A waypoint's claim (node metadata), NULL for other proxies. */
    char *wp_ns, *wp_name, *wp_sa;
    bool wp_built;   /* an own snapshot was pushed, from store generation wp_gen */
    bool wp_allowed; /* the claim held at the last build */
    uint64_t wp_gen;
    bool told_not_waypoint;
};

/*
 * Waypoint lines: any node can open streams with claims at will, so they are
 * rate-limited per node (one node's flood cannot hide another's first line).
 */
static struct log_ratelimit_set wp_log = LOG_RATELIMIT_SET_INIT(10000, 5);

/* Every stream serves all four; the waypoint types only from a waypoint's own snapshot. */
static const char *const served_types[] = {XDS_TYPE_ADDRESS, XDS_TYPE_AUTHORIZATION,
                                           XDS_TYPE_WAYPOINT_ROUTE, XDS_TYPE_WAYPOINT_POLICY};
static const char *const own_types[] = {XDS_TYPE_WAYPOINT_ROUTE, XDS_TYPE_WAYPOINT_POLICY};

static const char *
peer_name(const struct xds_conn *c)
{
    const char *id = xds_server_stream_node_id(c->xs);
    return id ? id : c->node;
}

static void
on_event(void *arg, const struct xds_server_event *ev)
{
    struct xds_conn *c = arg;
    struct meshd *d = c->srv->d;

    switch (ev->kind) {
    case XDS_SERVER_EV_NODE: {
        const char *nn = xds_server_stream_node_meta(c->xs, "NODE_NAME");
        if (nn != NULL && strcmp(nn, c->node) != 0)
            log_warn("xDS stream of node %s says NODE_NAME %s; its credential wins", c->node, nn);
        log_info("xDS stream from %s (node %s)", peer_name(c), c->node);
        const char *wp = xds_server_stream_node_meta(c->xs, XDS_META_WAYPOINT);
        const char *ns = xds_server_stream_node_meta(c->xs, XDS_META_NAMESPACE);
        const char *sa = xds_server_stream_node_meta(c->xs, XDS_META_SERVICE_ACCOUNT);
        if (wp != NULL && (ns == NULL || sa == NULL || wp[0] == '\0' || ns[0] == '\0' ||
                           sa[0] == '\0')) {
            log_warn_rl(log_ratelimit_for(&wp_log, c->node),
                        "%s claims waypoint \"%.64s\" without %s and %s; it gets no waypoint "
                        "config",
                        peer_name(c), wp, XDS_META_NAMESPACE, XDS_META_SERVICE_ACCOUNT);
        } else if (wp != NULL) {
            c->wp_ns = xstrdup(ns);
            c->wp_name = xstrdup(wp);
            c->wp_sa = xstrdup(sa);
        }
        break;
    }
    case XDS_SERVER_EV_ACK:
        d->stats.xds_acks++;
        monitor_observe_push_latency(d, ev->latency_ms);
        log_debug("push %s to %s acknowledged after %" PRIu64 " ms", ev->nonce, peer_name(c),
                  ev->latency_ms);
        break;
    case XDS_SERVER_EV_NACK: {
        /* One line per NACK however many resources it names: a peer sets its size. */
        char first[300] = "";
        d->stats.xds_nacks++;
        if (ev->n_rejected > 0)
            snprintf(first, sizeof(first), " (first %.200s version %.20s)", ev->rejected[0].name,
                     ev->rejected[0].version);
        log_warn("%s rejected %zu resources of push %.64s%s: %.300s", peer_name(c),
                 ev->n_rejected, ev->nonce ? ev->nonce : "", first,
                 ev->message ? ev->message : "");
        break;
    }
    case XDS_SERVER_EV_UNKNOWN_TYPE:
        log_info("%s asked for %s, which meshd does not serve", peer_name(c), ev->type_url);
        break;
    case XDS_SERVER_EV_OVERSIZED:
        log_warn("resource %s is larger than one response; sent alone", ev->name);
        break;
    case XDS_SERVER_EV_STALE_NONCE:
        break;
    }
}

/*
 * A waypoint stream's own snapshot, built again when the store changed since
 * the last one: its Routes and Policies while the claim holds, else none.
 */
static void
waypoint_sync(struct xds_conn *c, struct xds_out *out)
{
    struct meshd_config *cfg = c->srv->d->config;
    const struct k8s_store *st = config_store(cfg);
    uint64_t gen = k8s_store_generation(st);
    bool exists = false;

    if (c->wp_name == NULL || (c->wp_built && gen == c->wp_gen) || config_snapshot(cfg) == NULL)
        return; /* nothing is served before the Kubernetes source listed every kind */
    bool allowed = k8s_waypoint_on_node(st, c->node, c->wp_ns, c->wp_name, c->wp_sa) &&
                   (!c->kube ||
                    (strcmp(c->wp_ns, c->kube_ns) == 0 && strcmp(c->wp_sa, c->kube_sa) == 0));
    struct xds_snapshot *own = allowed
                                   ? config_waypoint_snapshot(cfg, c->wp_ns, c->wp_name, &exists)
                                   : config_empty_snapshot();
    if (own == NULL) {
        log_error("cannot build the config of waypoint %s/%s; %s keeps what it has", c->wp_ns,
                  c->wp_name, peer_name(c));
        return;
    }
    if (!allowed && (!c->wp_built || c->wp_allowed))
        log_warn_rl(log_ratelimit_for(&wp_log, c->node),
                    "%s (node %s) claims waypoint %s/%s as service account %s, but node %s runs "
                    "no pod of it as that service account: permission denied for Route and "
                    "Policy (it gets none)",
                    peer_name(c), c->node, c->wp_ns, c->wp_name, c->wp_sa, c->node);
    else if (allowed && (!c->wp_built || !c->wp_allowed))
        log_info_rl(log_ratelimit_for(&wp_log, c->node),
                    "%s is waypoint %s/%s%s: %zu Route and Policy resources", peer_name(c),
                    c->wp_ns, c->wp_name,
                    exists ? "" : " (no such Gateway of class istio-waypoint)",
                    xds_snapshot_len(own));
    c->wp_built = true;
    c->wp_allowed = allowed;
    c->wp_gen = gen;
    xds_server_stream_push_own(c->xs, own, out);
    xds_snapshot_unref(own);
}

/* A proxy that is no waypoint asking for waypoint types is told once, in the log. */
static void
check_not_waypoint(struct xds_conn *c)
{
    struct xds_server_type_status st;

    if (c->wp_name != NULL || c->told_not_waypoint)
        return;
    for (size_t i = 0; i < ARRAY_LEN(own_types); i++)
        if (xds_server_stream_type_status_by_url(c->xs, own_types[i], &st) == 0) {
            log_info_rl(log_ratelimit_for(&wp_log, c->node),
                        "%s asked for %s but claims no waypoint (node metadata %s): it gets none",
                        peer_name(c), own_types[i], XDS_META_WAYPOINT);
            c->told_not_waypoint = true;
            return;
        }
}

/* Sends what the stream produced. Returns false when the call cannot take it (then ended). */
static bool
send_out(struct xds_conn *c, struct xds_out *out)
{
    struct meshd *d = c->srv->d;
    for (size_t i = 0; i < out->n; i++) {
        const struct xds_msg *m = &out->v[i];
        if (rpc_call_send(c->call, m->data, m->len) < 0) {
            log_warn("%s is not reading its pushes; closing its stream", peer_name(c));
            rpc_call_finish(c->call, GRPC_STATUS_UNAVAILABLE, "push backlog");
            c->ended = true;
            return false;
        }
        d->stats.xds_pushes++;
        d->stats.xds_push_bytes += m->len;
        d->stats.xds_resources_sent += m->n_resources;
        log_debug("push to %s: %zu resources, %zu removed, %zu bytes", peer_name(c),
                  m->n_resources, m->n_removed, m->len);
    }
    return true;
}

static void
push(struct xds_conn *c)
{
    struct xds_out out;
    /* Back-pressure: a proxy that is not reading gets nothing more queued, only coalesced. */
    if (rpc_call_queued(c->call) > 0) {
        c->push_pending = true;
        return;
    }
    c->push_pending = false;
    xds_out_init(&out);
    if (config_snapshot(c->srv->d->config) != NULL)
        xds_server_stream_push(c->xs, config_snapshot(c->srv->d->config), &out);
    waypoint_sync(c, &out);
    send_out(c, &out);
    xds_out_cleanup(&out);
}

static void
on_drained(void *arg, struct rpc_call *call)
{
    struct xds_conn *c = arg;
    (void)call;
    if (c->push_pending && !c->ended)
        push(c);
}

static int
on_message(void *arg, struct rpc_call *call, const uint8_t *msg, size_t len)
{
    struct xds_conn *c = arg;
    struct xds_out out;
    (void)call;
    if (c->ended)
        return 0;
    xds_out_init(&out);
    int rc = xds_server_stream_on_request(c->xs, msg, len, &out);
    if (rc < 0) {
        /* Any node can send these at will: rate-limited, and the reason goes back to it. */
        static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 10);
        const char *why = xds_server_stream_error(c->xs);
        char msg_out[PB_ERR_MAX + 40];
        snprintf(msg_out, sizeof(msg_out), "invalid DeltaDiscoveryRequest%s%s", *why ? ": " : "",
                 why);
        log_warn_rl(&rl, "bad xDS request from %s: %s", peer_name(c),
                    *why ? why : mesh_strerror(rc));
        rpc_call_finish(c->call, GRPC_STATUS_INVALID_ARGUMENT, msg_out);
        c->ended = true;
    } else {
        /* After the request that carried the node: a claim's own snapshot, answers included. */
        waypoint_sync(c, &out);
        check_not_waypoint(c);
        send_out(c, &out);
    }
    xds_out_cleanup(&out);
    return 0;
}

static void
conn_free(struct xds_conn *c)
{
    struct meshd_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->streams = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_streams--;
    xds_server_stream_free(c->xs);
    free(c->wp_ns);
    free(c->wp_name);
    free(c->wp_sa);
    free(c);
}

static void
on_end(void *arg, struct rpc_call *call, int status, const char *message)
{
    struct xds_conn *c = arg;
    log_info("xDS stream from %s ended: status %d%s%s", peer_name(c), status,
             message ? " " : "", message ? message : "");
    if (status == GRPC_STATUS_OK && !c->ended)
        rpc_call_finish(call, GRPC_STATUS_OK, NULL); /* the proxy half-closed: so do we */
    rpc_call_free(call);
    conn_free(c);
}

static const struct rpc_call_cbs cbs = {
    .on_message = on_message,
    .on_end = on_end,
    .on_drained = on_drained,
};

void
xds_stream_start(struct meshd_server *srv, struct h2_stream *st, const struct caller *cl)
{
    struct xds_conn *c = xcalloc(1, sizeof(*c));
    struct xds_server_config cfg = {.type_urls = served_types,
                                    .n_type_urls = ARRAY_LEN(served_types),
                                    .own_type_urls = own_types,
                                    .n_own_type_urls = ARRAY_LEN(own_types),
                                    .on_event = on_event,
                                    .arg = c,
                                    .max_names = XDS_MAX_NAMES};
    struct xds_out out;

    c->srv = srv;
    c->sess = h2_stream_session(st);
    snprintf(c->node, sizeof(c->node), "%s", cl->node);
    c->gen = cl->gen;
    c->kube = cl->kube;
    if (cl->kube) {
        snprintf(c->kube_ns, sizeof(c->kube_ns), "%s", cl->k.id.ns);
        snprintf(c->kube_sa, sizeof(c->kube_sa), "%s", cl->k.id.sa);
    }
    c->xs = xds_server_stream_new(&cfg);
    c->call = rpc_call_accept(st, XDS_MAX_REQUEST, &cbs, c);
    if (c->call == NULL) {
        xds_server_stream_free(c->xs);
        free(c);
        return;
    }
    /* The current snapshot answers the first requests; nothing is subscribed yet. */
    xds_out_init(&out);
    if (config_snapshot(srv->d->config) != NULL) /* else the first snapshot is pushed */
        xds_server_stream_push(c->xs, config_snapshot(srv->d->config), &out);
    xds_out_cleanup(&out);
    c->next = srv->streams;
    if (srv->streams)
        srv->streams->prev = c;
    srv->streams = c;
    srv->n_streams++;
    srv->d->stats.xds_streams_total++;
}

void
server_snapshot_changed(struct meshd_server *srv)
{
    struct xds_snapshot *snap = config_snapshot(srv->d->config);
    (void)snap;
    for (struct xds_conn *c = srv->streams; c != NULL; c = c->next)
        if (!c->ended)
            push(c);
}

unsigned
xds_streams_count(const struct meshd_server *srv, const struct h2_session *sess, const char *node)
{
    unsigned n = 0;
    for (const struct xds_conn *c = srv->streams; c != NULL; c = c->next)
        if (!c->ended && (sess == NULL || c->sess == sess) &&
            (node == NULL || strcmp(c->node, node) == 0))
            n++;
    return n;
}

unsigned
server_n_xds_streams(const struct meshd_server *srv)
{
    return srv ? srv->n_streams : 0;
}

static bool
stuck(const struct xds_conn *c, uint64_t now)
{
    struct xds_server_type_status st;
    size_t n = xds_server_stream_n_types(c->xs);
    for (size_t i = 0; i < n; i++) {
        xds_server_stream_type_status(c->xs, i, &st);
        if (st.n_in_flight > 0 && st.in_flight_ms != 0 && now - st.in_flight_ms > XDS_ACK_TIMEOUT_MS)
            return true;
    }
    return false;
}

static void
on_stuck_check(void *arg)
{
    struct meshd_server *srv = arg;
    uint64_t now = clock_mono_ms();
    for (struct xds_conn *c = srv->streams, *next; c != NULL; c = next) {
        next = c->next;
        if (!stuck(c, now))
            continue;
        /*
         * Reset, not finish: trailers would queue behind the output it is not
         * reading and free nothing. It reconnects and resyncs.
         */
        log_warn("%s has not acknowledged a push for %d s; resetting its stream", peer_name(c),
                 XDS_ACK_TIMEOUT_MS / 1000);
        rpc_call_free(c->call);
        conn_free(c);
    }
    loop_timer_start(srv->d->loop, &srv->stuck_timer, XDS_STUCK_CHECK_MS, on_stuck_check, srv);
}

void
xds_streams_revoke(struct meshd_server *srv)
{
    for (struct xds_conn *c = srv->streams, *next; c != NULL; c = next) {
        next = c->next;
        if (c->kube || c->gen == token_gens_get(srv->d->gens, c->node))
            continue;
        log_warn("closing the xDS stream of %s: node %s's tokens were revoked", peer_name(c),
                 c->node);
        srv->d->stats.xds_streams_revoked++;
        /*
         * The status goes out, then the call goes; a proxy with pushes still
         * queued (not reading) is reset instead, so nothing more waits for it.
         */
        if (!c->ended && rpc_call_queued(c->call) == 0)
            rpc_call_finish(c->call, GRPC_STATUS_UNAUTHENTICATED, "node credential revoked");
        rpc_call_free(c->call);
        conn_free(c);
    }
}

void
xds_streams_watch(struct meshd_server *srv)
{
    loop_timer_start(srv->d->loop, &srv->stuck_timer, XDS_STUCK_CHECK_MS, on_stuck_check, srv);
}

void
xds_streams_close(struct meshd_server *srv)
{
    loop_timer_stop(srv->d->loop, &srv->stuck_timer);
    while (srv->streams != NULL) {
        struct xds_conn *c = srv->streams;
        rpc_call_free(c->call);
        conn_free(c);
    }
}
