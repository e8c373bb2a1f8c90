/*
 * http1_exchange.c - one HTTP/1.1 exchange of the waypoint: the request head is checked
 * (form, path normalisation), authorized (l7pol_check), routed (route_decide) and written for
 * the upstream; the response head is checked for a retry and written for the client; local
 * answers (400, 403, 404, redirects, 503, 504) and the report at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "conn/pipe.h"
#include "http1/http1_write.h"
#include "http1_internal.h"

static char *
span_dup(const char *base, struct http1_span s)
{
    return xstrndup(base + s.off, s.len);
}

static char *
field_dup(const char *base, const struct http1_head *h, const char *name)
{
    int i = http1_find(h->fields, h->n_fields, base, name, 0);
    return i < 0 ? NULL : span_dup(base, h->fields[i].value);
}

/* Policy header lookups over the received head (names arrive in lower case). */
struct hdr_view {
    const char *base;
    const struct http1_head *h;
    const struct wp_h1_conn *c;
};

static bool
pol_header(void *arg, const char *name, size_t i, const char **v, size_t *n)
{
    const struct hdr_view *hv = arg;
    size_t k = 0;

    if (name[0] == ':') {
        const char *val = strcmp(name, ":authority") == 0 ? hv->c->authority
                          : strcmp(name, ":method") == 0  ? hv->c->method
                          : strcmp(name, ":path") == 0    ? hv->c->path
                                                          : NULL;
        if (val == NULL || i > 0)
            return false;
        *v = val;
        *n = strlen(val);
        return true;
    }
    for (int j = 0;
         (j = http1_find(hv->h->fields, hv->h->n_fields, hv->base, name, (size_t)j)) >= 0; j++) {
        if (k++ == i) {
            *v = hv->base + hv->h->fields[j].value.off;
            *n = hv->h->fields[j].value.len;
            return true;
        }
    }
    return false;
}

static int
put_list(struct buf *b, const struct route_hdr_list *l)
{
    int rc = 0;
    for (size_t i = 0; i < l->n && rc == 0; i++)
        rc = http1_put_field(b, l->v[i].name, l->v[i].name_len, l->v[i].value, l->v[i].value_len);
    return rc;
}

void
wp_h1_local(struct wp_h1_conn *c, int status, unsigned flags, const char *details, const char *body,
            const char *location, bool close)
{
    char len[24];
    size_t blen = body != NULL ? strlen(body) : 0;

    c->local = true;
    c->status = status;
    c->flags |= flags;
    c->details = details;
    c->resp_head = c->resp_done = true;
    /* A client waiting for 100-continue will not send the body we would have to skip. */
    if (close || (!c->req_done && c->expect_continue))
        c->keep_alive = false;
    snprintf(len, sizeof(len), "%zu", blen);
    int rc = http1_put_status_line(&c->dout, 1, status, NULL, 0);
    if (rc == 0 && location != NULL)
        rc = http1_put_field(&c->dout, "location", 8, location, strlen(location));
    if (rc == 0 && blen > 0)
        rc = http1_put_field(&c->dout, "content-type", 12, "text/plain", 10);
    if (rc == 0)
        rc = http1_put_field(&c->dout, "content-length", 14, len, strlen(len));
    if (rc == 0 && c->request_id != NULL)
        rc = http1_put_field(&c->dout, "x-request-id", 12, c->request_id, strlen(c->request_id));
    if (rc == 0 && !c->keep_alive)
        rc = http1_put_field(&c->dout, "connection", 10, "close", 5);
    else if (rc == 0 && c->client10)
        rc = http1_put_field(&c->dout, "connection", 10, "keep-alive", 10);
    if (rc == 0)
        rc = http1_put_crlf(&c->dout);
    if (rc == 0 && blen > 0)
        rc = buf_append(&c->dout, body, blen);
    if (rc < 0) /* a full output buffer cannot happen at a head's start; end the connection */
        c->keep_alive = false;
    c->bytes_out += blen;
}

/* Writes the upstream request head into c->replay; the list has the fields to send. */
static int
stage_request(struct wp_h1_conn *c, const char *target, size_t tlen, struct route_hdr_list *l)
{
    int rc = http1_put_request_line(&c->replay, c->method, strlen(c->method), target, tlen, 1);
    if (rc == 0)
        rc = put_list(&c->replay, l);
    if (rc == 0 && c->chunk_up)
        rc = http1_put_field(&c->replay, "transfer-encoding", 17, "chunked", 7);
    if (rc == 0 && c->upgrade) {
        rc = http1_put_field(&c->replay, "connection", 10, "upgrade", 7);
        if (rc == 0)
            rc = http1_put_field(&c->replay, "upgrade", 7, c->upgrade_proto,
                                 strlen(c->upgrade_proto));
    }
    if (rc == 0)
        rc = http1_put_crlf(&c->replay);
    return rc;
}

static const char *
absolute_path(const char *t, size_t len, size_t *plen)
{
    const char *p = memmem(t, len, "://", 3);
    if (p == NULL) {
        *plen = 0;
        return NULL;
    }
    p += 3;
    const char *e = t + len;
    while (p < e && *p != '/' && *p != '?')
        p++;
    *plen = (size_t)(e - p);
    return p;
}

void
wp_h1_start(struct wp_h1_conn *c, const char *base, const struct http1_head *h)
{
    const struct wp_l7_conn *cfg = c->cfg;
    struct route_hdr_list l = {0};
    struct wp_l7_verdict v = {0};

    c->active = true;
    c->start_ms = loop_now_ms(c->loop);
    c->method = span_dup(base, h->method);
    c->path = span_dup(base, h->target);
    c->authority = h->host >= 0 ? span_dup(base, h->fields[h->host].value) : NULL;
    c->user_agent = field_dup(base, h, "user-agent");
    c->request_id = field_dup(base, h, "x-request-id");
    if (c->request_id == NULL) {
        c->request_id = xmalloc(37);
        wp_h1_uuid(c->request_id);
    }
    c->client10 = h->minor == 0;
    c->keep_alive = h->keep_alive && !c->down_eof;
    c->expect_continue = h->expect_continue;
    c->chunk_up = h->body == HTTP1_BODY_CHUNKED;
    c->replay_ok = true;
    if (cfg->get_config != NULL)
        cfg->get_config(cfg->config_arg, &c->m, &c->routes, &c->pols);

    /* The target: origin-form, or absolute-form reduced to its path. */
    const char *t = base + h->target.off;
    size_t tlen = h->target.len;
    if (h->is_connect) {
        wp_h1_local(c, 405, 0, "method_not_allowed", NULL, NULL, true);
        return;
    }
    if (h->form == HTTP1_FORM_ABSOLUTE) {
        t = absolute_path(t, tlen, &tlen);
        if (t == NULL || tlen == 0)
            t = "/", tlen = 1;
    } else if (h->form != HTTP1_FORM_ORIGIN) {
        wp_h1_local(c, 400, 0, "http1.invalid_url", "Bad Request", NULL, false);
        return;
    }
    if (c->authority == NULL) /* HTTP/1.0 without Host: the original destination */
        c->authority = cfg->service != NULL ? xstrdup(cfg->service->hostname) : xstrdup("");

    /* Fields as received, hop-by-hop ones and Host and Expect aside; Host first. */
    wp_l7_hdr_push(&l, "host", 4, c->authority, strlen(c->authority));
    for (size_t i = 0; i < h->n_fields; i++) {
        const struct http1_field *f = &h->fields[i];
        const char *n = base + f->name.off;
        if ((int)i == h->host || http1_hop_by_hop(h, base, i) ||
            (f->name.len == 6 && strncasecmp(n, "expect", 6) == 0))
            continue;
        wp_l7_hdr_push(&l, n, f->name.len, base + f->value.off, f->value.len);
    }
    if (h->upgrade >= 0 && h->conn_upgrade) {
        c->upgrade_proto = span_dup(base, h->fields[h->upgrade].value);
        c->upgrade = strcasecmp(c->upgrade_proto, "websocket") == 0;
    }

    /* Policy, route, rewrite and header modifiers: the same for every engine. */
    struct hdr_view hv = {.base = base, .h = h, .c = c};
    struct wp_l7_req in = {
        .cfg = cfg,
        .m = c->m,
        .routes = c->routes,
        .pols = c->pols,
        .deftab = &c->deftab,
        .method = c->method,
        .authority = c->authority,
        .request_id = c->request_id,
        .target = t,
        .target_len = tlen,
        .header = pol_header,
        .header_arg = &hv,
        .hdrs = &l,
    };
    wp_l7_decide(&in, &c->act, &c->have_act, c->policy, &v);
    if (v.status != 0) {
        wp_h1_local(c, v.status, v.flags, v.details, v.body, v.location, false);
        goto out;
    }
    c->backend = v.backend;
    c->backend_port = v.backend_port;
    c->max_tries = v.max_tries;
    if (stage_request(c, v.target, v.target_len, &l) < 0) {
        wp_h1_local(c, 431, 0, "request_headers_too_large", "Request Header Fields Too Large", NULL,
                    false);
        goto out;
    }
    if (c->expect_continue && !c->client10)
        (void)buf_append(&c->dout, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    if (c->act.timeout_ms != 0) /* the whole request; each try has its own (http1_up.c) */
        loop_timer_start(c->loop, &c->t_req, c->act.timeout_ms, wp_h1_on_timeout, c);
    wp_h1_try(c);
out:
    route_hdr_list_free(&l);
    wp_l7_verdict_clear(&v);
}

int
wp_h1_resp_head(struct wp_h1_conn *c, const char *base, const struct http1_head *h)
{
    struct route_hdr_list l = {0};
    bool retriable = c->have_act && wp_l7_retriable_status(&c->act.retry, h->status);
    int rc;

    if (retriable && c->attempts < c->max_tries && c->replay_ok)
        return 1;
    if (retriable && c->attempts > 1)
        c->flags |= WP_FLAG_URX;
    c->status = h->status;
    c->details = "via_upstream";
    if (h->status == 101 && !c->upgrade)
        return -EPROTO; /* an upgrade nobody asked for */
    if (h->body == HTTP1_BODY_CHUNKED || h->body == HTTP1_BODY_CLOSE) {
        if (c->client10)
            c->close_down = true; /* HTTP/1.0 has no chunked: the close ends the body */
        else
            c->chunk_down = true;
    }
    if (c->close_down)
        c->keep_alive = false;
    for (size_t i = 0; i < h->n_fields; i++) {
        const struct http1_field *f = &h->fields[i];
        if (!http1_hop_by_hop(h, base, i))
            wp_l7_hdr_push(&l, base + f->name.off, f->name.len, base + f->value.off, f->value.len);
    }
    if (c->have_act)
        route_hdrs_apply(c->act.response_headers, &l);
    rc = http1_put_status_line(&c->dout, 1, h->status, h->reason.len ? base + h->reason.off : NULL,
                               h->reason.len);
    if (rc == 0)
        rc = put_list(&c->dout, &l);
    if (rc == 0 && c->chunk_down)
        rc = http1_put_field(&c->dout, "transfer-encoding", 17, "chunked", 7);
    if (rc == 0 && h->status == 101) {
        int u = h->upgrade;
        rc = http1_put_field(&c->dout, "connection", 10, "upgrade", 7);
        if (rc == 0)
            rc = u >= 0 ? http1_put_field(&c->dout, "upgrade", 7, base + h->fields[u].value.off,
                                          h->fields[u].value.len)
                        : -EPROTO;
    } else if (rc == 0 && !c->keep_alive) {
        rc = http1_put_field(&c->dout, "connection", 10, "close", 5);
    } else if (rc == 0 && c->client10) {
        /* HTTP/1.0 closes unless told otherwise */
        rc = http1_put_field(&c->dout, "connection", 10, "keep-alive", 10);
    }
    if (rc == 0)
        rc = http1_put_crlf(&c->dout);
    route_hdr_list_free(&l);
    if (rc < 0)
        return rc;
    c->resp_head = true;
    c->tunnel = h->status == 101;
    return 0;
}

void
wp_h1_finish(struct wp_h1_conn *c)
{
    const struct wp_l7_conn *cfg = c->cfg;
    struct wp_request_info ri = {
        .method = c->method != NULL ? c->method : "",
        .path = c->path != NULL ? c->path : "",
        .protocol = c->client10 ? "HTTP/1.0" : "HTTP/1.1",
        .authority = c->authority != NULL ? c->authority : "",
        .request_id = c->request_id != NULL ? c->request_id : "",
        .user_agent = c->user_agent != NULL ? c->user_agent : "",
        .status = c->resp_head ? c->status : 0,
        .flags = c->flags,
        .details = c->details != NULL ? c->details : "",
        .route = c->have_act ? c->act.rule : NULL,
        .upstream = c->cur_ep,
        .upstream_port = c->cur_port,
        .backend = c->backend,
        .backend_port = c->backend_port,
        .policy = c->policy,
        .bytes_in = c->bytes_in,
        .bytes_out = c->bytes_out,
        .start_ms = c->start_ms,
        .duration_ms = loop_now_ms(c->loop) - c->start_ms,
        .attempts = c->attempts,
    };

    if (!c->active)
        return;
    loop_timer_stop(c->loop, &c->t_req);
    loop_timer_stop(c->loop, &c->t_backoff);
    if (cfg->on_done != NULL)
        cfg->on_done(cfg->arg, &ri);
    wp_h1_drop_up(c, c->resp_done && c->req_done && !c->up_eof && !c->up_wdead && !c->tunnel &&
                         c->rs.head.keep_alive && buf_len(&c->uout) == 0);
    if (c->have_act)
        route_action_clear(&c->act);
    if (c->m != NULL)
        model_unref(c->m);
    if (c->routes != NULL)
        route_set_unref(c->routes);
    if (c->pols != NULL)
        l7pol_set_unref(c->pols);
    free(c->method);
    free(c->path);
    free(c->authority);
    free(c->request_id);
    free(c->user_agent);
    free(c->upgrade_proto);
    buf_cleanup(&c->replay);
    buf_init(&c->replay, WP_H1_OUT_BUF);
    buf_release_if_empty(&c->uin);
    buf_release_if_empty(&c->uout);
    if (!c->keep_alive)
        c->closing = true;
    /* Everything per exchange goes back to zero. */
    size_t from = offsetof(struct wp_h1_conn, active);
    memset((char *)c + from, 0, sizeof(*c) - from);
}
