/*
 * cni_msg.c - the plugin's request to the node agent and the agent's answer.
 * One JSON object per datagram, {"v":1,...}; a field the receiver does not
 * know is ignored (a newer peer may add some), a wrong version is refused.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cni/cni.h"
#include "k8s/k8s.h"

static const char *const cmd_names[] = {
    [CNI_CMD_ADD] = "ADD", [CNI_CMD_DEL] = "DEL", [CNI_CMD_CHECK] = "CHECK"};
static const char *const verdict_names[] = {
    [CNI_V_ENROLLED] = "enrolled", [CNI_V_NOT_ENROLLED] = "not-enrolled",
    [CNI_V_PENDING] = "pending",   [CNI_V_DONE] = "done",
    [CNI_V_RETRY] = "retry",       [CNI_V_FAILED] = "failed",
};

const char *
cni_cmd_name(enum cni_cmd cmd)
{
    return (size_t)cmd < ARRAY_LEN(cmd_names) && cmd_names[cmd] ? cmd_names[cmd] : "?";
}

const char *
cni_verdict_name(enum cni_verdict v)
{
    return (size_t)v < ARRAY_LEN(verdict_names) && verdict_names[v] ? verdict_names[v] : "?";
}

static int __attribute__((format(printf, 4, 5)))
fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* Printable ASCII without quotes or backslashes: safe in logs and paths. */
static bool
plain(const char *s, const char *extra_bad)
{
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f || strchr(extra_bad, *s) != NULL)
            return false;
    return true;
}

/* The spec's container ID: alphanumerics, '_', '.', '-', starting with an alphanumeric. */
static bool
container_id_ok(const char *s)
{
    if (s[0] == '\0' || s[0] == '_' || s[0] == '.' || s[0] == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

static bool
netns_ok(const char *s)
{
    return s[0] == '/' && plain(s, "\"\\") && strstr(s, "/../") == NULL &&
           (strlen(s) < 3 || strcmp(s + strlen(s) - 3, "/..") != 0);
}

static bool
ip_ok(const char *s)
{
    unsigned char bin[sizeof(struct in6_addr)];
    return inet_pton(strchr(s, ':') ? AF_INET6 : AF_INET, s, bin) == 1;
}

static int
copy(char *dst, size_t cap, const char *src, const char *what, char *err, size_t errlen)
{
    if (src == NULL)
        src = "";
    if (strlen(src) >= cap)
        return fail(-EINVAL, err, errlen, "%s longer than %zu bytes", what, cap - 1);
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

int
cni_req_set(struct cni_req *r, enum cni_cmd cmd, const char *ns, const char *name, const char *uid,
            const char *container_id, const char *netns, const cni_ip *ips, size_t n_ips, char *err,
            size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (cmd != CNI_CMD_ADD && cmd != CNI_CMD_DEL && cmd != CNI_CMD_CHECK)
        return fail(-EINVAL, err, errlen, "unknown command");
    r->cmd = cmd;
    if (copy(r->ns, sizeof(r->ns), ns, "pod namespace", err, errlen) < 0 ||
        copy(r->name, sizeof(r->name), name, "pod name", err, errlen) < 0 ||
        copy(r->uid, sizeof(r->uid), uid, "pod uid", err, errlen) < 0 ||
        copy(r->container_id, sizeof(r->container_id), container_id, "container id", err, errlen) <
            0 ||
        copy(r->netns, sizeof(r->netns), netns, "netns path", err, errlen) < 0)
        return -EINVAL;
    if (!k8s_dns_label(r->ns, false))
        return fail(-EINVAL, err, errlen, "pod namespace \"%.64s\" is not a DNS label", r->ns);
    if (!k8s_dns_subdomain(r->name))
        return fail(-EINVAL, err, errlen, "pod name \"%.64s\" is not a DNS subdomain", r->name);
    if (!plain(r->uid, "\"\\/"))
        return fail(-EINVAL, err, errlen, "pod uid has characters outside printable ASCII");
    if (!container_id_ok(r->container_id))
        return fail(-EINVAL, err, errlen, "container id \"%.64s\" is not [A-Za-z0-9_.-]",
                    r->container_id);
    if ((r->netns[0] != '\0' || cmd != CNI_CMD_DEL) && !netns_ok(r->netns))
        return fail(-EINVAL, err, errlen, "netns \"%.64s\" is not an absolute path", r->netns);
    if (n_ips > CNI_IPS_MAX)
        return fail(-EINVAL, err, errlen, "more than %d addresses", CNI_IPS_MAX);
    for (size_t i = 0; i < n_ips; i++) {
        size_t len = strnlen(ips[i], sizeof(cni_ip));
        if (len == sizeof(cni_ip) || !ip_ok(ips[i]))
            return fail(-EINVAL, err, errlen, "address %zu is not an IP address", i);
        memcpy(r->ips[i], ips[i], len); /* the rest stays zero: requests compare whole */
    }
    r->n_ips = n_ips;
    return 0;
}

static int
dump(json_t *o, char *out, size_t cap)
{
    size_t n = json_dumpb(o, out, cap, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n >= cap)
        return -MESH_ELIMIT;
    out[n] = '\0';
    return (int)n;
}

int
cni_req_encode(const struct cni_req *r, char *out, size_t cap)
{
    json_t *ips = json_array();
    for (size_t i = 0; i < r->n_ips; i++)
        json_array_append_new(ips, json_string(r->ips[i]));
    return dump(json_pack("{si ss ss ss ss ss ss so}", "v", CNI_MSG_VERSION, "cmd",
                          cni_cmd_name(r->cmd), "namespace", r->ns, "name", r->name, "uid", r->uid,
                          "containerId", r->container_id, "netns", r->netns, "ips", ips),
                out, cap);
}

int
cni_reply_encode(const struct cni_reply *r, char *out, size_t cap)
{
    return dump(json_pack("{si ss ss}", "v", CNI_MSG_VERSION, "verdict",
                          cni_verdict_name(r->verdict), "message", r->message),
                out, cap);
}

/* Parses the envelope: an object of our version within the caps. NULL with |err| filled. */
static json_t *
load(const char *buf, size_t n, char *err, size_t errlen)
{
    json_error_t je;
    json_t *o, *v;

    if (n > CNI_MSG_MAX || !cni_json_depth_ok(buf, n, 4)) {
        fail(0, err, errlen, "message over the caps (%d bytes, depth 4)", CNI_MSG_MAX);
        return NULL;
    }
    o = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL) {
        fail(0, err, errlen, "not JSON: %s", je.text);
        return NULL;
    }
    v = json_object_get(o, "v");
    if (!json_is_object(o) || !json_is_integer(v) || json_integer_value(v) != CNI_MSG_VERSION) {
        fail(0, err, errlen, "not a version %d message", CNI_MSG_VERSION);
        json_decref(o);
        return NULL;
    }
    return o;
}

static const char *
str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int
cni_req_decode(struct cni_req *r, const char *buf, size_t n, char *err, size_t errlen)
{
    json_t *o = load(buf, n, err, errlen);
    json_t *ips, *e;
    cni_ip addrs[CNI_IPS_MAX];
    enum cni_cmd cmd = 0;
    const char *c;
    size_t i;
    int rc = -MESH_EPROTO;

    memset(r, 0, sizeof(*r));
    if (o == NULL)
        return -MESH_EPROTO;
    c = str(o, "cmd");
    for (i = 1; c != NULL && i < ARRAY_LEN(cmd_names); i++)
        if (strcmp(c, cmd_names[i]) == 0)
            cmd = (enum cni_cmd)i;
    ips = json_object_get(o, "ips");
    if (cmd == 0) {
        fail(0, err, errlen, "unknown cmd");
        goto out;
    }
    if (!json_is_array(ips) || json_array_size(ips) > CNI_IPS_MAX) {
        fail(0, err, errlen, "ips must be a list of at most %d addresses", CNI_IPS_MAX);
        goto out;
    }
    json_array_foreach(ips, i, e)
    {
        if (!json_is_string(e) || json_string_length(e) >= sizeof(cni_ip)) {
            fail(0, err, errlen, "ips[%zu] is not an address", i);
            goto out;
        }
        memcpy(addrs[i], json_string_value(e), json_string_length(e) + 1);
    }
    if (str(o, "namespace") == NULL || str(o, "name") == NULL || str(o, "uid") == NULL ||
        str(o, "containerId") == NULL || str(o, "netns") == NULL) {
        fail(0, err, errlen, "namespace, name, uid, containerId and netns must be strings");
        goto out;
    }
    if (cni_req_set(r, cmd, str(o, "namespace"), str(o, "name"), str(o, "uid"),
                    str(o, "containerId"), str(o, "netns"), addrs, json_array_size(ips), err,
                    errlen) == 0)
        rc = 0;
out:
    json_decref(o);
    return rc;
}

int
cni_reply_decode(struct cni_reply *r, const char *buf, size_t n, char *err, size_t errlen)
{
    json_t *o = load(buf, n, err, errlen);
    const char *v, *m;
    int rc = -MESH_EPROTO;

    memset(r, 0, sizeof(*r));
    if (o == NULL)
        return -MESH_EPROTO;
    v = str(o, "verdict");
    m = str(o, "message");
    for (size_t i = 1; v != NULL && i < ARRAY_LEN(verdict_names); i++)
        if (strcmp(v, verdict_names[i]) == 0)
            r->verdict = (enum cni_verdict)i;
    if (r->verdict == 0 || m == NULL)
        fail(0, err, errlen, "unknown verdict or no message");
    else {
        /* Cut, not refused: the message is only shown to the runtime. */
        snprintf(r->message, sizeof(r->message), "%s", m);
        for (char *p = r->message; *p; p++)
            if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
                *p = '?'; /* ASCII only: a cut UTF-8 sequence would not re-encode */
        rc = 0;
    }
    json_decref(o);
    return rc;
}
