/*
 * access_log.c - the waypoint's access log: one line per request, as Istio's Envoy
 * waypoints write it to stdout (pilot/pkg/model/telemetry_logging.go):
 *
 *   text: [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
 *         %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%
 *         %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
 *         %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
 *         "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%"
 *         "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS%
 *         %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME%
 *         %ROUTE_NAME%
 *   json: the same operators under Istio's keys (EnvoyJSONLogFormatIstio), sorted.
 *
 * What the waypoint does not have is "-" (text) or null (JSON), as Envoy prints it:
 * connection termination details, the transport failure reason, the upstream service time,
 * X-Forwarded-For (the engine neither reads nor adds it), the upstream local address (pooled
 * HBONE streams share a connection) and the SNI (HBONE has none). UPSTREAM_HOST is the
 * endpoint's IP:targetPort and UPSTREAM_CLUSTER Istio's waypoint cluster name,
 * inbound-vip|PORT|http|HOSTNAME of the backend service. The downstream local address is the
 * CONNECT's :authority (the original destination), the remote one the client's address.
 *
 * Envoy writes text fields unescaped; here a peer's bytes cannot break a line or a quoted
 * field: '"', '\' and control bytes are written as \xNN (text) or JSON escapes.
 *
 * Every request writes one line, so it is formatted by hand into a buffer the caller reuses
 * (no stdio stream, no printf, no allocation once the buffer has grown), and the calendar part
 * of START_TIME is formatted once per second.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "telemetry.h"

static void
reserve(struct wp_text *t, size_t n)
{
    if (t->cap - t->len >= n)
        return;
    size_t c = t->cap ? t->cap : 1024;
    while (c - t->len < n)
        c *= 2;
    t->p = xrealloc(t->p, c);
    t->cap = c;
}

static void
put(struct wp_text *t, const void *s, size_t n)
{
    reserve(t, n);
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

static void
put_s(struct wp_text *t, const char *s)
{
    put(t, s, strlen(s));
}

static void
put_c(struct wp_text *t, char c)
{
    reserve(t, 1);
    t->p[t->len++] = c;
}

static void
put_u64(struct wp_text *t, uint64_t v)
{
    char b[20];
    size_t i = sizeof(b);

    do
        b[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put(t, b + i, sizeof(b) - i);
}

static void
put_int(struct wp_text *t, int v)
{
    if (v < 0)
        put_c(t, '-');
    put_u64(t, v < 0 ? (uint64_t)0 - (uint64_t)(int64_t)v : (uint64_t)v);
}

static const char hex[] = "0123456789abcdef";

/* The bytes of |s| from |*p| up to the next one |must_escape| flags or the cut. */
#define RUN(t, p, n, must_escape)                                                                 \
    do {                                                                                          \
        const unsigned char *run_ = (p);                                                          \
        while (*(p) != '\0' && (n) < WP_ACCESS_FIELD_MAX && !(must_escape))                       \
            (p)++, (n)++;                                                                         \
        put((t), run_, (size_t)((p)-run_));                                                       \
    } while (0)

static bool
text_escaped(unsigned char c)
{
    return c < 0x20 || c == 0x7f || c == '"' || c == '\\';
}

/* A field for the text format: |s|, or "-" when NULL or empty; escaped and cut. */
static void
put_text(struct wp_text *t, const char *s)
{
    size_t n = 0;

    if (s == NULL || s[0] == '\0') {
        put_c(t, '-');
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s;;) {
        RUN(t, p, n, text_escaped(*p));
        if (*p == '\0')
            return;
        if (n == WP_ACCESS_FIELD_MAX) {
            put(t, "...", 3);
            return;
        }
        char e[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
        put(t, e, sizeof(e));
        p++, n++;
    }
}

static bool
json_escaped(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20 || c >= 0x7f;
}

/* A JSON string value, or null when |s| is NULL or empty. */
static void
put_json(struct wp_text *t, const char *s)
{
    size_t n = 0;

    if (s == NULL || s[0] == '\0') {
        put(t, "null", 4);
        return;
    }
    put_c(t, '"');
    for (const unsigned char *p = (const unsigned char *)s;;) {
        RUN(t, p, n, json_escaped(*p));
        if (*p == '\0')
            break;
        if (n == WP_ACCESS_FIELD_MAX) {
            put(t, "...", 3);
            break;
        }
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            put(t, e, sizeof(e));
        } else { /* always valid JSON, whatever the peer sent */
            char e[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            put(t, e, sizeof(e));
        }
        p++, n++;
    }
    put_c(t, '"');
}

/* Appends |s| to |dst| (|cap| bytes with the NUL) at |*n|, cut as snprintf would. */
static void
cat(char *dst, size_t cap, size_t *n, const char *s)
{
    size_t k = strlen(s);

    if (k > cap - 1 - *n)
        k = cap - 1 - *n;
    memcpy(dst + *n, s, k);
    *n += k;
    dst[*n] = '\0';
}

/* Everything a line needs, as strings ("" or NULL: absent) and numbers. */
struct line {
    char start[40], details[L7POL_KEY_MAX + 64], flags_buf[64], up_host[ADDR_STRLEN];
    char cluster[600], dlocal[ADDR_STRLEN], dremote[ADDR_STRLEN];
    const char *flags, *route;
};

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" of |ms| (UTC); strftime only when the second changes. */
static void
start_time(char out[40], uint64_t ms)
{
    static time_t last_secs = (time_t)-1;
    static char last[32];
    static size_t last_len;
    time_t secs = (time_t)(ms / 1000);
    unsigned frac = (unsigned)(ms % 1000);

    if (secs != last_secs) {
        struct tm tm;
        gmtime_r(&secs, &tm);
        last_len = strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%S", &tm);
        last_secs = secs;
    }
    memcpy(out, last, last_len);
    char *p = out + last_len;
    *p++ = '.';
    *p++ = (char)('0' + frac / 100);
    *p++ = (char)('0' + frac / 10 % 10);
    *p++ = (char)('0' + frac % 10);
    *p++ = 'Z';
    *p = '\0';
}

static void
fill(struct line *l, const struct wp_peer_ctx *p, const struct wp_request_info *ri,
     uint64_t wall_end_ms)
{
    uint64_t start = wall_end_ms >= ri->duration_ms ? wall_end_ms - ri->duration_ms : 0;
    size_t n = 0;

    start_time(l->start, start);
    l->details[0] = '\0';
    cat(l->details, sizeof(l->details), &n, ri->details ? ri->details : "");
    if (ri->flags & WP_FLAG_RBAC) { /* Envoy names the policy that decided, or none */
        cat(l->details, sizeof(l->details), &n, "[");
        cat(l->details, sizeof(l->details), &n,
            ri->policy != NULL && ri->policy[0] != '\0' ? ri->policy : "none");
        cat(l->details, sizeof(l->details), &n, "]");
    }
    for (char *c = l->details; *c != '\0'; c++) /* Envoy's RESPONSE_CODE_DETAILS: no spaces */
        if (*c == ' ')
            *c = '_';
    l->flags = wp_flags_str(ri->flags, l->flags_buf);
    l->up_host[0] = '\0';
    const struct ipaddr *up =
        ri->upstream != NULL ? workload_addr(ri->upstream, p->dst_ip.family) : NULL;
    if (up != NULL)
        ipport_str(up, ri->upstream_port, l->up_host);
    l->cluster[0] = '\0';
    if (ri->backend != NULL) {
        char port[8];
        char *e = port + sizeof(port);
        unsigned v = ri->backend_port;
        *--e = '\0';
        do
            *--e = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        n = 0;
        cat(l->cluster, sizeof(l->cluster), &n, "inbound-vip|");
        cat(l->cluster, sizeof(l->cluster), &n, e);
        cat(l->cluster, sizeof(l->cluster), &n, "|http|");
        cat(l->cluster, sizeof(l->cluster), &n, ri->backend->hostname);
    }
    ipport_str(&p->dst_ip, p->dst_port, l->dlocal);
    ipport_str(&p->client_ip, p->client_port, l->dremote);
    l->route = ri->route;
}

static void
text_line(struct wp_text *t, const struct line *l, const struct wp_request_info *ri)
{
    put_c(t, '[');
    put_s(t, l->start);
    put(t, "] \"", 3);
    put_text(t, ri->method);
    put_c(t, ' ');
    put_text(t, ri->path);
    put_c(t, ' ');
    put_text(t, ri->protocol);
    put(t, "\" ", 2);
    put_int(t, ri->status);
    put_c(t, ' ');
    put_s(t, l->flags);
    put_c(t, ' ');
    put_text(t, l->details);
    put_s(t, " - \"-\" ");
    put_u64(t, ri->bytes_in);
    put_c(t, ' ');
    put_u64(t, ri->bytes_out);
    put_c(t, ' ');
    put_u64(t, ri->duration_ms);
    put_s(t, " - \"-\" \"");
    put_text(t, ri->user_agent);
    put(t, "\" \"", 3);
    put_text(t, ri->request_id);
    put(t, "\" \"", 3);
    put_text(t, ri->authority);
    put(t, "\" \"", 3);
    put_text(t, l->up_host);
    put(t, "\" ", 2);
    put_text(t, l->cluster);
    put(t, " - ", 3);
    put_s(t, l->dlocal);
    put_c(t, ' ');
    put_s(t, l->dremote);
    put(t, " - ", 3);
    put_text(t, l->route);
    put_c(t, '\n');
}

static void
json_key(struct wp_text *t, const char *key, bool first)
{
    put(t, first ? "{\"" : ",\"", 2);
    put_s(t, key);
    put(t, "\":", 2);
}

static void
json_line(struct wp_text *t, const struct line *l, const struct wp_request_info *ri)
{
    json_key(t, "authority", true);
    put_json(t, ri->authority);
    json_key(t, "bytes_received", false);
    put_u64(t, ri->bytes_in);
    json_key(t, "bytes_sent", false);
    put_u64(t, ri->bytes_out);
    json_key(t, "connection_termination_details", false);
    put_s(t, "null");
    json_key(t, "downstream_local_address", false);
    put_json(t, l->dlocal);
    json_key(t, "downstream_remote_address", false);
    put_json(t, l->dremote);
    json_key(t, "duration", false);
    put_u64(t, ri->duration_ms);
    json_key(t, "method", false);
    put_json(t, ri->method);
    json_key(t, "path", false);
    put_json(t, ri->path);
    json_key(t, "protocol", false);
    put_json(t, ri->protocol);
    json_key(t, "request_id", false);
    put_json(t, ri->request_id);
    json_key(t, "requested_server_name", false);
    put_s(t, "null");
    json_key(t, "response_code", false);
    put_int(t, ri->status);
    json_key(t, "response_code_details", false);
    put_json(t, l->details);
    json_key(t, "response_flags", false);
    put_json(t, l->flags);
    json_key(t, "route_name", false);
    put_json(t, l->route);
    json_key(t, "start_time", false);
    put_json(t, l->start);
    json_key(t, "upstream_cluster", false);
    put_json(t, l->cluster);
    json_key(t, "upstream_host", false);
    put_json(t, l->up_host);
    json_key(t, "upstream_local_address", false);
    put_s(t, "null");
    json_key(t, "upstream_service_time", false);
    put_s(t, "null");
    json_key(t, "upstream_transport_failure_reason", false);
    put_s(t, "null");
    json_key(t, "user_agent", false);
    put_json(t, ri->user_agent);
    json_key(t, "x_forwarded_for", false);
    put_s(t, "null}\n");
}

void
wp_access_append(struct wp_text *t, const struct wp_peer_ctx *p, const struct wp_request_info *ri,
                 uint64_t wall_end_ms, bool json)
{
    struct line l;

    fill(&l, p, ri, wall_end_ms);
    if (json)
        json_line(t, &l, ri);
    else
        text_line(t, &l, ri);
}

char *
wp_access_line(const struct wp_peer_ctx *p, const struct wp_request_info *ri,
               uint64_t wall_end_ms, bool json)
{
    struct wp_text t = {0};

    wp_access_append(&t, p, ri, wall_end_ms, json);
    put_c(&t, '\0');
    return t.p;
}
