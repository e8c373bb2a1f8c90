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
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "telemetry.h"

/* A field for the text format: |s|, or "-" when NULL or empty; escaped and cut. */
static void
put_text(FILE *f, const char *s)
{
    size_t n = 0;

    if (s == NULL || s[0] == '\0') {
        fputc('-', f);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++, n++) {
        if (n == WP_ACCESS_FIELD_MAX) {
            fputs("...", f);
            return;
        }
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

/* A JSON string value, or null when |s| is NULL or empty. */
static void
put_json(FILE *f, const char *s)
{
    size_t n = 0;

    if (s == NULL || s[0] == '\0') {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++, n++) {
        if (n == WP_ACCESS_FIELD_MAX) {
            fputs("...", f);
            break;
        }
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f) /* always valid JSON, whatever the peer sent */
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Everything a line needs, as strings ("" or NULL: absent) and numbers. */
struct line {
    char start[40], details[L7POL_KEY_MAX + 64], flags[64], up_host[ADDR_STRLEN];
    char cluster[600], dlocal[ADDR_STRLEN], dremote[ADDR_STRLEN];
    const char *route;
};

static void
fill(struct line *l, const struct wp_peer_ctx *p, const struct wp_request_info *ri,
     uint64_t wall_end_ms)
{
    uint64_t start = wall_end_ms >= ri->duration_ms ? wall_end_ms - ri->duration_ms : 0;
    time_t secs = (time_t)(start / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    size_t n = strftime(l->start, sizeof(l->start), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(l->start + n, sizeof(l->start) - n, ".%03uZ", (unsigned)(start % 1000));
    if (ri->flags & WP_FLAG_RBAC) /* Envoy names the policy that decided, or none */
        snprintf(l->details, sizeof(l->details), "%s[%s]", ri->details,
                 ri->policy != NULL && ri->policy[0] != '\0' ? ri->policy : "none");
    else
        snprintf(l->details, sizeof(l->details), "%s", ri->details ? ri->details : "");
    for (char *c = l->details; *c != '\0'; c++) /* Envoy's RESPONSE_CODE_DETAILS: no spaces */
        if (*c == ' ')
            *c = '_';
    char fl[64];
    snprintf(l->flags, sizeof(l->flags), "%s", wp_flags_str(ri->flags, fl));
    l->up_host[0] = '\0';
    const struct ipaddr *up =
        ri->upstream != NULL ? workload_addr(ri->upstream, p->dst_ip.family) : NULL;
    if (up != NULL)
        ipport_str(up, ri->upstream_port, l->up_host);
    l->cluster[0] = '\0';
    if (ri->backend != NULL)
        snprintf(l->cluster, sizeof(l->cluster), "inbound-vip|%u|http|%s", ri->backend_port,
                 ri->backend->hostname);
    ipport_str(&p->dst_ip, p->dst_port, l->dlocal);
    ipport_str(&p->client_ip, p->client_port, l->dremote);
    l->route = ri->route;
}

static void
text_line(FILE *f, const struct line *l, const struct wp_request_info *ri)
{
    fprintf(f, "[%s] \"", l->start);
    put_text(f, ri->method);
    fputc(' ', f);
    put_text(f, ri->path);
    fputc(' ', f);
    put_text(f, ri->protocol);
    fprintf(f, "\" %d %s ", ri->status, l->flags);
    put_text(f, l->details);
    fprintf(f, " - \"-\" %" PRIu64 " %" PRIu64 " %" PRIu64 " - \"-\" \"", ri->bytes_in,
            ri->bytes_out, ri->duration_ms);
    put_text(f, ri->user_agent);
    fputs("\" \"", f);
    put_text(f, ri->request_id);
    fputs("\" \"", f);
    put_text(f, ri->authority);
    fputs("\" \"", f);
    put_text(f, l->up_host);
    fputs("\" ", f);
    put_text(f, l->cluster);
    fprintf(f, " - %s %s - ", l->dlocal, l->dremote);
    put_text(f, l->route);
    fputc('\n', f);
}

static void
json_key(FILE *f, const char *key, bool first)
{
    fprintf(f, "%s\"%s\":", first ? "{" : ",", key);
}

static void
json_line(FILE *f, const struct line *l, const struct wp_request_info *ri)
{
    json_key(f, "authority", true);
    put_json(f, ri->authority);
    json_key(f, "bytes_received", false);
    fprintf(f, "%" PRIu64, ri->bytes_in);
    json_key(f, "bytes_sent", false);
    fprintf(f, "%" PRIu64, ri->bytes_out);
    json_key(f, "connection_termination_details", false);
    fputs("null", f);
    json_key(f, "downstream_local_address", false);
    put_json(f, l->dlocal);
    json_key(f, "downstream_remote_address", false);
    put_json(f, l->dremote);
    json_key(f, "duration", false);
    fprintf(f, "%" PRIu64, ri->duration_ms);
    json_key(f, "method", false);
    put_json(f, ri->method);
    json_key(f, "path", false);
    put_json(f, ri->path);
    json_key(f, "protocol", false);
    put_json(f, ri->protocol);
    json_key(f, "request_id", false);
    put_json(f, ri->request_id);
    json_key(f, "requested_server_name", false);
    fputs("null", f);
    json_key(f, "response_code", false);
    fprintf(f, "%d", ri->status);
    json_key(f, "response_code_details", false);
    put_json(f, l->details);
    json_key(f, "response_flags", false);
    put_json(f, l->flags);
    json_key(f, "route_name", false);
    put_json(f, l->route);
    json_key(f, "start_time", false);
    put_json(f, l->start);
    json_key(f, "upstream_cluster", false);
    put_json(f, l->cluster);
    json_key(f, "upstream_host", false);
    put_json(f, l->up_host);
    json_key(f, "upstream_local_address", false);
    fputs("null", f);
    json_key(f, "upstream_service_time", false);
    fputs("null", f);
    json_key(f, "upstream_transport_failure_reason", false);
    fputs("null", f);
    json_key(f, "user_agent", false);
    put_json(f, ri->user_agent);
    json_key(f, "x_forwarded_for", false);
    fputs("null}\n", f);
}

char *
wp_access_line(const struct wp_peer_ctx *p, const struct wp_request_info *ri,
               uint64_t wall_end_ms, bool json)
{
    struct line l;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    CHECK(f != NULL);
    fill(&l, p, ri, wall_end_ms);
    if (json)
        json_line(f, &l, ri);
    else
        text_line(f, &l, ri);
    CHECK(fclose(f) == 0);
    return out;
}
