/*
 * addr.c - IP address parsing and formatting, HBONE authorities.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "net/addr.h"

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void
normalise(struct ipaddr *ip)
{
    if (ip->family == AF_INET6 && memcmp(ip->b, v4mapped_prefix, 12) == 0) {
        memmove(ip->b, ip->b + 12, 4);
        memset(ip->b + 4, 0, 12);
        ip->family = AF_INET;
    }
}

int
ipaddr_parse(const char *s, struct ipaddr *ip)
{
    memset(ip, 0, sizeof(*ip));
    if (inet_pton(AF_INET, s, ip->b) == 1) {
        ip->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, ip->b) == 1) {
        ip->family = AF_INET6;
        normalise(ip);
        return 0;
    }
    return -EINVAL;
}

int
ipaddr_from_bytes(const void *p, size_t len, struct ipaddr *ip)
{
    memset(ip, 0, sizeof(*ip));
    if (len == 4)
        ip->family = AF_INET;
    else if (len == 16)
        ip->family = AF_INET6;
    else
        return -EINVAL;
    memcpy(ip->b, p, len);
    normalise(ip);
    return 0;
}

bool
ipaddr_eq(const struct ipaddr *a, const struct ipaddr *b)
{
    return a->family == b->family && memcmp(a->b, b->b, ipaddr_len(a)) == 0;
}

char *
ipaddr_str(const struct ipaddr *ip, char *out)
{
    if (ip->family == 0 || inet_ntop(ip->family, ip->b, out, ADDR_STRLEN) == NULL)
        snprintf(out, ADDR_STRLEN, "unknown");
    return out;
}

/* Appends the decimal |v| at |p|; returns the end. */
static char *
put_dec(char *p, unsigned v)
{
    char b[10];
    size_t n = 0;

    do
        b[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0)
        *p++ = b[--n];
    return p;
}

char *
ipport_str(const struct ipaddr *ip, uint16_t port, char *out)
{
    char a[IPADDR_STRLEN];

    if (ip->family == AF_INET) { /* by hand: the access log formats several per request */
        char *p = out;
        for (int i = 0; i < 4; i++) {
            p = put_dec(p, ip->b[i]);
            *p++ = i < 3 ? '.' : ':';
        }
        *put_dec(p, port) = '\0';
        return out;
    }
    if (ip->family == 0 || inet_ntop(ip->family, ip->b, a, sizeof(a)) == NULL)
        snprintf(a, sizeof(a), "unknown");
    if (ip->family == AF_INET6)
        snprintf(out, ADDR_STRLEN, "[%s]:%u", a, port);
    else
        snprintf(out, ADDR_STRLEN, "%s:%u", a, port);
    return out;
}

int
authority_parse(const char *s, size_t len, struct ipaddr *ip, uint16_t *port)
{
    char host[ADDR_STRLEN];
    size_t hlen, i;
    const char *p;

    if (len == 0 || len >= ADDR_STRLEN)
        return -EINVAL;
    if (s[0] == '[') {
        const char *end = memchr(s, ']', len);
        if (end == NULL || end + 1 >= s + len || end[1] != ':')
            return -EINVAL;
        hlen = (size_t)(end - s - 1);
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        p = end + 2;
        if (strchr(host, ':') == NULL) /* brackets are for IPv6 only */
            return -EINVAL;
    } else {
        const char *colon = memchr(s, ':', len);
        if (colon == NULL)
            return -EINVAL;
        hlen = (size_t)(colon - s);
        memcpy(host, s, hlen);
        host[hlen] = '\0';
        p = colon + 1;
        if (memchr(p, ':', len - hlen - 1) != NULL) /* unbracketed IPv6 */
            return -EINVAL;
    }
    size_t plen = len - (size_t)(p - s);
    if (plen == 0 || plen > 5 || (plen > 1 && p[0] == '0'))
        return -EINVAL;
    unsigned v = 0;
    for (i = 0; i < plen; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -EINVAL;
    if (ipaddr_parse(host, ip) < 0)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

void
sockaddr_to_ipport(const struct sockaddr *sa, struct ipaddr *ip, uint16_t *port)
{
    memset(ip, 0, sizeof(*ip));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        ip->family = AF_INET;
        memcpy(ip->b, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        ip->family = AF_INET6;
        memcpy(ip->b, &in6->sin6_addr, 16);
        *port = ntohs(in6->sin6_port);
        normalise(ip);
    } else {
        *port = 0;
    }
}

socklen_t
ipport_to_sockaddr(const struct ipaddr *ip, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (ip->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        memcpy(&in->sin_addr, ip->b, 4);
        return sizeof(*in);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    memcpy(&in6->sin6_addr, ip->b, 16);
    return sizeof(*in6);
}
