/*
 * sock.c - thin wrappers over socket(2) family calls with the options ztunnel needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "net/sock.h"

/* From linux/netfilter_ipv4.h and netfilter_ipv6/ip6_tables.h, which clash with netinet/in.h. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

/*
 * socket(2) in another network namespace: a socket stays in the namespace it
 * was created in, so the thread enters the pod's namespace for the call only.
 * The thread's own namespace is opened once; failing to return to it would
 * leave every later socket in the wrong place, so that aborts.
 */
static int
socket_in(int family, const struct sock_opts *o)
{
    static __thread int self_ns = -1;
    int type = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;

    if (o == NULL || !o->in_netns)
        return socket(family, type, 0);
    if (self_ns < 0 && (self_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    if (setns(o->netns_fd, CLONE_NEWNET) < 0)
        return -errno;
    int fd = socket(family, type, 0);
    int saved = errno;
    CHECK(setns(self_ns, CLONE_NEWNET) == 0);
    errno = saved;
    return fd;
}

int
netns_sysctl(int netns_fd, const char *path, const char *value)
{
    struct sock_opts o = {.in_netns = netns_fd >= 0, .netns_fd = netns_fd};
    static __thread int self_ns = -1;
    int fd, err = 0;

    /* /proc/sys/net belongs to the namespace of whoever opens the file. */
    if (!o.in_netns) {
        fd = open(path, O_WRONLY | O_CLOEXEC);
    } else {
        if (self_ns < 0 && (self_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
            return -errno;
        if (setns(netns_fd, CLONE_NEWNET) < 0)
            return -errno;
        fd = open(path, O_WRONLY | O_CLOEXEC);
        err = errno;
        CHECK(setns(self_ns, CLONE_NEWNET) == 0);
    }
    if (fd < 0)
        return -(err ? err : errno);
    size_t n = strlen(value);
    ssize_t w = write(fd, value, n);
    err = w == (ssize_t)n ? 0 : -(w < 0 ? errno : EIO);
    close(fd);
    return err;
}

static int
apply_opts(int fd, int family, const struct sock_opts *o)
{
    int one = 1;

    if (o == NULL)
        return 0;
    if (o->mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &o->mark, sizeof(o->mark)) < 0)
        return -errno;
    if (o->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        return -errno;
    if (o->transparent) {
        int lvl = family == AF_INET ? SOL_IP : SOL_IPV6;
        int opt = family == AF_INET ? IP_TRANSPARENT : IPV6_TRANSPARENT;
        if (setsockopt(fd, lvl, opt, &one, sizeof(one)) < 0)
            return -errno;
    }
    return 0;
}

int
sock_listen(const struct ipaddr *ip, uint16_t port, const struct sock_opts *o)
{
    struct sockaddr_storage ss;
    struct ipaddr any6 = {.family = AF_INET6};
    int one = 1, zero = 0, rc;

    if (ip == NULL)
        ip = &any6;
    socklen_t len = ipport_to_sockaddr(ip, port, &ss);
    int fd = socket_in(ss.ss_family, o);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if ((rc = apply_opts(fd, ss.ss_family, o)) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
        rc = -errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return rc;
}

int
sock_connect(const struct ipaddr *dst, uint16_t dport, const struct ipaddr *src,
             const struct sock_opts *o)
{
    struct sockaddr_storage ss, sss;
    int rc, one = 1;

    socklen_t len = ipport_to_sockaddr(dst, dport, &ss);
    int fd = socket_in(ss.ss_family, o);
    if (fd < 0)
        return -errno;
    if ((rc = apply_opts(fd, ss.ss_family, o)) < 0)
        goto fail;
    if (src != NULL && src->family == dst->family) {
        socklen_t slen = ipport_to_sockaddr(src, 0, &sss);
        /* Reuse the source address across many connections to one destination. */
        setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&sss, slen) < 0) {
            rc = -errno;
            goto fail;
        }
    }
    sock_tune(fd);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
        rc = -errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return rc;
}

int
sock_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

int
sock_accept(int lfd, struct ipaddr *peer, uint16_t *peer_port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (peer != NULL)
        sockaddr_to_ipport((struct sockaddr *)&ss, peer, peer_port);
    return fd;
}

int
sock_local(int fd, struct ipaddr *ip, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    sockaddr_to_ipport((struct sockaddr *)&ss, ip, port);
    return 0;
}

int
sock_peer(int fd, struct ipaddr *ip, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    sockaddr_to_ipport((struct sockaddr *)&ss, ip, port);
    return 0;
}

int
sock_orig_dst(int fd, struct ipaddr *ip, uint16_t *port)
{
    struct sockaddr_storage ss;
    struct ipaddr local;
    uint16_t lport;
    socklen_t len = sizeof(ss);

    /* The socket family tells which table REDIRECTed it; mapped v4 peers use SOL_IP. */
    if (sock_local(fd, &local, &lport) < 0)
        return -errno;
    memset(&ss, 0, sizeof(ss));
    if (local.family == AF_INET) {
        if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len) < 0)
            return -errno;
    } else {
        if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len) < 0)
            return -errno;
    }
    sockaddr_to_ipport((struct sockaddr *)&ss, ip, port);
    return 0;
}

int
sock_addr_is_local(const struct ipaddr *ip, const struct sock_opts *o)
{
    struct sockaddr_storage ss;
    struct sock_opts where = {.in_netns = o != NULL && o->in_netns,
                              .netns_fd = o != NULL ? o->netns_fd : -1};
    int one = 1, rc;

    socklen_t len = ipport_to_sockaddr(ip, 0, &ss);
    int fd = socket_in(ss.ss_family, &where);
    if (fd < 0)
        return -errno;
    /* Only the address is checked: no ephemeral port is taken for the probe. */
    setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) == 0)
        rc = 1;
    else if (errno == EADDRNOTAVAIL)
        rc = 0;
    else
        rc = errno == EADDRINUSE ? 1 : -errno;
    close(fd);
    return rc;
}

void
sock_tune(int fd)
{
    int one = 1, idle = 180, intvl = 180, cnt = 9;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}
