/*
 * fuzz_zds.c - ZDS datagrams as either side receives them (lib/zds codec,
 * no sockets).
 *
 * Byte 0: bit 0 says whether a descriptor came with the datagram; the rest of
 * the input is the datagram, decoded as a WorkloadRequest (what ztunnel
 * receives), a ZdsHello and a WorkloadResponse (what the agent receives).
 * Every result must be one of the documented codes; whatever decodes must
 * respect the caps and character rules, obey the descriptor rule, and survive
 * encode + decode unchanged. Seeds: valid messages of each kind (the old
 * AddWorkload form too), unknown payloads, truncations, junk, oversized.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "zds/zds_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_workload(const struct zds_req *r)
{
    const struct zds_workload *w = &r->w;
    struct zds_workload again;

    if (r->kind == ZDS_REQ_SNAPSHOT_SENT)
        return;
    if (memchr(w->uid, '\0', sizeof(w->uid)) == NULL ||
        memchr(w->name, '\0', sizeof(w->name)) == NULL ||
        memchr(w->ns, '\0', sizeof(w->ns)) == NULL || memchr(w->sa, '\0', sizeof(w->sa)) == NULL)
        abort();
    /* What decodes passes the rules callers are held to. */
    if (zds_workload_set(&again, w->uid, w->name, w->ns, w->sa) != 0)
        abort();
    if (r->kind != ZDS_REQ_ADD && (w->name[0] || w->ns[0] || w->sa[0]))
        abort();
}

static void
check_request(const uint8_t *p, size_t len, bool has_fd)
{
    struct zds_req r, back;
    uint8_t b[ZDS_MSG_MAX];
    size_t blen;
    int rc = zds_req_decode(p, len, has_fd, &r);

    if (rc != 0 && rc != -MESH_EPROTO && rc != -MESH_ELIMIT && rc != -ENOTSUP)
        abort();
    if ((rc == -MESH_ELIMIT) != (len > ZDS_MSG_MAX))
        abort();
    if (rc == -ENOTSUP && has_fd)
        abort(); /* a descriptor on an unknown request is a protocol error */
    if (rc != 0)
        return;
    if ((r.kind == ZDS_REQ_ADD) != has_fd)
        abort();
    if (r.legacy && r.kind != ZDS_REQ_ADD)
        abort();
    check_workload(&r);
    if (zds_req_decode(p, len, !has_fd, &back) != -MESH_EPROTO)
        abort();
    if (zds_req_encode(&r, b, sizeof(b), &blen) != 0 || blen > ZDS_MSG_MAX)
        abort();
    if (zds_req_decode(b, blen, has_fd, &back) != 0 || back.kind != r.kind ||
        back.legacy != r.legacy || memcmp(&back.w, &r.w, sizeof(r.w)) != 0)
        abort();
}

static void
check_answers(const uint8_t *p, size_t len)
{
    char err[ZDS_ERR_MAX + 1], again[ZDS_ERR_MAX + 1], small[7];
    uint8_t b[ZDS_MSG_MAX];
    size_t blen;

    int rc = zds_hello_decode(p, len);
    if (rc != 0 && rc != -MESH_EPROTO)
        abort();
    rc = zds_ack_decode(p, len, err, sizeof(err));
    if (rc != 0 && rc != -MESH_EPROTO && rc != -MESH_ELIMIT)
        abort();
    if (rc != 0)
        return;
    /* The kept text is printable already: sending it back keeps it as it is. */
    if (zds_ack_encode(err, b, sizeof(b), &blen) != 0 || blen > ZDS_MSG_MAX)
        abort();
    if (zds_ack_decode(b, blen, again, sizeof(again)) != 0 || strcmp(err, again) != 0)
        abort();
    if (zds_ack_decode(p, len, small, sizeof(small)) != 0 || strlen(small) >= sizeof(small) ||
        strncmp(small, err, strlen(small)) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    bool has_fd = data[0] & 1;
    check_request(data + 1, size - 1, has_fd);
    check_answers(data + 1, size - 1);
    return 0;
}
