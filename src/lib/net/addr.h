/*
 * addr.h - IP addresses and "IP:port" text as HBONE uses them.
 *
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, as a dual-stack socket reports
 * IPv4 peers) are normalised to IPv4 everywhere, so lookups and policy see one
 * form of each address.
 */
#ifndef MESH_LIB_ADDR_H
#define MESH_LIB_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ipaddr {
    uint8_t family; /* AF_INET or AF_INET6; 0 = unset */
    uint8_t b[16];  /* network order; IPv4 uses b[0..3] */
};

/* "198.18.0.1:15008" or "[2001:db8::1]:15008": 47 chars + NUL for IPv6. */
#define ADDR_STRLEN 64
#define IPADDR_STRLEN 48 /* INET6_ADDRSTRLEN + 2 */

/* Parses a textual IP (no brackets, no port). Returns 0 or -EINVAL. */
int ipaddr_parse(const char *s, struct ipaddr *ip);
/* From 4 or 16 raw bytes (the xDS encoding). Returns 0 or -EINVAL. */
int ipaddr_from_bytes(const void *p, size_t len, struct ipaddr *ip);
bool ipaddr_eq(const struct ipaddr *a, const struct ipaddr *b);
static inline size_t
ipaddr_len(const struct ipaddr *ip)
{
    return ip->family == 2 /* AF_INET */ ? 4 : 16;
}
/* Writes the textual IP into |out| (at least ADDR_STRLEN). Returns |out|. */
char *ipaddr_str(const struct ipaddr *ip, char *out);
/* Writes "ip:port" with IPv6 in brackets. Returns |out|. */
char *ipport_str(const struct ipaddr *ip, uint16_t port, char *out);

/*
 * Parses an HBONE authority "IP:port" or "[IPv6]:port" of |len| bytes.
 * Rejects hostnames, missing or zero ports, unbracketed IPv6 and junk.
 * Returns 0 or -EINVAL.
 */
int authority_parse(const char *s, size_t len, struct ipaddr *ip, uint16_t *port);

/* sockaddr conversions; the sockaddr side is always AF_INET6-capable storage. */
void sockaddr_to_ipport(const struct sockaddr *sa, struct ipaddr *ip, uint16_t *port);
socklen_t ipport_to_sockaddr(const struct ipaddr *ip, uint16_t port, struct sockaddr_storage *ss);

#endif
