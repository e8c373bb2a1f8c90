/*
 * hbone_headers.c - what a CONNECT tells the other end about the connection it carries:
 * the original client (forwarded), the source workload (W3C baggage, reference 1.5) and a
 * fresh trace context, as Istio's ztunnel sends them.
 */
#include <stdio.h>

#include <openssl/rand.h>

#include "base/base.h"
#include "hbone/hbone.h"
#include "model/model.h"

static void
random_hex(char *out, size_t bytes)
{
    unsigned char b[32];
    static const char hex[] = "0123456789abcdef";

    RAND_bytes(b, (int)bytes);
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * bytes] = '\0';
}

/* The W3C baggage describing the source workload; empty when it does not fit. */
static void
make_baggage(const struct workload *w, const char *cluster, char *out, size_t len)
{
    size_t n = 0;
    const char *items[][2] = {
        {"k8s.cluster.name", w->cluster_id ? w->cluster_id : cluster},
        {"k8s.namespace.name", w->ns},
        {"k8s.pod.name", w->workload_name ? w->workload_name : w->name},
        {"service.name", w->canonical_name},
        {"service.version", w->canonical_revision},
    };
    out[0] = '\0';
    for (size_t i = 0; i < ARRAY_LEN(items); i++) {
        if (items[i][1] == NULL || items[i][1][0] == '\0')
            continue;
        int k = snprintf(out + n, len - n, "%s%s=%s", n ? "," : "", items[i][0], items[i][1]);
        if (k < 0 || (size_t)k >= len - n) {
            out[n] = '\0';
            return;
        }
        n += (size_t)k;
    }
}

void
hbone_headers_make(struct hbone_headers *h, const struct ipaddr *client, uint16_t cport,
                   const char *host, const struct workload *src, const char *cluster)
{
    char a[ADDR_STRLEN], tid[33], pid[17];

    ipport_str(client, cport, a);
    if (host != NULL)
        snprintf(h->fwd, sizeof(h->fwd), "for=\"%s\";host=%s", a, host);
    else
        snprintf(h->fwd, sizeof(h->fwd), "for=\"%s\"", a);
    h->baggage[0] = '\0';
    if (src != NULL)
        make_baggage(src, cluster, h->baggage, sizeof(h->baggage));
    random_hex(tid, 16);
    random_hex(pid, 8);
    snprintf(h->trace, sizeof(h->trace), "00-%s-%s-00", tid, pid);
    h->n = 0;
    if (h->baggage[0] != '\0')
        h->h[h->n++] = (struct h2_header){"baggage", h->baggage};
    h->h[h->n++] = (struct h2_header){"forwarded", h->fwd};
    h->h[h->n++] = (struct h2_header){"traceparent", h->trace};
}
