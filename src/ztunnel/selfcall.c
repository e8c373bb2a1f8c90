/*
 * selfcall.c - a captured connection must not make ztunnel dial itself.
 *
 * 15001 and 15006 trust the original destination the kernel recorded when it
 * REDIRECTed a connection. A process in a pod can also connect to these
 * listeners directly (127.0.0.1:15001, its own IP, [::1], the v4-mapped
 * form): nothing was redirected, the "original destination" is the listener
 * itself, and dialling it would accept again, dial again, and so on until
 * the process runs out of descriptors (issue 9, attack 1). So, before
 * anything is allocated for it, a connection is refused when:
 *
 *   - it has no original destination (conntrack never saw it NATed);
 *   - its original destination is its own local address and port: it was
 *     not redirected at all;
 *   - the destination is loopback or unspecified: a redirected connection
 *     never keeps one (the capture rules exclude lo), and in a pod it could
 *     only reach the pod itself, or ztunnel;
 *   - the destination is an address of the scope's namespace on a port where
 *     ztunnel listens there (15001/15006/15008 in a pod, those and
 *     15000/15020/15021 in ztunnel's own namespace), or an address of
 *     ztunnel's own namespace on one of its ports there.
 *
 * The last check binds a throw-away socket (sock_addr_is_local), so it runs
 * only for those ports. A refused connection is reset, counted
 * (amesh_ztunnel_self_connections_refused_total) and logged at most once a
 * minute: the peer can repeat it at will.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_SCOPE "ztunnel"
#include "base/base.h"
#include "log/log.h"
#include "net/sock.h"
#include "ztunnel.h"

static bool
is_loopback_or_any(const struct ipaddr *ip)
{
    static const uint8_t zero[16];

    if (ip->family == AF_INET)
        return ip->b[0] == 127 || memcmp(ip->b, zero, 4) == 0;
    /* ::1 and ::; v4-mapped forms were normalised to AF_INET already (net/addr.h). */
    return memcmp(ip->b, zero, 15) == 0 && (ip->b[15] == 0 || ip->b[15] == 1);
}

/* A port on which ztunnel listens in a pod's namespace (pod) or in its own (!pod). */
static bool
listens_on(uint16_t port, bool pod)
{
    if (port == ZT_PORT_OUTBOUND || port == ZT_PORT_INBOUND_PLAIN || port == ZT_PORT_HBONE)
        return true;
    return !pod && (port == ZT_PORT_ADMIN || port == ZT_PORT_METRICS || port == ZT_PORT_READY);
}

/* Why |odst|:|oport|, accepted on |fd| in |pod|, is ztunnel itself; NULL if it is not. */
static const char *
self_reason(const struct zpod *pod, int fd, const struct ipaddr *odst, uint16_t oport)
{
    struct ipaddr local;
    uint16_t lport;

    if (sock_local(fd, &local, &lport) == 0 && lport == oport && ipaddr_eq(&local, odst))
        return "not redirected";
    if (is_loopback_or_any(odst))
        return "loopback destination";
    bool in_pod = pod->netns_fd >= 0;
    if (listens_on(oport, in_pod) && sock_addr_is_local(odst, &pod->dial) == 1)
        return in_pod ? "the pod's own listener" : "ztunnel's own listener";
    /* In-pod mode, ztunnel's own namespace (15020, ...) may be reachable from a pod, too. */
    if (in_pod && listens_on(oport, false) && sock_addr_is_local(odst, NULL) == 1)
        return "ztunnel's own listener";
    return NULL;
}

static void
refuse(struct zpod *pod, int fd, const char *listener, const struct ipaddr *peer,
       uint16_t peer_port, const char *dst, const char *why)
{
    static struct log_ratelimit rl = LOG_RATELIMIT_INIT(60000, 1);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    char src[ADDR_STRLEN];

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    zt_metrics_self_refused(listener, why);
    log_warn_rl(&rl, "%s: refused a connection to ztunnel itself from %s%s%s%s to %s (%s)",
                listener, ipport_str(peer, peer_port, src), pod->name ? " (pod " : "",
                pod->name ? pod->name : "", pod->name ? ")" : "", dst, why);
}

bool
zt_accept_orig_dst(struct zpod *pod, int fd, const char *listener, const struct ipaddr *peer,
                   uint16_t peer_port, struct ipaddr *odst, uint16_t *oport)
{
    char dst[ADDR_STRLEN];

    if (sock_orig_dst(fd, odst, oport) < 0) {
        refuse(pod, fd, listener, peer, peer_port, "?", "no original destination");
        return false;
    }
    const char *why = self_reason(pod, fd, odst, *oport);
    if (why != NULL) {
        refuse(pod, fd, listener, peer, peer_port, ipport_str(odst, *oport, dst), why);
        return false;
    }
    return true;
}
