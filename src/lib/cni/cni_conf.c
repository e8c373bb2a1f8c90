/*
 * cni_conf.c - the network configuration on the plugin's stdin, and the JSON
 * depth check both parsers run before jansson sees the input.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cni/cni.h"
#include "log/log.h"

static const char *const versions[] = {CNI_VERSIONS};

bool
cni_version_supported(const char *v)
{
    for (size_t i = 0; i < ARRAY_LEN(versions); i++)
        if (strcmp(v, versions[i]) == 0)
            return true;
    return false;
}

bool
cni_json_depth_ok(const char *buf, size_t n, int max)
{
    int depth = 0;
    bool in_str = false;

    for (size_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (in_str) {
            if (ch == '\\')
                i++; /* the escaped character cannot end the string */
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"')
            in_str = true;
        else if (ch == '[' || ch == '{') {
            if (++depth > max)
                return false;
        } else if ((ch == ']' || ch == '}') && depth > 0)
            depth--;
    }
    return true;
}

static int __attribute__((format(printf, 4, 5)))
fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* A string field, optional: NULL when absent; |*bad| when present but not a string. */
static const char *
opt_str(json_t *o, const char *key, bool *bad)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

/* "198.18.5.2/24" -> "198.18.5.2", checked and normalised. */
static bool
cidr_addr(const char *s, cni_ip out)
{
    char tmp[INET6_ADDRSTRLEN + 8];
    unsigned char bin[sizeof(struct in6_addr)];
    const char *slash = strchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    int af;

    if (len == 0 || len >= INET6_ADDRSTRLEN)
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    af = strchr(tmp, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(af, tmp, bin) != 1)
        return false;
    if (slash != NULL) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || p < 0 ||
            p > (af == AF_INET ? 32 : 128))
            return false;
    }
    return inet_ntop(af, bin, out, INET6_ADDRSTRLEN) != NULL;
}

static int
parse_prev(struct cni_conf *c, char *err, size_t errlen)
{
    json_t *ips, *ip;
    size_t i;

    if (!json_is_object(c->prev_result))
        return fail(CNI_ERR_CONFIG, err, errlen, "prevResult is not an object");
    ips = json_object_get(c->prev_result, "ips");
    if (ips == NULL)
        return CNI_OK; /* a result without addresses is valid (the pod has none to report) */
    if (!json_is_array(ips))
        return fail(CNI_ERR_CONFIG, err, errlen, "prevResult.ips is not a list");
    json_array_foreach(ips, i, ip)
    {
        bool bad = false;
        const char *a = json_is_object(ip) ? opt_str(ip, "address", &bad) : NULL;
        if (a == NULL || bad)
            return fail(CNI_ERR_CONFIG, err, errlen, "prevResult.ips[%zu]: no address string", i);
        if (c->n_ips == CNI_IPS_MAX)
            return fail(CNI_ERR_CONFIG, err, errlen, "prevResult.ips: more than %d addresses",
                        CNI_IPS_MAX);
        if (!cidr_addr(a, c->ips[c->n_ips]))
            return fail(CNI_ERR_CONFIG, err, errlen,
                        "prevResult.ips[%zu].address \"%.64s\" is not "
                        "an address with a prefix length",
                        i, a);
        c->n_ips++;
    }
    return CNI_OK;
}

static int
parse_settings(struct cni_conf *c, char *err, size_t errlen)
{
    bool bad = false;
    const char *s;
    json_t *v;

    if ((s = opt_str(c->root, "agentSocket", &bad)) != NULL || bad) {
        if (bad || s[0] != '/' || strlen(s) >= sizeof(c->socket))
            return fail(CNI_ERR_CONFIG, err, errlen,
                        "agentSocket must be an absolute path shorter than %zu bytes",
                        sizeof(c->socket));
        snprintf(c->socket, sizeof(c->socket), "%s", s);
    }
    if ((v = json_object_get(c->root, "timeoutMs")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 100 ||
            json_integer_value(v) > CNI_TIMEOUT_MS_MAX)
            return fail(CNI_ERR_CONFIG, err, errlen, "timeoutMs must be an integer, 100 to %d",
                        CNI_TIMEOUT_MS_MAX);
        c->timeout_ms = (unsigned)json_integer_value(v);
    }
    if ((s = opt_str(c->root, "logLevel", &bad)) != NULL || bad) {
        if (bad || (c->log_level = log_parse_level(s)) < 0)
            return fail(CNI_ERR_CONFIG, err, errlen, "logLevel must be error, warn, info or debug");
    }
    if ((v = json_object_get(c->root, "excludeNamespaces")) != NULL) {
        size_t i;
        json_t *e;
        if (!json_is_array(v) || json_array_size(v) > CNI_EXCLUDE_MAX)
            return fail(CNI_ERR_CONFIG, err, errlen,
                        "excludeNamespaces must be a list of at most %d names", CNI_EXCLUDE_MAX);
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e))
                return fail(CNI_ERR_CONFIG, err, errlen, "excludeNamespaces[%zu] is not a string",
                            i);
            c->exclude[c->n_exclude++] = json_string_value(e);
        }
    }
    return CNI_OK;
}

int
cni_conf_parse(struct cni_conf *c, const char *buf, size_t n, char *err, size_t errlen)
{
    json_error_t je;
    bool bad = false;

    memset(c, 0, sizeof(*c));
    snprintf(c->socket, sizeof(c->socket), "%s", CNI_SOCKET_DEFAULT);
    c->timeout_ms = CNI_TIMEOUT_MS;
    c->log_level = -1;
    if (n > CNI_STDIN_MAX)
        return fail(CNI_ERR_DECODE, err, errlen, "configuration larger than %d bytes",
                    CNI_STDIN_MAX);
    if (!cni_json_depth_ok(buf, n, CNI_DEPTH_MAX))
        return fail(CNI_ERR_DECODE, err, errlen, "configuration nested deeper than %d",
                    CNI_DEPTH_MAX);
    c->root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
    if (c->root == NULL)
        return fail(CNI_ERR_DECODE, err, errlen, "configuration is not JSON: %s (line %d)", je.text,
                    je.line);
    if (!json_is_object(c->root))
        return fail(CNI_ERR_DECODE, err, errlen, "configuration is not a JSON object");
    c->version = opt_str(c->root, "cniVersion", &bad);
    if (c->version == NULL)
        return fail(CNI_ERR_CONFIG, err, errlen, "cniVersion missing or not a string");
    if (!cni_version_supported(c->version))
        return fail(CNI_ERR_VERSION, err, errlen,
                    "cniVersion \"%.32s\" not supported (0.3.0, 0.3.1, 0.4.0, 1.0.0)", c->version);
    c->name = opt_str(c->root, "name", &bad);
    c->type = opt_str(c->root, "type", &bad);
    if (bad || c->name == NULL || c->type == NULL)
        return fail(CNI_ERR_CONFIG, err, errlen, "name and type must be strings");
    c->prev_result = json_object_get(c->root, "prevResult");
    if (c->prev_result != NULL) {
        int rc = parse_prev(c, err, errlen);
        if (rc != CNI_OK)
            return rc;
    }
    return parse_settings(c, err, errlen);
}

void
cni_conf_free(struct cni_conf *c)
{
    json_decref(c->root);
    c->root = NULL;
    c->prev_result = NULL;
}

bool
cni_conf_excluded(const struct cni_conf *c, const char *ns)
{
    for (size_t i = 0; i < c->n_exclude; i++)
        if (strcmp(c->exclude[i], ns) == 0)
            return true;
    return false;
}
