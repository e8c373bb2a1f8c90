/*
 * inpod.h - the redirection rules the node agent (mesh-cni) installs in an
 * enrolled pod's network namespace: Istio's in-pod rules (>= 1.24, nat
 * REDIRECT), same chains and matches, so iptables-save in a pod reads as
 * under Istio. Reference: ../shared/reference/istio-ambient.md 2.4.
 *
 *   mangle PREROUTING -> ISTIO_PRERT   [ours: TCP first packet without SYN, conntrack
 *   mangle OUTPUT     -> ISTIO_OUTPUT   entry not marked 0x1000 => DROP; new TCP entry
 *                                       => CONNMARK or 0x2000]
 *                                      mark 0x539/0xfff => CONNMARK set 0x111/0xfff (PRERT)
 *                                      connmark 0x111/0xfff => restore mark (OUTPUT)
 *   nat PREROUTING    -> ISTIO_PRERT   [ours: connmark 0x1000 ACCEPT] probe source ACCEPT;
 *                                      other TCP (not to loopback, 15008 or marked)
 *                                      => REDIRECT 15006
 *   nat OUTPUT        -> ISTIO_OUTPUT  [ours: connmark 0x1000 ACCEPT] probe ACCEPT;
 *                                      [DNS => 15053]; mark 0x111 ACCEPT; lo ACCEPT;
 *                                      other TCP => REDIRECT 15001
 *   [raw, DNS only]                    CT zone 1 for DNS to/from ztunnel
 *   ip rule fwmark 0x111/0xfff pref 32764 lookup 100; local 0.0.0.0/0 (::/0) dev lo table 100
 *
 * Both families always (a pod with no IPv6 address of its own still has a
 * link-local one); IPv6 is left out only where the kernel has none in the
 * namespace. Connections open at enrollment stay direct: their conntrack
 * entries get mark 0x1000 (created where conntrack had none), and nothing
 * else may start without SYN (inpod_ct.c says why and how).
 *
 * Generation is pure (text in iptables-save form, fed to iptables-restore
 * --noflush). Applying runs iptables-save/-restore in a child process that
 * joins the pod's namespace (the caller's threads stay where they are) and
 * programs the rule, route and conntrack over netlink from sockets made
 * inside it.
 */
#ifndef MESH_LIB_INPOD_H
#define MESH_LIB_INPOD_H

#include <stdbool.h>
#include <stddef.h>

#define INPOD_MARK            0x539 /* ztunnel's sockets (SO_MARK 1337) */
#define INPOD_MASK            0xfff
#define INPOD_CONN_MARK       0x111 /* connections ztunnel opened into the pod */
/*
 * Conntrack mark bits of ours, above Istio's mask 0xfff (0x539, 0x111; its
 * old node-level marks 0x040-0x400 were under it too):
 */
#define INPOD_CT_EXISTING     0x1000 /* open when the pod was enrolled: stays direct */
#define INPOD_CT_NEW          0x2000 /* started (with SYN) under the rules */
#define INPOD_ROUTE_TABLE     100
#define INPOD_RULE_PREF       32764
#define INPOD_PORT_OUTBOUND   15001
#define INPOD_PORT_INBOUND    15006 /* plaintext */
#define INPOD_PORT_HBONE      15008 /* never redirected */
#define INPOD_PORT_DNS        15053
#define INPOD_PROBE_V4        "169.254.7.127" /* kubelet probes, SNATed on the node */
#define INPOD_PROBE_V6        "fd16:9254:7127:1337:ffff:ffff:ffff:ffff"
#define INPOD_CHAIN_PRERT     "ISTIO_PRERT"
#define INPOD_CHAIN_OUTPUT    "ISTIO_OUTPUT"
#define INPOD_TIMEOUT_DEFAULT 10000 /* ms, per command */

enum inpod_family { INPOD_IPV4 = 4, INPOD_IPV6 = 6 };

/* Zero-initialised options are Istio's defaults without DNS capture. */
struct inpod_opts {
    bool dns_capture;     /* REDIRECT DNS (udp, tcp 53) to 15053 and the raw CT zone rules */
    const char *probe_v4; /* probe SNAT source; NULL: INPOD_PROBE_V4 */
    const char *probe_v6; /* NULL: INPOD_PROBE_V6 */
    int timeout_ms;       /* per command; <= 0: INPOD_TIMEOUT_DEFAULT */
    const char *bin_dir;  /* iptables-save/-restore from here; NULL: $PATH, /usr/sbin, /sbin */
};

/*
 * Returns the rule set for family |f| as iptables-restore input in
 * iptables-save order (tables by name, our chains, jumps, rules; no policy
 * lines), heap-allocated; NULL if an address in |o| does not parse. This is
 * what iptables-save shows for our chains in a pod that had none.
 */
char *inpod_rules(enum inpod_family f, const struct inpod_opts *o);

/*
 * Returns the iptables-restore --noflush input that turns a namespace whose
 * iptables-save output is |saved| (NULL: empty) into one holding exactly one
 * copy of inpod_rules(): our chains are declared (created, or flushed if
 * present), jumps are added only where missing (extra copies deleted), and
 * our chains in tables the options no longer use (raw without DNS) go.
 * Heap-allocated; NULL if an address in |o| does not parse.
 */
char *inpod_apply_script(enum inpod_family f, const struct inpod_opts *o, const char *saved);

/*
 * Returns the input that deletes our jumps and chains from a namespace whose
 * iptables-save output is |saved|, and nothing else; "" when none are there.
 * Two transactions per table (nf_tables refuses to delete a chain emptied in
 * the same one). Heap-allocated.
 */
char *inpod_remove_script(const char *saved);

/*
 * Installs the rules in the network namespace |netns_fd| (an open
 * /proc/PID/ns/net or /run/netns/NAME; -1: the caller's own, for tests):
 * reads both families' tables, lists the pod's TCP connections, restores
 * the rules, then marks (or creates) the conntrack entries of those
 * connections and deletes TCP entries no socket had, then the routing.
 * Idempotent: a second call leaves one copy and reconciles changed options.
 * Blocking: two commands per family, each killed after o->timeout_ms, then
 * netlink calls (each bounded at 5 s). Returns 0, or a
 * negative errno (-ETIMEDOUT: a command hung and was killed; -EIO: a command
 * failed) with a message in |err| naming the step, and the command's stderr.
 * On failure the pod may hold part of the rules; inpod_remove() clears any part.
 */
int inpod_apply(int netns_fd, const struct inpod_opts *o, char *err, size_t errlen);

/*
 * Deletes what inpod_apply() creates (chains, jumps, ip rule, route, our
 * conntrack mark bits) and nothing else, both families; absent pieces are
 * fine, so it is idempotent too. Returns as inpod_apply().
 */
int inpod_remove(int netns_fd, const struct inpod_opts *o, char *err, size_t errlen);

/* An address on an interface of a namespace (inpod_addrs). */
struct inpod_addr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char b[16];
};

/*
 * The IPv4 and IPv6 addresses of every interface of namespace |netns_fd|
 * (-1: the caller's), by an rtnetlink dump (RTM_GETADDR) over a socket made
 * inside it: at most |max| into |out| (more are not counted). Returns how
 * many, or -errno with |err| set. Blocking, bounded at 5 s.
 */
int inpod_addrs(int netns_fd, struct inpod_addr *out, size_t max, char *err, size_t errlen);

#endif
