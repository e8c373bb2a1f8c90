/*
 * wp_h1_fixture.c - see wp_h1_fixture.h.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "buf/buf.h"
#include "conn/tcp_stream.h"
#include "unit_loop.h"
#include "wp_h1_fixture.h"
#include "../lib/route_build.h"

#define SVC_KEY  "default/" RB_HOST
#define SVC2_KEY "default/echo2.default.svc.cluster.local"

static void
append(char **p, size_t *len, size_t *cap, const void *d, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *p = xrealloc(*p, *cap);
    }
    memcpy(*p + *len, d, n);
    *len += n;
    (*p)[*len] = '\0';
}

static struct workload *
mk_workload(int i)
{
    struct workload *w = xcalloc(1, sizeof(*w));
    char ip[32];

    w->uid = xasprintf("Kubernetes//Pod/default/ep%d", i);
    w->name = xasprintf("ep%d", i);
    w->ns = xstrdup("default");
    w->addrs = xcalloc(1, sizeof(*w->addrs));
    w->n_addrs = 1;
    snprintf(ip, sizeof(ip), "198.18.1.%d", 10 + i);
    CHECK(ipaddr_parse(ip, &w->addrs[0]) == 0);
    w->tunnel = TUNNEL_HBONE;
    w->services = xcalloc(1, sizeof(*w->services));
    w->n_services = 1;
    w->services[0].key = xstrdup(i < 3 ? SVC_KEY : SVC2_KEY);
    w->services[0].ports = xcalloc(1, sizeof(struct port_map));
    w->services[0].ports[0] = (struct port_map){.service_port = 80, .target_port = 8080};
    w->services[0].n_ports = 1;
    return w;
}

static struct service *
mk_service(const char *host, const char *vip)
{
    struct service *s = xcalloc(1, sizeof(*s));
    s->name = xstrndup(host, strcspn(host, "."));
    s->ns = xstrdup("default");
    s->hostname = xstrdup(host);
    s->vips = xcalloc(1, sizeof(*s->vips));
    s->n_vips = 1;
    CHECK(ipaddr_parse(vip, &s->vips[0]) == 0);
    s->ports = xcalloc(1, sizeof(*s->ports));
    s->ports[0] = (struct port_map){.service_port = 80, .target_port = 8080};
    s->n_ports = 1;
    return s;
}

static void
rebuild_model(struct wpt *t, struct service *s2)
{
    struct service *ss[2] = {t->svc, s2};
    struct model *m = model_build(t->ws, WPT_EPS, ss, 2);
    if (t->m != NULL)
        model_unref(t->m);
    t->m = m;
}

static void
get_config(void *arg, struct model **m, struct route_set **r, struct l7pol_set **p)
{
    struct wpt *t = arg;
    model_ref(t->m);
    *m = t->m;
    *r = t->routes != NULL ? route_set_ref(t->routes) : NULL;
    *p = t->pols != NULL ? l7pol_set_ref(t->pols) : NULL;
}

static void
on_done(void *arg, const struct wp_request_info *ri)
{
    struct wpt *t = arg;
    if (t->n_done >= WPT_DONE)
        return;
    struct wpt_done *d = &t->done[t->n_done++];
    d->status = ri->status;
    d->flags = ri->flags;
    d->attempts = ri->attempts;
    d->ep = -1;
    for (int i = 0; i < WPT_EPS; i++)
        if (ri->upstream != NULL && strcmp(ri->upstream->uid, t->ws[i]->uid) == 0)
            d->ep = i;
    snprintf(d->method, sizeof(d->method), "%s", ri->method);
    snprintf(d->path, sizeof(d->path), "%s", ri->path);
    snprintf(d->route, sizeof(d->route), "%s", ri->route ? ri->route : "(null)");
    snprintf(d->policy, sizeof(d->policy), "%s", ri->policy);
    snprintf(d->details, sizeof(d->details), "%s", ri->details);
    snprintf(d->request_id, sizeof(d->request_id), "%s", ri->request_id);
    d->bytes_in = ri->bytes_in;
    d->bytes_out = ri->bytes_out;
    d->grpc = ri->grpc;
    snprintf(d->grpc_status, sizeof(d->grpc_status), "%s", ri->grpc_status ? ri->grpc_status : "");
}

static void
on_closed(void *arg)
{
    ((struct wpt *)arg)->closed++;
}

/* A connect() in flight: its callback runs from a timer, never inside connect(). */
struct fake_connect {
    struct loop_timer timer;
    struct wpt *t;
    wp_upstream_fn *cb;
    void *arg;
    struct stream *s;
    int err;
};

static void
fake_fire(void *arg)
{
    struct fake_connect *fc = arg;
    fc->t->pending--;
    fc->cb(fc->arg, fc->s, fc->err);
    free(fc);
}

static void *
fake_connect(void *ctx, const struct workload *ep, uint16_t port, wp_upstream_fn *cb, void *arg,
             int *err)
{
    struct wpt *t = ctx;
    int i = -1;

    for (int k = 0; k < WPT_EPS; k++)
        if (strcmp(ep->uid, t->ws[k]->uid) == 0)
            i = k;
    CHECK(i >= 0);
    t->connects[i]++;
    if (t->refuse_now[i] != 0) {
        *err = t->refuse_now[i];
        return NULL;
    }
    struct fake_connect *fc = xcalloc(1, sizeof(*fc));
    fc->t = t;
    fc->cb = cb;
    fc->arg = arg;
    if (t->refuse[i] != 0) {
        fc->err = t->refuse[i];
    } else {
        int fds[2];
        CHECK(t->n_be < WPT_BACKENDS);
        unit_socketpair(fds);
        struct wpt_backend *b = &t->be[t->n_be++];
        b->fd = fds[0];
        b->ep = i;
        b->port = port;
        fc->s = tcp_stream_new(t->loop, fds[1]);
    }
    t->pending++;
    loop_timer_start(t->loop, &fc->timer, 0, fake_fire, fc);
    return fc;
}

static void
fake_cancel(void *ctx, void *handle)
{
    struct fake_connect *fc = handle;
    struct wpt *t = ctx;
    loop_timer_stop(t->loop, &fc->timer);
    if (fc->s != NULL)
        stream_close(fc->s, true);
    t->pending--;
    free(fc);
}

void
wpt_setup(struct wpt *t, const char *spec)
{
    wpt_setup_ex(t, spec, -1, L7PATH_BASE);
}

void
wpt_setup_ex(struct wpt *t, const char *spec, int workload, enum l7path_mode mode)
{
    wpt_setup_serve(t, spec, workload, mode, wp_http1_serve);
}

void
wpt_setup_serve(struct wpt *t, const char *spec, int workload, enum l7path_mode mode,
                void (*serve)(const struct wp_l7_conn *c, struct stream *down))
{
    int fds[2];

    memset(t, 0, sizeof(*t));
    t->loop = loop_new();
    for (int i = 0; i < WPT_EPS; i++)
        t->ws[i] = mk_workload(i);
    t->svc = mk_service(RB_HOST, "198.18.0.80");
    struct service *s2 = mk_service("echo2.default.svc.cluster.local", "198.18.0.81");
    rebuild_model(t, s2);
    service_unref(s2);
    route_store_init(&t->rstore);
    if (spec != NULL) {
        size_t len;
        uint8_t *b = rb_build(spec, 80, &len);
        char err[ROUTE_ERR_MAX] = "";
        struct route_update u = {.name = SVC_KEY ":80", .data = b, .len = len};
        if (route_store_apply(&t->rstore, &u, 1, err, sizeof(err)) != 0)
            fail_msg("route \"%s\": %s", spec, err);
        free(b);
        t->routes = route_store_get(&t->rstore);
    }
    unit_socketpair(fds);
    t->cfd = fds[0];
    t->conn = (struct wp_l7_conn){
        .loop = t->loop,
        .dst_port = 80,
        .service = t->svc,
        .waypoint_ns = "default",
        .waypoint_name = "waypoint",
        .get_config = get_config,
        .config_arg = t,
        .path_mode = L7PATH_BASE,
        .up = {.connect = fake_connect, .cancel = fake_cancel, .ctx = t},
        .on_done = on_done,
        .on_closed = on_closed,
        .arg = t,
    };
    ipaddr_parse("198.18.2.1", &t->conn.client_ip);
    t->conn.dst_ip = t->svc->vips[0];
    t->conn.path_mode = mode;
    if (workload >= 0) {
        t->conn.service = NULL;
        t->conn.workload = t->ws[workload];
        t->conn.dst_ip = t->ws[workload]->addrs[0];
        t->conn.dst_port = 8080;
    }
    serve(&t->conn, tcp_stream_new(t->loop, fds[1]));
}

void
wpt_teardown(struct wpt *t)
{
    if (t->cfd >= 0)
        close(t->cfd);
    t->cfd = -1;
    /* The engine notices the close and ends; let its deferred frees run. */
    unit_run_until(t->loop, NULL, NULL, 5);
    for (int i = 0; i < t->n_be; i++) {
        if (t->be[i].fd >= 0)
            close(t->be[i].fd);
        free(t->be[i].rx);
    }
    unit_run_until(t->loop, NULL, NULL, 5);
    assert_int_equal(t->closed, 1);
    assert_int_equal(t->pending, 0);
    loop_free(t->loop);
    free(t->crx);
    model_unref(t->m);
    if (t->routes != NULL)
        route_set_unref(t->routes);
    route_store_destroy(&t->rstore);
    if (t->pols != NULL)
        l7pol_set_unref(t->pols);
    for (int i = 0; i < WPT_EPS; i++)
        workload_unref(t->ws[i]);
    service_unref(t->svc);
    buf_cache_drop();
}

void
wpt_set_policies(struct wpt *t, struct l7pol_set *pols)
{
    if (t->pols != NULL)
        l7pol_set_unref(t->pols);
    t->pols = pols;
}

void
wpt_unhealthy(struct wpt *t, int i)
{
    t->ws[i]->status = WORKLOAD_UNHEALTHY;
}

void
wpt_send_n(struct wpt *t, const void *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t k = send(t->cfd, (const char *)p + off, n - off, MSG_NOSIGNAL);
        if (k > 0)
            off += (size_t)k;
        else if (k < 0 && errno == EAGAIN)
            unit_run_for(t->loop, 1);
        else
            fail_msg("client send: %s", strerror(errno));
    }
}

void
wpt_send(struct wpt *t, const char *s)
{
    wpt_send_n(t, s, strlen(s));
}

static void
drain_fd(int fd, char **p, size_t *len, size_t *cap, bool *eof)
{
    char b[16384];
    for (;;) {
        ssize_t n = recv(fd, b, sizeof(b), 0);
        if (n > 0) {
            append(p, len, cap, b, (size_t)n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            *eof = true;
        return;
    }
}

static void
pump_all(struct wpt *t)
{
    if (t->cfd >= 0 && !t->ceof)
        drain_fd(t->cfd, &t->crx, &t->crx_len, &t->crx_cap, &t->ceof);
    for (int i = 0; i < t->n_be; i++)
        if (t->be[i].fd >= 0 && !t->be[i].eof)
            drain_fd(t->be[i].fd, &t->be[i].rx, &t->be[i].rx_len, &t->be[i].rx_cap, &t->be[i].eof);
}

int
wpt_count(const char *hay, size_t len, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    const char *p = hay, *e = hay + len;
    while (hay != NULL && (p = memmem(p, (size_t)(e - p), needle, nl)) != NULL) {
        n++;
        p += nl;
    }
    return n;
}

struct cond_arg {
    struct wpt *t;
    const char *needle;
    int count, be;
};

static bool
cond_client(void *arg)
{
    struct cond_arg *a = arg;
    pump_all(a->t);
    if (a->needle == NULL)
        return a->t->ceof;
    return wpt_count(a->t->crx, a->t->crx_len, a->needle) >= a->count;
}

bool
wpt_client_has(struct wpt *t, const char *needle, int count)
{
    struct cond_arg a = {.t = t, .needle = needle, .count = count};
    return unit_run_until(t->loop, cond_client, &a, 3000);
}

bool
wpt_client_eof(struct wpt *t)
{
    struct cond_arg a = {.t = t};
    return unit_run_until(t->loop, cond_client, &a, 3000);
}

static bool
cond_be(void *arg)
{
    struct cond_arg *a = arg;
    pump_all(a->t);
    if (a->be >= a->t->n_be)
        return false;
    if (a->needle == NULL)
        return a->t->be[a->be].eof;
    return wpt_count(a->t->be[a->be].rx, a->t->be[a->be].rx_len, a->needle) >= 1;
}

bool
wpt_be_has(struct wpt *t, int i, const char *needle)
{
    struct cond_arg a = {.t = t, .needle = needle, .be = i};
    return unit_run_until(t->loop, cond_be, &a, 3000);
}

bool
wpt_be_eof(struct wpt *t, int i)
{
    struct cond_arg a = {.t = t, .be = i};
    return unit_run_until(t->loop, cond_be, &a, 3000);
}

void
wpt_be_send(struct wpt *t, int i, const char *s)
{
    wpt_be_send_n(t, i, s, strlen(s));
}

void
wpt_be_send_n(struct wpt *t, int i, const void *p, size_t n)
{
    const char *s = p;
    size_t off = 0;
    while (off < n) {
        ssize_t k = send(t->be[i].fd, s + off, n - off, MSG_NOSIGNAL);
        if (k > 0)
            off += (size_t)k;
        else if (k < 0 && errno == EAGAIN)
            unit_run_for(t->loop, 1);
        else
            return; /* the engine closed it: the test checks what it wanted */
    }
}

void
wpt_be_close(struct wpt *t, int i)
{
    close(t->be[i].fd);
    t->be[i].fd = -1;
}

static bool
cond_done(void *arg)
{
    struct cond_arg *a = arg;
    pump_all(a->t);
    return a->t->n_done >= a->count;
}

bool
wpt_dones(struct wpt *t, int n)
{
    struct cond_arg a = {.t = t, .count = n};
    return unit_run_until(t->loop, cond_done, &a, 3000);
}

void
wpt_run(struct wpt *t, uint64_t ms)
{
    unit_run_for(t->loop, ms);
    pump_all(t);
}
