/*
 * conntab.c - the table of live proxied connections and their access log.
 *
 * One line per connection when it closes, in ztunnel's format and field
 * names (target "access", message "connection complete"); identities only
 * for mutual-TLS connections.
 */
#include <inttypes.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>

#define LOG_SCOPE "access"
#include "base/base.h"
#include "log/log.h"
#include "ztunnel.h"

/* Connection ids are unique in the process, whichever worker serves them. */
static atomic_uint_fast64_t next_id;

struct zconn *
zconn_new(struct zt *zt, bool inbound)
{
    struct zconn *c = xcalloc(1, sizeof(*c));

    c->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed) + 1;
    c->inbound = inbound;
    c->start_ms = loop_now_ms(zt->loop);
    c->authz_gen = zt->authz_gen; /* authorization follows in the same turn, or sets it again */
    c->next = zt->conns;
    if (zt->conns)
        zt->conns->prev = c;
    zt->conns = c;
    zt->n_conns++;
    zt_load_update(zt);
    return c;
}

void
zconn_set(char **field, const char *value)
{
    free(*field);
    *field = value ? xstrdup(value) : NULL;
}

static void
access_log(struct zt *zt, const struct zconn *c, const struct pipe_result *res)
{
    char src[ADDR_STRLEN], dst[ADDR_STRLEN], hbone[ADDR_STRLEN];
    char sent[24], recv[24], dur[32];
    const char *err = c->error;

    if (err == NULL && res != NULL && res->err != 0)
        err = mesh_strerror(res->err);
    snprintf(sent, sizeof(sent), "%" PRIu64, res ? res->a_to_b : 0);
    snprintf(recv, sizeof(recv), "%" PRIu64, res ? res->b_to_a : 0);
    snprintf(dur, sizeof(dur), "%" PRIu64 "ms", loop_now_ms(zt->loop) - c->start_ms);
    ipport_str(&c->src_ip, c->src_port, src);
    ipport_str(&c->dst_ip, c->dst_port, dst);
    if (c->hbone_ip.family)
        ipport_str(&c->hbone_ip, c->hbone_port, hbone);
    struct log_field f[] = {
        {"src.addr", src, false},
        {"src.workload", c->src_workload, true},
        {"src.namespace", c->src_ns, true},
        {"src.identity", c->mtls ? c->src_identity : NULL, true},
        {"src.cluster", c->src_cluster, true},
        {"dst.addr", dst, false},
        {"dst.hbone_addr", c->hbone_ip.family ? hbone : NULL, false},
        {"dst.service", c->dst_service, true},
        {"dst.workload", c->dst_workload, true},
        {"dst.namespace", c->dst_ns, true},
        {"dst.identity", c->mtls ? c->dst_identity : NULL, true},
        {"dst.cluster", c->dst_cluster, true},
        {"direction", c->inbound ? "inbound" : "outbound", true},
        {"bytes_sent", sent, false},
        {"bytes_recv", recv, false},
        {"duration", dur, true},
        {"error", err, true},
    };
    log_fields(err ? LOG_ERROR : LOG_INFO, "access", "connection complete", f, ARRAY_LEN(f));
}

void
zconn_finish(struct zt *zt, struct zconn *c, const struct pipe_result *res)
{
    access_log(zt, c, res);
    zt_metrics_conn_end(zt, c, res);
    if (c->prev)
        c->prev->next = c->next;
    else
        zt->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    zt->n_conns--;
    zt_load_update(zt);
    free(c->src_workload);
    free(c->src_ns);
    free(c->src_identity);
    free(c->dst_workload);
    free(c->dst_ns);
    free(c->dst_identity);
    free(c->dst_service);
    free(c->dst_uid);
    free(c->src_cluster);
    free(c->dst_cluster);
    zpod_unref(c->pod);
    free(c);
}

void
zconn_set_pod(struct zconn *c, struct zpod *pod)
{
    zpod_unref(c->pod);
    c->pod = pod ? zpod_ref(pod) : NULL;
}

void
zconn_set_flag(struct zconn *c, const char *flag)
{
    c->flag = flag;
}

void
zconn_abort_pod(struct zt *zt, struct zpod *pod)
{
    for (struct zconn *c = zt->conns; c != NULL; c = c->next)
        if (c->pod == pod && c->pipe != NULL) {
            c->error = "pod deleted";
            pipe_abort(c->pipe, -ECONNABORTED);
        }
}

void
zconn_abort_all(struct zt *zt)
{
    for (struct zconn *c = zt->conns; c != NULL; c = c->next)
        if (c->pipe != NULL) {
            c->error = "drain deadline reached";
            pipe_abort(c->pipe, -ECONNABORTED);
        }
}
