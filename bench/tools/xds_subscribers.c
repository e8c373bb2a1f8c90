/*
 * xds_subscribers.c - N simulated ztunnels on one event loop, for bench/cp.sh.
 *
 *   xds_subscribers --xds ADDR:PORT --root-cert FILE --tokens DIR --nodes N
 *                   --expect ADDRESSES --meshd-pid PID --metrics ADDR:PORT
 *                   --marker NAME --marker-template FILE --marker-dest FILE
 *                   [--changes K] [--settle-ms MS] [--gap-ms MS] [--timeout-s S]
 *
 * Each subscriber is what ztunnel's xDS side is (src/ztunnel/xds.c): its own
 * TLS connection (lib/channel, tls_cp_client_ctx), one DeltaAggregatedResources
 * call (lib/rpc) with "authorization: Bearer <token of node-K>" (read from
 * DIR/node-K), and a lib/xds client watching Address and Authorization. The
 * resources are only counted, not put into a model.
 *
 * 1. Sync: all N connect at once; a subscriber is synced when every type was
 *    ACKed and it holds at least ADDRESSES Address resources.
 * 2. K changes: the tool itself substitutes "@VERSION@" in the template,
 *    writes it next to the template and rename()s it to --marker-dest (in
 *    meshd's config dir), then times until every subscriber applied a new
 *    version of the Address resource --marker (one pod's label changed).
 *
 * Clocks: CLOCK_MONOTONIC, read in the callbacks (not the loop's cached time).
 * Bytes are xDS message bytes as received (no gRPC prefix, TLS or HTTP/2
 * framing), the unit of meshd_xds_push_bytes_total. meshd's CPU comes from
 * /proc/PID/schedstat (ns on CPU; meshd has one thread), its RSS from
 * /proc/PID/status, push bytes from its /metrics. Prints "SYNC ...", one
 * "CHANGE ..." per change and a final "RESULT key=value ..." line.
 * Exit status 0 when everything synced and every change reached everyone.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "casvc/token.h"
#include "channel/channel.h"
#include "log/log.h"
#include "loop/loop.h"
#include "net/addr.h"
#include "rpc/rpc.h"
#include "tls/tls_cp.h"
#include "xds/xds.h"
#include "xds/xds_client.h"

#define MAX_MESSAGE ((size_t)200 << 20) /* ztunnel's limit */
#define MAX_CHANGES 64

struct sub {
    struct bench *b;
    unsigned idx; /* node-<idx> */
    char node[32];
    char auth[TOKEN_MAX_LEN + 16];
    struct channel *chan;
    struct channel_waiter wait;
    struct rpc_call *call;
    struct xds_client *client;
    uint64_t bytes, msgs; /* received */
    uint64_t bytes_at_change;
    bool synced, failed;
    uint64_t t_synced_us;
    uint64_t bytes_synced;
    char marker_version[XDS_MAX_VERSION_LEN + 1];
    unsigned marker_changes; /* new versions of the marker seen, the initial one included */
    unsigned marker_want;
    uint64_t t_marker_us;
};

struct change {
    double first_ms, p50_ms, last_ms; /* rename -> first / median / last subscriber applied */
    uint64_t bytes_total;             /* received by all subscribers */
    uint64_t bytes_max;               /* by the subscriber that got the most */
    int64_t push_bytes;               /* meshd_xds_push_bytes_total delta */
    double cpu_ms;                    /* meshd */
    unsigned reached;
};

enum phase { PH_SYNC, PH_SETTLE, PH_CHANGE, PH_AFTER, PH_DONE };

struct bench {
    struct loop *loop;
    SSL_CTX *ctx;
    struct ipaddr ip;
    uint16_t port;
    struct ipaddr mip;
    uint16_t mport;
    const char *tokens, *root, *marker, *tmpl, *dest;
    unsigned n, changes, settle_ms, gap_ms, timeout_s;
    size_t expect;
    long meshd_pid;
    struct sub *subs;
    enum phase phase;
    unsigned n_synced, n_failed, n_applied, cur;
    uint64_t t_start_us, t_change_us;
    struct loop_timer timer, deadline;
    /* meshd readings */
    uint64_t cpu0_ns;
    int64_t push0;
    long rss_idle_kb;
    char *tmpl_text;
    struct change ch[MAX_CHANGES];
    int rc;
};

static uint64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- meshd readings ------------------------------------------------------ */

static uint64_t
meshd_cpu_ns(const struct bench *b)
{
    char path[64];
    unsigned long long ns = 0;
    snprintf(path, sizeof(path), "/proc/%ld/schedstat", b->meshd_pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu", &ns) != 1)
        ns = 0;
    fclose(f);
    return ns;
}

/* VmRSS or VmHWM in kB; -1 if unreadable. */
static long
meshd_status_kb(const struct bench *b, const char *field)
{
    char path[64], line[256];
    long kb = -1;
    size_t flen = strlen(field);
    snprintf(path, sizeof(path), "/proc/%ld/status", b->meshd_pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kb = strtol(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* meshd_xds_push_bytes_total from /metrics (a blocking GET: between measurements only). */
static int64_t
meshd_push_bytes(const struct bench *b)
{
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: meshd\r\n\r\n";
    static const char key[] = "\nmeshd_xds_push_bytes_total ";
    struct sockaddr_storage ss;
    socklen_t sl = ipport_to_sockaddr(&b->mip, b->mport, &ss);
    struct timeval tv = {.tv_sec = 2};
    size_t cap = 1 << 16, len = 0;
    char *buf = NULL;
    int64_t v = -1;

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0 ||
        write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
        goto out;
    buf = xmalloc(cap + 1);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    const char *p = strstr(buf, key);
    if (p != NULL)
        v = strtoll(p + sizeof(key) - 1, NULL, 10);
out:
    free(buf);
    close(fd);
    return v;
}

/* ---- subscribers --------------------------------------------------------- */

static void check_all_synced(struct bench *b);
static void check_all_applied(struct bench *b);

static const char *
on_apply(void *arg, const char *type_url, const char *name, const char *version,
         const uint8_t *bytes, size_t len)
{
    struct sub *s = arg;
    (void)type_url;
    (void)bytes;
    (void)len;
    if (strcmp(name, s->b->marker) != 0)
        return NULL;
    if (version == NULL)
        version = "";
    if (s->marker_changes > 0 && strcmp(version, s->marker_version) == 0)
        return NULL;
    snprintf(s->marker_version, sizeof(s->marker_version), "%s", version);
    s->marker_changes++;
    s->t_marker_us = now_us();
    return NULL;
}

static void
send_out(struct sub *s, struct xds_out *out)
{
    for (size_t i = 0; i < out->n && s->call != NULL; i++)
        if (rpc_call_send(s->call, out->v[i].data, out->v[i].len) < 0)
            fprintf(stderr, "%s: cannot send a request\n", s->node);
}

static void
sub_fail(struct sub *s, const char *why)
{
    if (s->failed)
        return;
    s->failed = true;
    s->b->n_failed++;
    fprintf(stderr, "%s: %s\n", s->node, why);
}

static int
on_message(void *arg, struct rpc_call *call, const uint8_t *msg, size_t len)
{
    struct sub *s = arg;
    struct bench *b = s->b;
    struct xds_out out;
    (void)call;

    s->bytes += len;
    s->msgs++;
    xds_out_init(&out);
    int rc = xds_client_on_response(s->client, msg, len, &out);
    if (rc < 0) {
        xds_out_cleanup(&out);
        sub_fail(s, "undecodable response");
        return rc;
    }
    if (rc == 1)
        fprintf(stderr, "%s: NACK: %s\n", s->node, xds_client_last_error(s->client));
    send_out(s, &out);
    xds_out_cleanup(&out);
    if (!s->synced && xds_client_ready(s->client) &&
        xds_client_count(s->client, XDS_TYPE_ADDRESS) >= b->expect) {
        s->synced = true;
        s->t_synced_us = now_us();
        s->bytes_synced = s->bytes;
        b->n_synced++;
        check_all_synced(b);
    }
    if (b->phase == PH_CHANGE && s->marker_want != 0 && s->marker_changes >= s->marker_want) {
        s->marker_want = 0;
        b->n_applied++;
        check_all_applied(b);
    }
    return 0;
}

static void
on_end(void *arg, struct rpc_call *call, int status, const char *message)
{
    struct sub *s = arg;
    char why[300];
    rpc_call_free(call);
    s->call = NULL;
    snprintf(why, sizeof(why), "stream ended with status %d%s%s", status, message ? ": " : "",
             message ? message : "");
    sub_fail(s, why);
    check_all_synced(s->b);
    check_all_applied(s->b);
}

static const struct rpc_call_cbs call_cbs = {
    .on_message = on_message,
    .on_end = on_end,
};

static void
on_session(void *arg, struct h2_session *sess, int err)
{
    struct sub *s = arg;
    char why[200];
    if (sess == NULL) {
        snprintf(why, sizeof(why), "meshd unreachable: %s", mesh_strerror(err));
        sub_fail(s, why);
        check_all_synced(s->b);
        return;
    }
    struct h2_header md[] = {
        {"authorization", s->auth},
        {"clusterid", "Kubernetes"},
    };
    s->call = rpc_call_start(sess, XDS_DELTA_ADS_PATH, TLS_CP_DEFAULT_NAME, md, 2, MAX_MESSAGE,
                             &call_cbs, s);
    if (s->call == NULL) {
        sub_fail(s, "cannot open the stream");
        check_all_synced(s->b);
        return;
    }
    struct xds_out out;
    xds_out_init(&out);
    xds_client_start(s->client, &out);
    send_out(s, &out);
    xds_out_cleanup(&out);
}

/* The node's xds token: its line of the token file (meshd token writes xds, then ca). */
static void
read_token(const struct bench *b, struct sub *s)
{
    char path[4096], text[TOKEN_FILE_MAX + 1];
    const char *tok;
    size_t len;
    snprintf(path, sizeof(path), "%s/%s", b->tokens, s->node);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fatal("token %s: %s", path, strerror(errno));
    size_t n = fread(text, 1, sizeof(text), f);
    fclose(f);
    if (n > TOKEN_FILE_MAX || token_file_pick(text, n, TOKEN_AUD_XDS, &tok, &len) < 0 ||
        len > TOKEN_MAX_LEN)
        fatal("token %s holds no xds token", path);
    snprintf(s->auth, sizeof(s->auth), "Bearer %.*s", (int)len, tok);
}

static void
sub_init(struct bench *b, struct sub *s, unsigned idx)
{
    char pod[64];
    s->b = b;
    s->idx = idx;
    snprintf(s->node, sizeof(s->node), "node-%u", idx);
    snprintf(pod, sizeof(pod), "ztunnel-%s", s->node);
    read_token(b, s);
    char *node_id = xds_node_id_ztunnel("", pod, "istio-system");
    const struct xds_kv meta[] = {
        {"NAME", pod},
        {"NAMESPACE", "istio-system"},
        {"INSTANCE_IPS", ""},
        {"NODE_NAME", s->node},
        {"CLUSTER_ID", "Kubernetes"},
    };
    struct xds_client_config cfg = {
        .node_id = node_id,
        .meta = meta,
        .n_meta = ARRAY_LEN(meta),
        .on_apply = on_apply,
        .arg = s,
    };
    s->client = xds_client_new(&cfg);
    free(node_id);
    if (s->client == NULL)
        fatal("cannot create an xDS client");
    s->chan = channel_new(b->loop, &b->ip, b->port, b->ctx, "xDS");
}

/* ---- phases -------------------------------------------------------------- */

static int
cmp_u64(const void *a, const void *c)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)c;
    return x < y ? -1 : x > y;
}

static int
cmp_double(const void *a, const void *c)
{
    double x = *(const double *)a, y = *(const double *)c;
    return x < y ? -1 : x > y;
}

static double
median_d(double *v, size_t n)
{
    if (n == 0)
        return -1;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void start_change(void *arg);
static void finish(struct bench *b);

static void
on_deadline(void *arg)
{
    struct bench *b = arg;
    if (b->phase == PH_SYNC) {
        fprintf(stderr, "timeout: %u of %u subscribers synced after %u s\n", b->n_synced, b->n,
                b->timeout_s);
    } else if (b->phase == PH_CHANGE) {
        fprintf(stderr, "timeout: change %u reached %u of %u subscribers\n", b->cur + 1,
                b->n_applied, b->n);
    }
    b->rc = 1;
    finish(b);
}

static void
after_sync(void *arg)
{
    struct bench *b = arg;
    /* Settled: read meshd with every subscriber connected, then the first change. */
    printf("SETTLED rss_kb=%ld hwm_kb=%ld\n", meshd_status_kb(b, "VmRSS"),
           meshd_status_kb(b, "VmHWM"));
    fflush(stdout);
    b->cur = 0;
    start_change(b);
}

static void
check_all_synced(struct bench *b)
{
    if (b->phase != PH_SYNC || b->n_synced + b->n_failed < b->n)
        return;
    loop_timer_stop(b->loop, &b->deadline);
    uint64_t *t = xcalloc(b->n, sizeof(*t));
    uint64_t bytes = 0, bmin = UINT64_MAX, bmax = 0;
    size_t k = 0;
    for (unsigned i = 0; i < b->n; i++) {
        struct sub *s = &b->subs[i];
        if (!s->synced)
            continue;
        t[k++] = s->t_synced_us - b->t_start_us;
        bytes += s->bytes_synced;
        bmin = s->bytes_synced < bmin ? s->bytes_synced : bmin;
        bmax = s->bytes_synced > bmax ? s->bytes_synced : bmax;
    }
    qsort(t, k, sizeof(*t), cmp_u64);
    /* Push bytes are counted by meshd when queued, so they are complete once everyone synced. */
    int64_t push = meshd_push_bytes(b);
    uint64_t cpu = meshd_cpu_ns(b);
    printf("SYNC n=%u synced=%u failed=%u ms_last=%.1f ms_p50=%.1f ms_first=%.1f "
           "bytes_per_sub=%" PRIu64 " bytes_min=%" PRIu64 " bytes_max=%" PRIu64
           " bytes_total=%" PRIu64 " push_bytes=%" PRId64 " cpu_ms=%.1f rss_idle_kb=%ld "
           "rss_kb=%ld hwm_kb=%ld\n",
           b->n, b->n_synced, b->n_failed, k ? (double)t[k - 1] / 1000 : -1.0,
           k ? (double)t[(k - 1) / 2] / 1000 : -1.0, k ? (double)t[0] / 1000 : -1.0,
           k ? bytes / k : 0, k ? bmin : 0, bmax, bytes, push < 0 ? -1 : push - b->push0,
           (double)(cpu - b->cpu0_ns) / 1e6, b->rss_idle_kb, meshd_status_kb(b, "VmRSS"),
           meshd_status_kb(b, "VmHWM"));
    fflush(stdout);
    free(t);
    if (b->n_failed > 0 || b->n_synced == 0) {
        b->rc = 1;
        finish(b);
        return;
    }
    b->phase = PH_SETTLE;
    loop_timer_start(b->loop, &b->timer, b->settle_ms, after_sync, b);
}

static void
write_marker(struct bench *b, unsigned k)
{
    char tmp[4096], ver[32];
    snprintf(tmp, sizeof(tmp), "%s.tmp", b->tmpl);
    snprintf(ver, sizeof(ver), "bench-%u", k);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        fatal("%s: %s", tmp, strerror(errno));
    for (const char *p = b->tmpl_text; *p != '\0';) {
        const char *at = strstr(p, "@VERSION@");
        if (at == NULL) {
            fputs(p, f);
            break;
        }
        fwrite(p, 1, (size_t)(at - p), f);
        fputs(ver, f);
        p = at + strlen("@VERSION@");
    }
    if (fclose(f) != 0)
        fatal("%s: %s", tmp, strerror(errno));
    /* The clock starts at the rename: the moment the new file is in the config dir. */
    b->t_change_us = now_us();
    if (rename(tmp, b->dest) < 0)
        fatal("rename %s -> %s: %s", tmp, b->dest, strerror(errno));
}

static void
start_change(void *arg)
{
    struct bench *b = arg;
    b->phase = PH_CHANGE;
    b->n_applied = 0;
    for (unsigned i = 0; i < b->n; i++) {
        struct sub *s = &b->subs[i];
        s->marker_want = s->failed ? 0 : s->marker_changes + 1;
        s->bytes_at_change = s->bytes;
    }
    b->push0 = meshd_push_bytes(b);
    b->cpu0_ns = meshd_cpu_ns(b);
    loop_timer_start(b->loop, &b->deadline, (uint64_t)b->timeout_s * 1000, on_deadline, b);
    write_marker(b, b->cur + 1);
}

static void
after_change(void *arg)
{
    struct bench *b = arg;
    struct change *c = &b->ch[b->cur];
    int64_t push = meshd_push_bytes(b);
    uint64_t cpu = meshd_cpu_ns(b);
    c->push_bytes = push < 0 || b->push0 < 0 ? -1 : push - b->push0;
    c->cpu_ms = (double)(cpu - b->cpu0_ns) / 1e6;
    c->bytes_total = 0;
    c->bytes_max = 0;
    for (unsigned i = 0; i < b->n; i++) {
        uint64_t d = b->subs[i].bytes - b->subs[i].bytes_at_change;
        c->bytes_total += d;
        c->bytes_max = d > c->bytes_max ? d : c->bytes_max;
    }
    printf("CHANGE i=%u reached=%u ms_first=%.2f ms_p50=%.2f ms_last=%.2f bytes_total=%" PRIu64
           " bytes_max=%" PRIu64 " push_bytes=%" PRId64 " cpu_ms=%.2f\n",
           b->cur + 1, c->reached, c->first_ms, c->p50_ms, c->last_ms, c->bytes_total,
           c->bytes_max, c->push_bytes, c->cpu_ms);
    fflush(stdout);
    b->cur++;
    if (b->cur >= b->changes) {
        finish(b);
        return;
    }
    b->phase = PH_SETTLE;
    loop_timer_start(b->loop, &b->timer, b->gap_ms, start_change, b);
}

static void
check_all_applied(struct bench *b)
{
    if (b->phase != PH_CHANGE || b->n_applied + b->n_failed < b->n)
        return;
    loop_timer_stop(b->loop, &b->deadline);
    struct change *c = &b->ch[b->cur];
    double *t = xcalloc(b->n, sizeof(*t));
    size_t k = 0;
    for (unsigned i = 0; i < b->n; i++) {
        struct sub *s = &b->subs[i];
        if (!s->failed)
            t[k++] = (double)(s->t_marker_us - b->t_change_us) / 1000;
    }
    qsort(t, k, sizeof(*t), cmp_double);
    c->reached = (unsigned)k;
    c->first_ms = k ? t[0] : -1;
    c->last_ms = k ? t[k - 1] : -1;
    c->p50_ms = k ? t[(k - 1) / 2] : -1;
    free(t);
    /* Let the ACKs reach meshd before reading its counters and CPU. */
    b->phase = PH_AFTER;
    loop_timer_start(b->loop, &b->timer, b->settle_ms, after_change, b);
}

static void
finish(struct bench *b)
{
    double v[MAX_CHANGES];
    unsigned n = b->cur < b->changes ? b->cur : b->changes;
    b->phase = PH_DONE;
    loop_timer_stop(b->loop, &b->timer);
    loop_timer_stop(b->loop, &b->deadline);
    printf("RESULT nodes=%u synced=%u failed=%u changes=%u", b->n, b->n_synced, b->n_failed, n);
    if (n > 0) {
        struct {
            const char *key;
            size_t off;
        } fields[] = {
            {"change_ms_last", offsetof(struct change, last_ms)},
            {"change_ms_p50", offsetof(struct change, p50_ms)},
            {"change_ms_first", offsetof(struct change, first_ms)},
            {"change_cpu_ms", offsetof(struct change, cpu_ms)},
        };
        for (size_t f = 0; f < ARRAY_LEN(fields); f++) {
            double max = 0;
            for (unsigned i = 0; i < n; i++) {
                v[i] = *(const double *)((const char *)&b->ch[i] + fields[f].off);
                max = v[i] > max ? v[i] : max;
            }
            printf(" %s=%.2f %s_max=%.2f", fields[f].key, median_d(v, n), fields[f].key, max);
        }
        for (unsigned i = 0; i < n; i++)
            v[i] = (double)b->ch[i].bytes_total;
        printf(" change_bytes_total=%.0f", median_d(v, n));
        for (unsigned i = 0; i < n; i++)
            v[i] = (double)b->ch[i].bytes_max;
        printf(" change_bytes_max=%.0f", median_d(v, n));
        for (unsigned i = 0; i < n; i++)
            v[i] = (double)b->ch[i].push_bytes;
        printf(" change_push_bytes=%.0f", median_d(v, n));
    }
    printf(" rss_kb=%ld hwm_kb=%ld\n", meshd_status_kb(b, "VmRSS"), meshd_status_kb(b, "VmHWM"));
    fflush(stdout);
    if (n < b->changes)
        b->rc = 1;
    loop_stop(b->loop);
}

/* ---- main ---------------------------------------------------------------- */

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fatal("%s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap + 1);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static unsigned long
num_arg(const char *flag, const char *s, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v > max)
        fatal("%s: \"%s\" is not a number up to %lu", flag, s, max);
    return v;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: xds_subscribers --xds ADDR:PORT --root-cert FILE --tokens DIR --nodes N\n"
            "         --expect ADDRESSES --meshd-pid PID --metrics ADDR:PORT --marker NAME\n"
            "         --marker-template FILE --marker-dest FILE [--changes K] [--settle-ms MS]\n"
            "         [--gap-ms MS] [--timeout-s S]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"xds", required_argument, NULL, 'x'},
        {"root-cert", required_argument, NULL, 'r'},
        {"tokens", required_argument, NULL, 't'},
        {"nodes", required_argument, NULL, 'n'},
        {"expect", required_argument, NULL, 'e'},
        {"meshd-pid", required_argument, NULL, 'p'},
        {"metrics", required_argument, NULL, 'm'},
        {"marker", required_argument, NULL, 'k'},
        {"marker-template", required_argument, NULL, 'T'},
        {"marker-dest", required_argument, NULL, 'D'},
        {"changes", required_argument, NULL, 'c'},
        {"settle-ms", required_argument, NULL, 's'},
        {"gap-ms", required_argument, NULL, 'g'},
        {"timeout-s", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    static struct bench bench;
    struct bench *b = &bench;
    const char *xds = NULL, *metrics = NULL;
    char err[512];
    int c;

    b->n = 100;
    b->changes = 5;
    b->settle_ms = 500;
    b->gap_ms = 300;
    b->timeout_s = 60;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'x': xds = optarg; break;
        case 'r': b->root = optarg; break;
        case 't': b->tokens = optarg; break;
        case 'n': b->n = (unsigned)num_arg("--nodes", optarg, 10000); break;
        case 'e': b->expect = num_arg("--expect", optarg, 10000000); break;
        case 'p': b->meshd_pid = (long)num_arg("--meshd-pid", optarg, 1u << 30); break;
        case 'm': metrics = optarg; break;
        case 'k': b->marker = optarg; break;
        case 'T': b->tmpl = optarg; break;
        case 'D': b->dest = optarg; break;
        case 'c': b->changes = (unsigned)num_arg("--changes", optarg, MAX_CHANGES); break;
        case 's': b->settle_ms = (unsigned)num_arg("--settle-ms", optarg, 60000); break;
        case 'g': b->gap_ms = (unsigned)num_arg("--gap-ms", optarg, 60000); break;
        case 'o': b->timeout_s = (unsigned)num_arg("--timeout-s", optarg, 3600); break;
        default: usage();
        }
    }
    if (optind != argc || xds == NULL || metrics == NULL || b->root == NULL ||
        b->tokens == NULL || b->marker == NULL || b->tmpl == NULL || b->dest == NULL ||
        b->meshd_pid == 0 || b->n == 0)
        usage();
    if (authority_parse(xds, strlen(xds), &b->ip, &b->port) < 0)
        fatal("--xds: \"%s\" is not IP:PORT", xds);
    if (authority_parse(metrics, strlen(metrics), &b->mip, &b->mport) < 0)
        fatal("--metrics: \"%s\" is not IP:PORT", metrics);
    log_set_level(LOG_WARN);
    signal(SIGPIPE, SIG_IGN);

    b->tmpl_text = slurp(b->tmpl);
    b->loop = loop_new();
    if ((b->ctx = tls_cp_client_ctx(b->root, TLS_CP_DEFAULT_NAME, NULL, err, sizeof(err))) == NULL)
        fatal("%s", err);
    b->subs = xcalloc(b->n, sizeof(*b->subs));
    for (unsigned i = 0; i < b->n; i++)
        sub_init(b, &b->subs[i], i + 1);

    b->rss_idle_kb = meshd_status_kb(b, "VmRSS");
    b->push0 = meshd_push_bytes(b);
    b->cpu0_ns = meshd_cpu_ns(b);
    b->phase = PH_SYNC;
    b->t_start_us = now_us();
    loop_timer_start(b->loop, &b->deadline, (uint64_t)b->timeout_s * 1000, on_deadline, b);
    for (unsigned i = 0; i < b->n; i++)
        channel_get(b->subs[i].chan, &b->subs[i].wait, on_session, &b->subs[i]);
    loop_run(b->loop);

    for (unsigned i = 0; i < b->n; i++) {
        struct sub *s = &b->subs[i];
        channel_cancel(s->chan, &s->wait);
        rpc_call_free(s->call);
        channel_free(s->chan);
        xds_client_free(s->client);
    }
    loop_run_deferred(b->loop);
    free(b->subs);
    free(b->tmpl_text);
    SSL_CTX_free(b->ctx);
    loop_free(b->loop);
    return b->rc;
}
