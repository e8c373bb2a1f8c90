/*
 * kube_url.c - the server URL of a kubeconfig and query-string escaping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube_proto.h"
#include "net/addr.h"

int
kube_server_parse(const char *url, struct kube_server *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "server \"%.100s\": only https:// servers are supported", url);
        return -1;
    }
    const char *h = url + 8, *hend, *p;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (hend == NULL)
            goto bad;
        h++;
        p = hend + 1;
    } else {
        hend = h + strcspn(h, ":/?#");
        p = hend;
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || hl >= sizeof(out->host))
        goto bad;
    memcpy(out->host, h, hl);
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)out->host[i] <= ' ' || out->host[i] == '@' || out->host[i] == '%')
            goto bad;
    struct ipaddr ip;
    bool v6 = strchr(out->host, ':') != NULL;
    if (v6 && (ipaddr_parse(out->host, &ip) != 0 || ip.family != 10 /* AF_INET6 */))
        goto bad;
    out->port = 443;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535)
            goto bad;
        out->port = (uint16_t)port;
        p = end;
    }
    if (*p == '?' || *p == '#')
        goto bad;
    if (*p == '/') {
        size_t pl = strlen(p);
        while (pl > 0 && p[pl - 1] == '/')
            pl--;
        if (pl >= sizeof(out->prefix) || memchr(p, '?', pl) != NULL || memchr(p, '#', pl) != NULL)
            goto bad;
        memcpy(out->prefix, p, pl);
    } else if (*p != '\0') {
        goto bad;
    }
    if (v6)
        snprintf(out->authority, sizeof(out->authority), "[%s]:%u", out->host, out->port);
    else
        snprintf(out->authority, sizeof(out->authority), "%s:%u", out->host, out->port);
    return 0;
bad:
    snprintf(err, errlen, "server \"%.100s\" is not a valid https://host[:port] URL", url);
    return -1;
}

bool
kube_query_add(char *out, size_t cap, const char *key, const char *val)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(out);
    int w = snprintf(out + n, cap - n, "%s%s=", n > 0 ? "&" : "", key);
    if (w < 0 || (size_t)w >= cap - n)
        return false;
    n += (size_t)w;
    for (const unsigned char *s = (const unsigned char *)val; *s != '\0'; s++) {
        bool plain = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                     (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' || *s == '_' || *s == '~';
        if (n + (plain ? 1 : 3) >= cap)
            return false;
        if (plain) {
            out[n++] = (char)*s;
        } else {
            out[n++] = '%';
            out[n++] = hex[*s >> 4];
            out[n++] = hex[*s & 15];
        }
    }
    out[n] = '\0';
    return true;
}
