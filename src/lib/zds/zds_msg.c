/*
 * zds_msg.c - ZDS messages (protobuf-c) and SCM_RIGHTS passing; see zds_msg.h.
 *
 * Decoding is protobuf-c's, with our checks on top: caps and character rules
 * on every string, the descriptor rule, and one fallback for the old
 * AddWorkload{uid = 2}. The old form shares field 2 with today's
 * workload_info, so protobuf-c reads an old uid as (usually malformed)
 * WorkloadInfo bytes; when that fails, or yields no uid, a small walker over
 * the wire format looks for the old shape instead.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zds.pb-c.h"

#include "base/base.h"
#include "pbcheck/pbcheck.h"
#include "zds/zds_msg.h"

typedef Istio__Workload__Zds__WorkloadRequest pb_req;
typedef Istio__Workload__Zds__WorkloadResponse pb_resp;

const char *
zds_req_kind_name(enum zds_req_kind k)
{
    switch (k) {
    case ZDS_REQ_ADD:
        return "add";
    case ZDS_REQ_DEL:
        return "del";
    case ZDS_REQ_SNAPSHOT_SENT:
        return "snapshot_sent";
    case ZDS_REQ_KEEP:
        return "keep";
    }
    return "?";
}

/* ---- Strings ---- */

/*
 * Length of the UTF-8 sequence at |s| (|n| bytes left) if it is one valid,
 * printable character (no C0 control, no DEL); 0 otherwise.
 */
static size_t
utf8_char(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t cp, min;

    if (c < 0x80)
        return c >= 0x20 && c != 0x7f ? 1 : 0;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static bool
text_ok(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;

    for (size_t i = 0; i < len;) {
        size_t n = utf8_char(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static bool
uid_ok(const char *s, size_t len)
{
    if (len == 0 || len > ZDS_UID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)s[i] <= 0x20 || (uint8_t)s[i] >= 0x7f)
            return false;
    return true;
}

/* Copies |s| (NULL: "") into |dst| (cap + 1 bytes) if it is valid text within |cap|. */
static int
text_set(char *dst, size_t cap, const char *s)
{
    size_t len = s != NULL ? strnlen(s, cap + 1) : 0;

    if (len > cap || !text_ok(s, len))
        return -EINVAL;
    memcpy(dst, s != NULL ? s : "", len);
    dst[len] = '\0';
    return 0;
}

static int
uid_set(char *dst, const char *s, size_t len)
{
    if (!uid_ok(s, len))
        return -EINVAL;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

int
zds_workload_set(struct zds_workload *w, const char *uid, const char *name, const char *ns,
                 const char *sa)
{
    if (uid == NULL || uid_set(w->uid, uid, strnlen(uid, ZDS_UID_MAX + 1)) < 0)
        return -EINVAL;
    if (text_set(w->name, ZDS_NAME_MAX, name) < 0 || text_set(w->ns, ZDS_NS_MAX, ns) < 0 ||
        text_set(w->sa, ZDS_SA_MAX, sa) < 0)
        return -EINVAL;
    return 0;
}

/*
 * Copies |in| into |out| (|cap| > 0 bytes, NUL-terminated): whole printable
 * characters while they fit, '?' for any byte that does not start one.
 */
static void
text_sanitize(const char *in, size_t len, char *out, size_t cap)
{
    const uint8_t *p = (const uint8_t *)in;
    size_t o = 0;

    for (size_t i = 0; i < len;) {
        size_t n = utf8_char(p + i, len - i);
        size_t take = n > 0 ? n : 1;
        if (o + take >= cap)
            break;
        if (n > 0)
            memcpy(out + o, p + i, n);
        else
            out[o] = '?';
        o += take;
        i += take;
    }
    out[o] = '\0';
}

/* ---- The wire format, for the old AddWorkload only ---- */

static int
wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;

    for (int shift = 0; shift < 64; shift += 7) {
        if (*p == end)
            return -1;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/*
 * Reads one field at |*p|: its number into |*num| and, for a length-delimited
 * one, its value into |*val|, |*vlen|. Returns the wire type, or -1 if malformed.
 */
static int
wire_field(const uint8_t **p, const uint8_t *end, uint64_t *num, const uint8_t **val, size_t *vlen)
{
    uint64_t key, v;

    if (wire_varint(p, end, &key) < 0 || (key >> 3) == 0)
        return -1;
    *num = key >> 3;
    switch (key & 7) {
    case 0:
        return wire_varint(p, end, &v) < 0 ? -1 : 0;
    case 1:
    case 5: {
        size_t n = (key & 7) == 1 ? 8 : 4;
        if ((size_t)(end - *p) < n)
            return -1;
        *p += n;
        return (int)(key & 7);
    }
    case 2:
        if (wire_varint(p, end, &v) < 0 || v > (uint64_t)(end - *p))
            return -1;
        *val = *p;
        *vlen = (size_t)v;
        *p += v;
        return 2;
    }
    return -1; /* groups (3, 4) and 6, 7 */
}

/*
 * The old WorkloadRequest{add: AddWorkload{uid = 2}}. Repeated occurrences of
 * a message field merge, so the last uid anywhere wins, as protobuf would read it.
 */
static int
legacy_add_decode(const uint8_t *p, size_t len, struct zds_req *r)
{
    const uint8_t *end = p + len, *uid = NULL, *val = NULL;
    size_t uid_len = 0, vlen = 0;
    uint64_t num;
    bool add = false;

    while (p < end) {
        int wt = wire_field(&p, end, &num, &val, &vlen);
        if (wt < 0)
            return -MESH_EPROTO;
        if (num == 2 || num == 3 || num == 5)
            return -MESH_EPROTO; /* another payload replaces the add */
        if (num != 1)
            continue;
        if (wt != 2)
            return -MESH_EPROTO;
        add = true;
        const uint8_t *q = val, *qend = val + vlen, *fv = NULL;
        size_t flen = 0;
        while (q < qend) {
            int fwt = wire_field(&q, qend, &num, &fv, &flen);
            if (fwt < 0 || ((num == 1 || num == 2) && fwt != 2))
                return -MESH_EPROTO;
            if (num == 1 && flen > 0)
                return -MESH_EPROTO; /* today's uid: not the old form */
            if (num == 2)
                uid = fv, uid_len = flen;
        }
    }
    if (!add || uid == NULL)
        return -MESH_EPROTO;
    memset(r, 0, sizeof(*r));
    r->kind = ZDS_REQ_ADD;
    r->legacy = true;
    return uid_set(r->w.uid, (const char *)uid, uid_len) < 0 ? -MESH_EPROTO : 0;
}

/* ---- Requests ---- */

static bool
req_fields_ok(const struct zds_req *r)
{
    const struct zds_workload *w = &r->w;
    size_t n = strnlen(w->uid, sizeof(w->uid));

    if (r->kind == ZDS_REQ_SNAPSHOT_SENT)
        return true;
    if (n == sizeof(w->uid) || !uid_ok(w->uid, n))
        return false;
    if (r->kind != ZDS_REQ_ADD || r->legacy)
        return true;
    size_t a = strnlen(w->name, sizeof(w->name)), b = strnlen(w->ns, sizeof(w->ns)),
           c = strnlen(w->sa, sizeof(w->sa));
    return a < sizeof(w->name) && b < sizeof(w->ns) && c < sizeof(w->sa) && text_ok(w->name, a) &&
           text_ok(w->ns, b) && text_ok(w->sa, c);
}

static size_t
varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static int
legacy_add_encode(const char *uid, uint8_t *out, size_t cap, size_t *len)
{
    uint8_t tmp[ZDS_UID_MAX + 16];
    size_t ulen = strlen(uid), n = 0, inner;

    tmp[n++] = 0x12; /* field 2, length-delimited */
    n += varint_put(tmp + n, ulen);
    memcpy(tmp + n, uid, ulen);
    inner = n + ulen;
    uint8_t hdr[8];
    size_t h = 0;
    hdr[h++] = 0x0a; /* WorkloadRequest.add */
    h += varint_put(hdr + h, inner);
    if (h + inner > cap || h + inner > ZDS_MSG_MAX)
        return -MESH_ELIMIT;
    memcpy(out, hdr, h);
    memcpy(out + h, tmp, inner);
    *len = h + inner;
    return 0;
}

int
zds_req_encode(const struct zds_req *r, uint8_t *out, size_t cap, size_t *len)
{
    pb_req m = ISTIO__WORKLOAD__ZDS__WORKLOAD_REQUEST__INIT;
    Istio__Workload__Zds__AddWorkload add = ISTIO__WORKLOAD__ZDS__ADD_WORKLOAD__INIT;
    Istio__Workload__Zds__WorkloadInfo info = ISTIO__WORKLOAD__ZDS__WORKLOAD_INFO__INIT;
    Istio__Workload__Zds__DelWorkload del = ISTIO__WORKLOAD__ZDS__DEL_WORKLOAD__INIT;
    Istio__Workload__Zds__KeepWorkload keep = ISTIO__WORKLOAD__ZDS__KEEP_WORKLOAD__INIT;
    Istio__Workload__Zds__SnapshotSent snap = ISTIO__WORKLOAD__ZDS__SNAPSHOT_SENT__INIT;
    struct zds_workload w = r->w; /* protobuf-c wants non-const strings */

    if (!req_fields_ok(r))
        return -EINVAL;
    switch (r->kind) {
    case ZDS_REQ_ADD:
        if (r->legacy)
            return legacy_add_encode(w.uid, out, cap, len);
        info.name = w.name;
        info.namespace_ = w.ns;
        info.service_account = w.sa;
        add.uid = w.uid;
        add.workload_info = &info;
        m.payload_case = ISTIO__WORKLOAD__ZDS__WORKLOAD_REQUEST__PAYLOAD_ADD;
        m.add = &add;
        break;
    case ZDS_REQ_DEL:
        del.uid = w.uid;
        m.payload_case = ISTIO__WORKLOAD__ZDS__WORKLOAD_REQUEST__PAYLOAD_DEL;
        m.del = &del;
        break;
    case ZDS_REQ_KEEP:
        keep.uid = w.uid;
        m.payload_case = ISTIO__WORKLOAD__ZDS__WORKLOAD_REQUEST__PAYLOAD_KEEP;
        m.keep = &keep;
        break;
    case ZDS_REQ_SNAPSHOT_SENT:
        m.payload_case = ISTIO__WORKLOAD__ZDS__WORKLOAD_REQUEST__PAYLOAD_SNAPSHOT_SENT;
        m.snapshot_sent = &snap;
        break;
    default:
        return -EINVAL;
    }
    size_t n = istio__workload__zds__workload_request__get_packed_size(&m);
    if (n > cap || n > ZDS_MSG_MAX)
        return -MESH_ELIMIT;
    *len = istio__workload__zds__workload_request__pack(&m, out);
    return 0;
}

static int
uid_from_pb(char *dst, const char *s)
{
    if (s == NULL)
        return -MESH_EPROTO;
    return uid_set(dst, s, strnlen(s, ZDS_UID_MAX + 1)) < 0 ? -MESH_EPROTO : 0;
}

/* Fills |r| from a decoded message; -ENOTSUP for a payload we do not know. */
static int
req_from_pb(const pb_req *m, const uint8_t *p, size_t len, struct zds_req *r)
{
    const Istio__Workload__Zds__WorkloadInfo *wi;

    switch (m->payload_case) {
    case ISTIO__WORKLOAD__ZDS__WORKLOAD_REQUEST__PAYLOAD_ADD:
        r->kind = ZDS_REQ_ADD;
        if (m->add->uid == NULL || m->add->uid[0] == '\0')
            return legacy_add_decode(p, len, r);
        if (uid_from_pb(r->w.uid, m->add->uid) < 0)
            return -MESH_EPROTO;
        wi = m->add->workload_info;
        if (wi != NULL && (text_set(r->w.name, ZDS_NAME_MAX, wi->name) < 0 ||
                           text_set(r->w.ns, ZDS_NS_MAX, wi->namespace_) < 0 ||
                           text_set(r->w.sa, ZDS_SA_MAX, wi->service_account) < 0))
            return -MESH_EPROTO;
        return 0;
    case ISTIO__WORKLOAD__ZDS__WORKLOAD_REQUEST__PAYLOAD_DEL:
        r->kind = ZDS_REQ_DEL;
        return uid_from_pb(r->w.uid, m->del->uid);
    case ISTIO__WORKLOAD__ZDS__WORKLOAD_REQUEST__PAYLOAD_KEEP:
        r->kind = ZDS_REQ_KEEP;
        return uid_from_pb(r->w.uid, m->keep->uid);
    case ISTIO__WORKLOAD__ZDS__WORKLOAD_REQUEST__PAYLOAD_SNAPSHOT_SENT:
        r->kind = ZDS_REQ_SNAPSHOT_SENT;
        return 0;
    default:
        return -ENOTSUP; /* e.g. 4, no_snapshot_present of older versions */
    }
}

int
zds_req_decode(const uint8_t *p, size_t len, bool has_fd, struct zds_req *r)
{
    char why[PB_ERR_MAX];
    int rc;

    if (len > ZDS_MSG_MAX)
        return -MESH_ELIMIT;
    memset(r, 0, sizeof(*r));
    pb_req *m = pb_unpack_checked(&istio__workload__zds__workload_request__descriptor, p, len,
                                  ZDS_MSG_MAX, why, sizeof(why));
    if (m == NULL) {
        rc = legacy_add_decode(p, len, r);
    } else {
        rc = req_from_pb(m, p, len, r);
        istio__workload__zds__workload_request__free_unpacked(m, NULL);
    }
    if (rc == -ENOTSUP && has_fd)
        return -MESH_EPROTO;
    if (rc < 0)
        return rc;
    if ((r->kind == ZDS_REQ_ADD) != has_fd)
        return -MESH_EPROTO; /* add needs exactly its netns; nothing else may carry one */
    return 0;
}

/* ---- Hello and Ack ---- */

int
zds_hello_encode(uint8_t *out, size_t cap, size_t *len)
{
    Istio__Workload__Zds__ZdsHello h = ISTIO__WORKLOAD__ZDS__ZDS_HELLO__INIT;

    h.version = ISTIO__WORKLOAD__ZDS__VERSION__V1;
    if (istio__workload__zds__zds_hello__get_packed_size(&h) > cap)
        return -MESH_ELIMIT;
    *len = istio__workload__zds__zds_hello__pack(&h, out);
    return 0;
}

int
zds_hello_decode(const uint8_t *p, size_t len)
{
    char why[PB_ERR_MAX];

    if (len > ZDS_MSG_MAX)
        return -MESH_EPROTO;
    Istio__Workload__Zds__ZdsHello *h = pb_unpack_checked(
        &istio__workload__zds__zds_hello__descriptor, p, len, ZDS_MSG_MAX, why, sizeof(why));
    if (h == NULL)
        return -MESH_EPROTO;
    int rc = h->version == ZDS_VERSION_V1 ? 0 : -MESH_EPROTO;
    istio__workload__zds__zds_hello__free_unpacked(h, NULL);
    return rc;
}

int
zds_ack_encode(const char *error, uint8_t *out, size_t cap, size_t *len)
{
    pb_resp m = ISTIO__WORKLOAD__ZDS__WORKLOAD_RESPONSE__INIT;
    Istio__Workload__Zds__Ack ack = ISTIO__WORKLOAD__ZDS__ACK__INIT;
    char e[ZDS_ERR_MAX + 1];

    text_sanitize(error != NULL ? error : "", error != NULL ? strlen(error) : 0, e, sizeof(e));
    ack.error = e;
    m.payload_case = ISTIO__WORKLOAD__ZDS__WORKLOAD_RESPONSE__PAYLOAD_ACK;
    m.ack = &ack;
    if (istio__workload__zds__workload_response__get_packed_size(&m) > cap)
        return -MESH_ELIMIT;
    *len = istio__workload__zds__workload_response__pack(&m, out);
    return 0;
}

int
zds_ack_decode(const uint8_t *p, size_t len, char *err, size_t errcap)
{
    char why[PB_ERR_MAX];
    int rc = -MESH_EPROTO;

    CHECK(errcap > 0);
    err[0] = '\0';
    if (len > ZDS_MSG_MAX)
        return -MESH_ELIMIT;
    pb_resp *m = pb_unpack_checked(&istio__workload__zds__workload_response__descriptor, p, len,
                                   ZDS_MSG_MAX, why, sizeof(why));
    if (m == NULL)
        return -MESH_EPROTO;
    if (m->payload_case == ISTIO__WORKLOAD__ZDS__WORKLOAD_RESPONSE__PAYLOAD_ACK && m->ack != NULL) {
        const char *e = m->ack->error != NULL ? m->ack->error : "";
        text_sanitize(e, strlen(e), err, errcap);
        rc = 0;
    }
    istio__workload__zds__workload_response__free_unpacked(m, NULL);
    return rc;
}

/* ---- Transport ---- */

int
zds_send(int sock, const uint8_t *msg, size_t len, int fd)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } u;
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    if (fd >= 0) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.b;
        mh.msg_controllen = sizeof(u.b);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return (size_t)n == len ? 0 : -EMSGSIZE;
}

ssize_t
zds_recv(int sock, uint8_t *buf, size_t cap, int *fd)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * ZDS_RECV_FDS_MAX)];
    } u;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b)};
    int fds[ZDS_RECV_FDS_MAX];
    size_t n_fds = 0;
    bool other = false;
    ssize_t n;

    *fd = -1;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            other = true;
            continue;
        }
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k && n_fds < ZDS_RECV_FDS_MAX; i++)
            memcpy(&fds[n_fds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    ssize_t rc = n;
    if (mh.msg_flags & MSG_TRUNC)
        rc = -MESH_ELIMIT;
    else if ((mh.msg_flags & MSG_CTRUNC) || other || n_fds > 1)
        rc = -MESH_EPROTO;
    else if (n == 0)
        rc = 0; /* end of stream (a datagram of 0 bytes cannot be a valid message) */
    if (rc <= 0) {
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
        return rc;
    }
    *fd = n_fds == 1 ? fds[0] : -1;
    return rc;
}
