/*
 * sock.h - socket set-up for the proxy: listeners, non-blocking connects,
 * packet marks, original destinations and keepalive.
 */
#ifndef MESH_LIB_SOCK_H
#define MESH_LIB_SOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "net/addr.h"

/* The mark on every ztunnel socket, exempted by redirection rules (Istio's 1337). */
#define SOCK_MARK_ZTUNNEL 0x539

struct sock_opts {
    uint32_t mark;      /* SO_MARK; 0 = none */
    bool reuseport;     /* SO_REUSEPORT, for hand-over between processes */
    bool transparent;   /* IP_TRANSPARENT, to bind a non-local source */
    bool in_netns;      /* create the socket in the network namespace |netns_fd| */
    int netns_fd;       /* (in-pod mode: a pod's namespace, from the node agent) */
};

/*
 * Opens a non-blocking listener on |ip|:|port|; a NULL |ip| means "[::]" in
 * dual-stack mode (IPv4 peers appear as mapped addresses, normalised by
 * sockaddr_to_ipport()). Returns the fd or -errno.
 */
int sock_listen(const struct ipaddr *ip, uint16_t port, const struct sock_opts *o);

/*
 * Starts a non-blocking connect to |dst|:|dport|, from |src| (port 0) when not
 * NULL. Returns the fd (the connect may still be in progress) or -errno.
 */
int sock_connect(const struct ipaddr *dst, uint16_t dport, const struct ipaddr *src,
                 const struct sock_opts *o);
/* After EPOLLOUT on a connecting fd: 0 when connected, else -errno. */
int sock_connect_result(int fd);

/*
 * Writes |value| to the sysctl file |path| (under /proc/sys/net) of the
 * network namespace |netns_fd| (-1: the caller's). Returns 0 or -errno.
 */
int netns_sysctl(int netns_fd, const char *path, const char *value);

/* accept4() non-blocking and close-on-exec; returns fd or -errno. */
int sock_accept(int lfd, struct ipaddr *peer, uint16_t *peer_port);

int sock_local(int fd, struct ipaddr *ip, uint16_t *port);
int sock_peer(int fd, struct ipaddr *ip, uint16_t *port);
/* The pre-REDIRECT destination (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST). */
int sock_orig_dst(int fd, struct ipaddr *ip, uint16_t *port);

/*
 * Is |ip| an address of the network namespace |o| names (o NULL or !in_netns:
 * the caller's)? Answered by binding a throw-away socket to it, which only an
 * address of the namespace allows (unless ip_nonlocal_bind is set there: then
 * every address reads as local). Returns 1, 0 or -errno.
 */
int sock_addr_is_local(const struct ipaddr *ip, const struct sock_opts *o);

/* TCP_NODELAY and keepalive (idle 180 s, interval 180 s, 9 probes, as ztunnel). */
void sock_tune(int fd);

#endif
