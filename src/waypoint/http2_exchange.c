/*
 * http2_exchange.c - one request stream of the waypoint's HTTP/2 engine: its head checked and
 * decided (l7_decide.c, as for HTTP/1.1), the response head passed back with the route's
 * header modifiers, local answers (gRPC ones trailers-only with a grpc-status, as Envoy gives
 * them) and the report at the end.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "http2_internal.h"

/* Connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2); te is kept only as "trailers". */
bool
wp_h2_conn_specific(const char *n, size_t nl, const char *v, size_t vl)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade", "host"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (nl == strlen(names[i]) && strncasecmp(n, names[i], nl) == 0)
            return true;
    if (nl == 2 && strncasecmp(n, "te", 2) == 0)
        return !(vl == 8 && strncasecmp(v, "trailers", 8) == 0);
    return false;
}

static void
lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Policy header lookups over the request as received. */
static bool
pol_header(void *arg, const char *name, size_t i, const char **v, size_t *n)
{
    const struct wp_h2_x *x = arg;
    size_t k = 0;

    if (name[0] == ':') {
        const char *val = strcmp(name, ":authority") == 0 ? x->authority
                          : strcmp(name, ":method") == 0  ? x->method
                          : strcmp(name, ":path") == 0    ? x->path
                                                          : NULL;
        if (val == NULL || i > 0)
            return false;
        *v = val;
        *n = strlen(val);
        return true;
    }
    for (size_t j = 0; j < x->n_rf; j++) {
        if (strcasecmp(x->rf[j].name, name) == 0 && k++ == i) {
            *v = x->rf[j].value;
            *n = strlen(x->rf[j].value);
            return true;
        }
    }
    return false;
}

static const char *
rf_find(const struct wp_h2_x *x, const char *name)
{
    for (size_t j = 0; j < x->n_rf; j++)
        if (strcmp(x->rf[j].name, name) == 0)
            return x->rf[j].value;
    return NULL;
}

/* Envoy's Grpc::Utility::httpToGrpcStatus (after gRPC's http-grpc-status-mapping.md). */
static int
grpc_status_of(int http)
{
    switch (http) {
    case 400: return 13; /* INTERNAL */
    case 401: return 16; /* UNAUTHENTICATED */
    case 403: return 7;  /* PERMISSION_DENIED */
    case 404: return 12; /* UNIMPLEMENTED */
    case 429:
    case 502:
    case 503:
    case 504: return 14; /* UNAVAILABLE */
    default: return 2;   /* UNKNOWN */
    }
}

/*
 * The report's grpc_response_status: the code as sent, 0..16 (gRPC's codes); anything else a
 * peer sends counts as 2 UNKNOWN, so an endpoint cannot grow the metric's label set.
 */
void
wp_h2_note_grpc_status(struct wp_h2_x *x, const char *v)
{
    char *end;
    long n;

    if (!x->grpc || v == NULL)
        return;
    n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < 0 || n > 16)
        n = 2;
    snprintf(x->grpc_status, sizeof(x->grpc_status), "%ld", n);
}

/* grpc-message is percent-encoded (gRPC's PROTOCOL-HTTP2.md): all but printable ASCII and '%'. */
static void
grpc_message(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s != '\0' && o + 4 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch <= 0x7e && ch != '%') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

void
wp_h2_local(struct wp_h2_x *x, int status, unsigned flags, const char *details, const char *body,
            const char *location)
{
    struct h2_header h[6];
    size_t n = 0, blen = body != NULL ? strlen(body) : 0;
    char len[24], gs[8], gm[512];

    x->flags |= flags;
    if (x->resp_head || x->finished) {
        /* Too late for an answer: the stream is reset. */
        wp_h2_finish(x, flags);
        return;
    }
    wp_h2_drop_up(x, false);
    loop_timer_stop(x->c->loop, &x->t_backoff);
    x->local = true;
    x->status = status;
    x->details = details;
    x->resp_head = x->resp_done = true;
    if (x->grpc) {
        /* On the wire a 200 with the status in grpc-status: Envoy's %RESPONSE_CODE% and
         * Istio's response_code say 200 too, grpc_response_status the code. */
        x->status = 200;
        snprintf(gs, sizeof(gs), "%d", grpc_status_of(status));
        wp_h2_note_grpc_status(x, gs);
        grpc_message(body != NULL ? body : details, gm, sizeof(gm));
        h[n++] = (struct h2_header){"content-type", "application/grpc"};
        h[n++] = (struct h2_header){"grpc-status", gs};
        h[n++] = (struct h2_header){"grpc-message", gm};
        h[n++] = (struct h2_header){"x-request-id", x->request_id};
        (void)h2_stream_respond(x->down, 200, h, n, true);
    } else {
        snprintf(len, sizeof(len), "%zu", blen);
        if (location != NULL)
            h[n++] = (struct h2_header){"location", location};
        if (blen > 0)
            h[n++] = (struct h2_header){"content-type", "text/plain"};
        h[n++] = (struct h2_header){"content-length", len};
        h[n++] = (struct h2_header){"x-request-id", x->request_id};
        bool head = strcmp(x->method, "HEAD") == 0;
        if (h2_stream_respond(x->down, status, h, n, blen == 0 || head) == 0 && blen > 0 &&
            !head) {
            /* A short text: the stream's send buffer takes it whole. */
            struct stream *d = h2_stream_as_stream(x->down);
            if (stream_write(d, body, blen) == (ssize_t)blen)
                x->bytes_out += blen;
            (void)stream_shutdown_write(d);
        }
    }
    wp_h2_finish(x, 0);
}


int
wp_h2_resp_head_list(struct wp_h2_x *x, int status, struct route_hdr_list *l, bool end,
                     const char *grpc_status)
{
    const struct route_retry *r = &x->act.retry;
    bool retriable = x->have_act && wp_l7_retriable_status(r, status);

    /* A trailers-only gRPC answer carries its status in the head (Envoy's retry_on
     * "unavailable", "cancelled"). */
    if (x->have_act && x->grpc && grpc_status != NULL &&
        ((strcmp(grpc_status, "14") == 0 && (r->on & ROUTE_RETRY_UNAVAILABLE)) ||
         (strcmp(grpc_status, "1") == 0 && (r->on & ROUTE_RETRY_CANCELLED))))
        retriable = true;
    if (retriable && x->attempts < x->v.max_tries && x->replay_ok)
        return 1;
    if (retriable && x->attempts > 1)
        x->flags |= WP_FLAG_URX;
    x->status = status;
    x->details = "via_upstream";
    wp_h2_note_grpc_status(x, grpc_status); /* trailers, if any, say it again later */
    if (x->have_act)
        route_hdrs_apply(x->act.response_headers, l);
    if (l->n > H2_RESPOND_MAX_HEADERS)
        return -E2BIG;
    /* Copies: the modifiers' strings are not NUL-terminated and names must be lower case. */
    struct h2_header *out = xcalloc(l->n + 1, sizeof(*out));
    for (size_t i = 0; i < l->n; i++) {
        char *nm = xstrndup(l->v[i].name, l->v[i].name_len);
        lower(nm);
        out[i].name = nm;
        out[i].value = xstrndup(l->v[i].value, l->v[i].value_len);
    }
    int rc = h2_stream_respond(x->down, status, out, l->n, end);
    for (size_t i = 0; i < l->n; i++) {
        free((char *)out[i].name);
        free((char *)out[i].value);
    }
    free(out);
    if (rc < 0)
        return rc;
    x->resp_head = true;
    if (end)
        x->resp_done = true;
    return 0;
}

int
wp_h2_resp_head(struct wp_h2_x *x, int status)
{
    struct h2_header got[H2_MAX_HEADERS];
    size_t n_got = h2_stream_headers(x->up, got, ARRAY_LEN(got));
    struct route_hdr_list l = {0};

    if (n_got > ARRAY_LEN(got))
        n_got = ARRAY_LEN(got);
    for (size_t i = 0; i < n_got; i++) {
        size_t nl = strlen(got[i].name), vl = strlen(got[i].value);
        if (!wp_h2_conn_specific(got[i].name, nl, got[i].value, vl))
            wp_l7_hdr_push(&l, got[i].name, nl, got[i].value, vl);
    }
    /* An upstream already at its end with nothing to read: a headers-only (or gRPC
     * trailers-only) response, passed on as one HEADERS frame with END_STREAM. */
    const void *p;
    bool end = wp_h2_peek(h2_stream_as_stream(x->up), &p) == 0 &&
               h2_stream_trailers(x->up, NULL, 0) == 0;
    int rc = wp_h2_resp_head_list(x, status, &l, end, h2_stream_header(x->up, "grpc-status"));
    route_hdr_list_free(&l);
    return rc;
}

static void
on_down_event(void *arg, struct stream *s, unsigned events)
{
    (void)s;
    (void)events;
    wp_h2_pump(arg);
}

void
wp_h2_start(struct wp_h2_conn *c, struct h2_stream *st)
{
    const struct wp_l7_conn *cfg = c->cfg;
    struct wp_h2_x *x = xcalloc(1, sizeof(*x));

    x->c = c;
    x->down = st;
    x->next = c->xs;
    if (c->xs != NULL)
        c->xs->prev = x;
    c->xs = x;
    x->start_ms = loop_now_ms(c->loop);
    buf_init(&x->replay, WP_H2_RETRY_BODY);
    x->replay_ok = true;
    x->method = h2_stream_method(st);
    x->path = h2_stream_path(st);
    size_t n = h2_stream_headers(st, NULL, 0);
    x->rf = xcalloc(n + 1, sizeof(*x->rf));
    x->n_rf = h2_stream_headers(st, x->rf, n);
    x->authority = h2_stream_authority(st);
    if (x->authority == NULL)
        x->authority = rf_find(x, "host");
    x->user_agent = rf_find(x, "user-agent");
    const char *rid = rf_find(x, "x-request-id");
    if (rid != NULL) {
        x->request_id = xstrdup(rid);
    } else {
        x->request_id = xmalloc(37);
        wp_h1_uuid(x->request_id);
    }
    const char *ct = rf_find(x, "content-type");
    x->grpc = ct != NULL && strncasecmp(ct, "application/grpc", 16) == 0;
    if (cfg->get_config != NULL)
        cfg->get_config(cfg->config_arg, &x->m, &x->routes, &x->pols);
    stream_set_handler(h2_stream_as_stream(st), on_down_event, x);

    if (x->method == NULL || x->path == NULL || strcmp(x->method, "CONNECT") == 0) {
        if (x->method == NULL)
            x->method = "";
        if (x->path == NULL)
            x->path = "";
        wp_h2_local(x, 405, 0, "method_not_allowed", NULL, NULL);
        return;
    }
    if (x->authority == NULL)
        x->authority = cfg->service != NULL ? cfg->service->hostname : "";
    /* lib/h2 keeps at most H2_VALUE_MAX - 1 bytes of a pseudo-header: a longer one would be
     * cut, and a cut path must not be authorized and routed as if it were whole. */
    if (strlen(x->path) >= 4095 || strlen(x->authority) >= 4095) {
        wp_h2_local(x, 431, 0, "request_headers_too_large", "Request Header Fields Too Large",
                    NULL);
        return;
    }
    wp_l7_hdr_push(&x->hdrs, "host", 4, x->authority, strlen(x->authority));
    for (size_t i = 0; i < x->n_rf; i++) {
        size_t nl = strlen(x->rf[i].name), vl = strlen(x->rf[i].value);
        if (!wp_h2_conn_specific(x->rf[i].name, nl, x->rf[i].value, vl))
            wp_l7_hdr_push(&x->hdrs, x->rf[i].name, nl, x->rf[i].value, vl);
    }
    struct wp_l7_req in = {
        .cfg = cfg,
        .m = x->m,
        .routes = x->routes,
        .pols = x->pols,
        .deftab = &c->deftab,
        .method = x->method,
        .authority = x->authority,
        .request_id = x->request_id,
        .target = x->path,
        .target_len = strlen(x->path),
        .header = pol_header,
        .header_arg = x,
        .hdrs = &x->hdrs,
    };
    wp_l7_decide(&in, &x->act, &x->have_act, x->policy, &x->v);
    if (x->v.status != 0) {
        wp_h2_local(x, x->v.status, x->v.flags, x->v.details, x->v.body, x->v.location);
        return;
    }
    if (x->v.timeout_ms != 0) /* the whole request; each try has its own (http2_up.c) */
        loop_timer_start(c->loop, &x->t_req, x->v.timeout_ms, wp_h2_on_timeout, x);
    wp_h2_try(x);
    if (!x->finished)
        wp_h2_pump(x);
}

static void
free_x(void *arg)
{
    struct wp_h2_x *x = arg;
    free(x);
}

void
wp_h2_finish(struct wp_h2_x *x, unsigned flags)
{
    struct wp_h2_conn *c = x->c;
    const struct wp_l7_conn *cfg = c->cfg;

    if (x->finished)
        return;
    x->finished = true;
    x->flags |= flags;
    loop_timer_stop(c->loop, &x->t_req);
    loop_timer_stop(c->loop, &x->t_backoff);
    loop_timer_stop(c->loop, &x->t_try);
    wp_h2_drop_up(x, x->resp_done && x->req_eof);
    /* No grpc-status seen: Envoy infers one from the HTTP status (2 UNKNOWN for a 200). */
    if (x->grpc && x->grpc_status[0] == '\0' && x->resp_head)
        snprintf(x->grpc_status, sizeof(x->grpc_status), "%d", grpc_status_of(x->status));
    struct wp_request_info ri = {
        .method = x->method != NULL ? x->method : "",
        .path = x->path != NULL ? x->path : "",
        .protocol = "HTTP/2",
        .authority = x->authority != NULL ? x->authority : "",
        .request_id = x->request_id,
        .user_agent = x->user_agent != NULL ? x->user_agent : "",
        .status = x->resp_head ? x->status : 0,
        .grpc = x->grpc,
        .grpc_status = x->grpc_status[0] != '\0' ? x->grpc_status : NULL,
        .flags = x->flags,
        .details = x->details != NULL ? x->details : "",
        .route = x->have_act ? x->act.rule : NULL,
        .upstream = x->cur_ep,
        .upstream_port = x->cur_port,
        .policy = x->policy,
        .bytes_in = x->bytes_in,
        .bytes_out = x->bytes_out,
        .start_ms = x->start_ms,
        .duration_ms = loop_now_ms(c->loop) - x->start_ms,
        .attempts = x->attempts,
    };
    if (cfg->on_done != NULL)
        cfg->on_done(cfg->arg, &ri);
    /* A stream not answered in full is reset; an answered one ends (lib/h2 stops a client
     * still sending with RST_STREAM NO_ERROR after our END_STREAM). */
    stream_close(h2_stream_as_stream(x->down), !x->resp_done);
    x->down = NULL;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        c->xs = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    if (x->have_act)
        route_action_clear(&x->act);
    wp_l7_verdict_clear(&x->v);
    route_hdr_list_free(&x->hdrs);
    if (x->m != NULL)
        model_unref(x->m);
    if (x->routes != NULL)
        route_set_unref(x->routes);
    if (x->pols != NULL)
        l7pol_set_unref(x->pols);
    free(x->rf);
    free(x->request_id);
    buf_cleanup(&x->replay);
    /* Callers up the stack may still look at |x|: it goes at the end of the iteration. */
    loop_defer(c->loop, &x->free_defer, free_x, x);
}
