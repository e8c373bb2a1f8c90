/*
 * fuzz_xds.c - the delta xDS state machines (lib/xds) on hostile messages.
 *
 * Byte 0: bit 0 picks the side (1: a server stream, 0: a client), bits 1-2 a
 * response size cap. The rest is records: a 2-byte big-endian length, then
 * that many bytes. Server side: each record is a DeltaDiscoveryRequest; an
 * empty record pushes the other of two snapshots. Every response must decode
 * and respect the cap; it then goes to a real client (accepting everything),
 * which must ACK it, and the ACK goes back to the stream. Client side: each
 * record is a DeltaDiscoveryResponse (names starting with 'x' are rejected);
 * every answer must decode as a request for the same nonce.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "discovery.pb-c.h"

#include "base/base.h"
#include "xds/xds.h"
#include "xds/xds_client.h"
#include "xds/xds_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROUNDS 16 /* server <-> client exchanges per record */

static const char *
accept_all(void *arg, const char *type_url, const char *name, const char *version,
           const uint8_t *bytes, size_t len)
{
    (void)arg;
    (void)type_url;
    (void)name;
    (void)version;
    if (len > 0 && bytes == NULL)
        abort();
    return NULL;
}

static const char *
reject_x(void *arg, const char *type_url, const char *name, const char *version,
         const uint8_t *bytes, size_t len)
{
    (void)arg;
    (void)type_url;
    (void)version;
    (void)bytes;
    (void)len;
    return name[0] == 'x' ? "rejected by the harness" : NULL;
}

static struct xds_snapshot *
snapshot(int which)
{
    static const char *const names[] = {"a", "b", "ns/c", "d"};
    struct xds_resource *v = xcalloc(5, sizeof(*v));
    size_t n = 0;

    for (int i = 0; i < 4; i++) {
        if ((which == 0 && i == 3) || (which == 1 && i == 2))
            continue;
        v[n].type_url = xstrdup(XDS_TYPE_ADDRESS);
        v[n].name = xstrdup(names[i]);
        v[n].len = 40 + 30 * (size_t)i + (size_t)which * (i == 0);
        v[n].bytes = xcalloc(1, v[n].len);
        n++;
    }
    v[n].type_url = xstrdup(XDS_TYPE_AUTHORIZATION);
    v[n].name = xstrdup("ns/p");
    v[n].bytes = (uint8_t *)xstrdup(which ? "p2" : "p1");
    v[n].len = 2;
    n++;
    return xds_snapshot_new(v, n);
}

static void
check_response(const struct xds_msg *m, size_t cap)
{
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *r =
        envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, m->len, m->data);

    if (r == NULL || r->nonce[0] == '\0' || r->n_resources != m->n_resources ||
        r->n_removed_resources != m->n_removed)
        abort();
    /* Over the cap only as a single oversized resource. */
    if (m->len > cap && r->n_resources + r->n_removed_resources != 1)
        abort();
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
}

static void
check_request(const struct xds_msg *m)
{
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r =
        envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, m->len, m->data);

    if (r == NULL || (r->error_detail != NULL) != m->nack)
        abort();
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(r, NULL);
}

static void
run_server(const uint8_t *p, size_t len, size_t cap)
{
    struct xds_server_config cfg = {.max_response_bytes = cap, .max_names = 64, .max_name_len = 64};
    struct xds_client_config ccfg = {.node_id = "fuzz", .on_apply = accept_all};
    struct xds_server_stream *s = xds_server_stream_new(&cfg);
    struct xds_client *c = xds_client_new(&ccfg);
    struct xds_snapshot *snaps[2] = {snapshot(0), snapshot(1)};
    struct xds_out resps, acks;
    int which = 0;

    xds_out_init(&resps);
    xds_out_init(&acks);
    xds_server_stream_push(s, snaps[0], &resps);
    while (len >= 2) {
        size_t n = (size_t)p[0] << 8 | p[1];
        p += 2;
        len -= 2;
        if (n > len)
            n = len;
        if (n == 0) {
            which ^= 1;
            xds_server_stream_push(s, snaps[which], &resps);
        } else {
            int rc = xds_server_stream_on_request(s, p, n, &resps);
            if (rc != 0 && rc != -MESH_EPROTO && rc != -MESH_ELIMIT)
                abort();
        }
        p += n;
        len -= n;
        for (int round = 0; round < MAX_ROUNDS && resps.n > 0; round++) {
            for (size_t i = 0; i < resps.n; i++) {
                check_response(&resps.v[i], cap);
                if (xds_client_on_response(c, resps.v[i].data, resps.v[i].len, &acks) != 0)
                    abort();
            }
            xds_out_cleanup(&resps);
            for (size_t i = 0; i < acks.n; i++)
                if (xds_server_stream_on_request(s, acks.v[i].data, acks.v[i].len, &resps) != 0)
                    abort();
            xds_out_cleanup(&acks);
        }
        xds_out_cleanup(&resps);
    }

    const struct xds_server_stats *st = xds_server_stream_stats(s);
    if (st->acks + st->nacks > st->responses || st->pushes > st->responses)
        abort();
    for (size_t i = 0; i < xds_server_stream_n_types(s); i++) {
        struct xds_server_type_status ts;
        xds_server_stream_type_status(s, i, &ts);
        if (!ts.served && ts.n_in_flight != 0)
            abort();
    }
    xds_snapshot_unref(snaps[0]);
    xds_snapshot_unref(snaps[1]);
    xds_client_free(c);
    xds_server_stream_free(s);
}

static void
run_client(const uint8_t *p, size_t len)
{
    struct xds_client_config cfg = {
        .node_id = "fuzz", .on_apply = reject_x, .max_resources = 64, .max_name_len = 64};
    struct xds_client *c = xds_client_new(&cfg);
    struct xds_out out;
    int k = 0;

    xds_out_init(&out);
    while (len >= 2) {
        size_t n = (size_t)p[0] << 8 | p[1];
        p += 2;
        len -= 2;
        if (n > len)
            n = len;
        if (k++ % 8 == 0)
            xds_client_start(c, &out);
        int rc = xds_client_on_response(c, p, n, &out);
        if (rc != 0 && rc != 1 && rc != -MESH_EPROTO)
            abort();
        if (rc == 1 && xds_client_last_error(c) == NULL)
            abort();
        for (size_t i = 0; i < out.n; i++)
            check_request(&out.v[i]);
        xds_out_cleanup(&out);
        p += n;
        len -= n;
    }
    xds_client_free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {0, 96, 256, 1024};

    if (size == 0)
        return 0;
    if (data[0] & 1)
        run_server(data + 1, size - 1,
                   caps[(data[0] >> 1) & 3] ? caps[(data[0] >> 1) & 3] : XDS_MAX_RESPONSE_DEFAULT);
    else
        run_client(data + 1, size - 1);
    return 0;
}
