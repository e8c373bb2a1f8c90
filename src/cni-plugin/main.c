/*
 * main.c - amesh-cni, run by a container runtime (CNI spec 1.0) with
 * CNI_COMMAND and friends in the environment and the network configuration
 * on stdin. Chained after the primary plugin:
 *
 *   ADD    asks the node agent to put the pod in the mesh if it is enrolled,
 *          and passes prevResult through unchanged
 *   DEL    tells the agent the pod's sandbox is gone
 *   CHECK  asks the agent whether the pod is as it should be
 *   VERSION the spec versions spoken
 *
 * Errors are the spec's error object on stdout and exit status 1. Pods
 * without Kubernetes arguments (CNI_ARGS K8S_POD_NAMESPACE/K8S_POD_NAME) and
 * pods of excludeNamespaces pass through without asking the agent.
 *
 * When the agent cannot be reached, ADD fails with code 11 ("try again
 * later", the runtime retries the sandbox) for every pod not excluded: the
 * plugin has no API-server client, so it cannot tell an ambient pod from
 * another, and letting an ambient pod start outside the mesh would bypass its
 * policies silently. istio-cni's plugin asks the API server first and fails
 * only ambient pods; here non-ambient pods wait for the agent too, and the
 * namespaces that must start without it (the agent's own, kube-system) are
 * listed in excludeNamespaces. DEL succeeds when the agent is unreachable
 * (nothing of the pod is left to forget once the agent is gone, and a failing
 * DEL blocks the pod's removal forever).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "amesh-cni"
#include "amesh_cni.h"
#include "base/base.h"
#include "log/log.h"

#define CNI_ARGS_MAX 4096

static const char *out_version = CNI_VERSION_LATEST; /* the configuration's, once known */

static int __attribute__((format(printf, 2, 3))) fail(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* ASCII only: a cut UTF-8 sequence would not encode */
        if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
            *p = '?';
    json_t *o = json_pack("{ss si ss}", "cniVersion", out_version, "code", code, "msg", msg);
    json_dumpf(o, stdout, JSON_COMPACT);
    json_decref(o);
    fputc('\n', stdout);
    fflush(stdout);
    log_error("%s", msg);
    return 1;
}

/*
 * The Kubernetes arguments the runtime passes in CNI_ARGS ("K=V;K=V"); others
 * (IgnoreUnknown, K8S_POD_INFRA_CONTAINER_ID: CNI_CONTAINERID already names
 * the sandbox) are skipped.
 */
struct k8s_args {
    char ns[256], name[256], uid[256];
};

static int
parse_args(const char *s, struct k8s_args *a)
{
    static const struct {
        const char *key;
        size_t off;
    } keys[] = {
        {"K8S_POD_NAMESPACE", offsetof(struct k8s_args, ns)},
        {"K8S_POD_NAME", offsetof(struct k8s_args, name)},
        {"K8S_POD_UID", offsetof(struct k8s_args, uid)},
    };

    memset(a, 0, sizeof(*a));
    if (s == NULL)
        return 0;
    if (strlen(s) > CNI_ARGS_MAX)
        return fail(CNI_ERR_ENV, "CNI_ARGS longer than %d bytes", CNI_ARGS_MAX);
    while (*s) {
        const char *end = strchr(s, ';'), *eq = strchr(s, '=');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len > 0) {
            if (eq == NULL || eq >= s + len || eq == s)
                return fail(CNI_ERR_ENV, "CNI_ARGS: \"%.*s\" is not KEY=VALUE",
                            (int)(len > 64 ? 64 : len), s);
            for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
                if (strlen(keys[i].key) != (size_t)(eq - s) ||
                    strncmp(s, keys[i].key, (size_t)(eq - s)) != 0)
                    continue;
                size_t vlen = len - (size_t)(eq - s) - 1;
                if (vlen >= 256)
                    return fail(CNI_ERR_ENV, "CNI_ARGS: %s longer than 255 bytes", keys[i].key);
                memcpy((char *)a + keys[i].off, eq + 1, vlen);
            }
        }
        s += len;
        if (*s == ';')
            s++;
    }
    return 0;
}

static const char *
need(const char *var, int *rc)
{
    const char *v = getenv(var);
    if ((v == NULL || v[0] == '\0') && *rc == 0)
        *rc = fail(CNI_ERR_ENV, "%s is not set", var);
    return v;
}

static int
print_prev(const struct cni_conf *c)
{
    if (json_dumpf(c->prev_result, stdout, JSON_COMPACT) < 0 || fputc('\n', stdout) == EOF ||
        fflush(stdout) != 0)
        return 1; /* stdout gone: the runtime reads nothing either way */
    return 0;
}

/* Reads stdin up to the cap; returns the length, or -1 with the error printed. */
static ssize_t
read_stdin(char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fail(CNI_ERR_IO, "reading stdin: %s", strerror(errno));
            return -1;
        }
        if (r == 0)
            return (ssize_t)n;
        n += (size_t)r;
        if (n == cap) { /* |cap| is one over the limit: more than that is an error */
            fail(CNI_ERR_DECODE, "configuration larger than %d bytes", CNI_STDIN_MAX);
            return -1;
        }
    }
}

static int
cmd_version(const char *buf, size_t n)
{
    static const char *const v[] = {CNI_VERSIONS};
    struct cni_conf c;
    char err[256];
    json_t *list = json_array();

    /* The answer speaks the caller's version when it is one of ours (stdin may be empty). */
    cni_conf_parse(&c, buf, n, err, sizeof(err));
    if (c.version != NULL && cni_version_supported(c.version))
        out_version = c.version;
    for (size_t i = 0; i < ARRAY_LEN(v); i++)
        json_array_append_new(list, json_string(v[i]));
    json_t *o = json_pack("{ss so}", "cniVersion", out_version, "supportedVersions", list);
    json_dumpf(o, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(o);
    cni_conf_free(&c);
    return 0;
}

static int
exchange(const struct cni_conf *c, enum cni_cmd cmd, const struct k8s_args *a,
         struct cni_reply *reply, int *rc)
{
    struct cni_req req;
    char err[512];
    const char *netns = getenv("CNI_NETNS");

    if (cni_req_set(&req, cmd, a->ns, a->name, a->uid, getenv("CNI_CONTAINERID"),
                    netns ? netns : "", c->ips, c->n_ips, err, sizeof(err)) < 0) {
        *rc = fail(CNI_ERR_ENV, "%s", err);
        return -EINVAL;
    }
    uint64_t t0 = clock_mono_ms();
    int r = agent_exchange(c->socket, &req, c->timeout_ms, reply, err, sizeof(err));
    if (r == 0)
        log_info("%s %s/%s: %s in %llu ms%s%s", cni_cmd_name(cmd), a->ns, a->name,
                 cni_verdict_name(reply->verdict), (unsigned long long)(clock_mono_ms() - t0),
                 reply->message[0] ? ": " : "", reply->message);
    else if (r != -ENOENT && r != -ECONNREFUSED && r != -ETIMEDOUT)
        *rc = fail(CNI_ERR_IO, "%s %s/%s: %s", cni_cmd_name(cmd), a->ns, a->name, err);
    else
        snprintf(reply->message, sizeof(reply->message), "%s", err);
    return r;
}

static int
cmd_add(const struct cni_conf *c, const struct k8s_args *a)
{
    struct cni_reply reply;
    int rc = 0;

    need("CNI_CONTAINERID", &rc);
    need("CNI_NETNS", &rc);
    need("CNI_IFNAME", &rc);
    need("CNI_PATH", &rc);
    if (rc != 0)
        return rc;
    if (c->prev_result == NULL)
        return fail(CNI_ERR_CONFIG, "no prevResult: amesh-cni must be chained after the plugin "
                                    "that sets up the pod's interface");
    if (a->ns[0] == '\0' || a->name[0] == '\0') {
        log_info("ADD %s: not a Kubernetes pod (no K8S_POD_NAMESPACE/NAME), passed through",
                 getenv("CNI_CONTAINERID"));
        return print_prev(c);
    }
    if (cni_conf_excluded(c, a->ns)) {
        log_info("ADD %s/%s: namespace excluded, passed through", a->ns, a->name);
        return print_prev(c);
    }
    int r = exchange(c, CNI_CMD_ADD, a, &reply, &rc);
    if (rc != 0)
        return rc;
    if (r < 0)
        return fail(CNI_ERR_TRY_AGAIN, "ADD %s/%s: %s; try again later", a->ns, a->name,
                    reply.message);
    switch (reply.verdict) {
    case CNI_V_ENROLLED:
    case CNI_V_NOT_ENROLLED:
    case CNI_V_PENDING:
        return print_prev(c);
    case CNI_V_RETRY:
        return fail(CNI_ERR_TRY_AGAIN, "ADD %s/%s: the node agent says: %s; try again later", a->ns,
                    a->name, reply.message);
    default:
        return fail(CNI_ERR_AGENT, "ADD %s/%s: the node agent refused the pod (%s): %s", a->ns,
                    a->name, cni_verdict_name(reply.verdict), reply.message);
    }
}

static int
cmd_del(const struct cni_conf *c, const struct k8s_args *a)
{
    struct cni_reply reply;
    int rc = 0;

    need("CNI_CONTAINERID", &rc);
    need("CNI_IFNAME", &rc);
    need("CNI_PATH", &rc);
    if (rc != 0 || a->ns[0] == '\0' || a->name[0] == '\0' || cni_conf_excluded(c, a->ns))
        return rc;
    int r = exchange(c, CNI_CMD_DEL, a, &reply, &rc);
    if (rc != 0)
        return rc;
    if (r < 0) {
        log_warn("DEL %s/%s: %s; nothing to forget", a->ns, a->name, reply.message);
        return 0;
    }
    if (reply.verdict == CNI_V_RETRY)
        return fail(CNI_ERR_TRY_AGAIN, "DEL %s/%s: the node agent says: %s; try again later", a->ns,
                    a->name, reply.message);
    return 0;
}

static int
cmd_check(const struct cni_conf *c, const struct k8s_args *a)
{
    struct cni_reply reply;
    int rc = 0;

    if (strcmp(c->version, "0.4.0") < 0) /* "0.3.0", "0.3.1": CHECK came with 0.4.0 */
        return fail(CNI_ERR_VERSION, "cniVersion %s does not allow CHECK", c->version);
    need("CNI_CONTAINERID", &rc);
    need("CNI_NETNS", &rc);
    need("CNI_IFNAME", &rc);
    need("CNI_PATH", &rc);
    if (rc != 0)
        return rc;
    if (c->prev_result == NULL)
        return fail(CNI_ERR_CONFIG, "CHECK without prevResult");
    if (a->ns[0] == '\0' || a->name[0] == '\0' || cni_conf_excluded(c, a->ns))
        return 0;
    int r = exchange(c, CNI_CMD_CHECK, a, &reply, &rc);
    if (rc != 0)
        return rc;
    if (r < 0)
        return fail(CNI_ERR_TRY_AGAIN, "CHECK %s/%s: %s; try again later", a->ns, a->name,
                    reply.message);
    if (reply.verdict == CNI_V_RETRY)
        return fail(CNI_ERR_TRY_AGAIN, "CHECK %s/%s: %s", a->ns, a->name, reply.message);
    if (reply.verdict != CNI_V_DONE)
        return fail(CNI_ERR_AGENT, "CHECK %s/%s: %s", a->ns, a->name, reply.message);
    return 0;
}

int
main(void)
{
    static char buf[CNI_STDIN_MAX + 1];
    const char *cmd = getenv("CNI_COMMAND");
    struct cni_conf c;
    struct k8s_args a;
    char err[512];
    int rc;

    log_set_level(LOG_WARN); /* the runtime's log gets failures; logLevel asks for more */
    if (cmd == NULL || cmd[0] == '\0')
        return fail(CNI_ERR_ENV, "CNI_COMMAND is not set");
    ssize_t n = read_stdin(buf, sizeof(buf));
    if (n < 0)
        return 1;
    if (strcmp(cmd, "VERSION") == 0)
        return cmd_version(buf, (size_t)n);
    rc = cni_conf_parse(&c, buf, (size_t)n, err, sizeof(err));
    if (c.version != NULL && cni_version_supported(c.version))
        out_version = c.version;
    if (rc != CNI_OK) {
        rc = fail(rc, "%s", err);
        cni_conf_free(&c);
        return rc;
    }
    if (c.log_level >= 0)
        log_set_level((enum log_level)c.log_level);
    if (parse_args(getenv("CNI_ARGS"), &a) != 0)
        rc = 1;
    else if (strcmp(cmd, "ADD") == 0)
        rc = cmd_add(&c, &a);
    else if (strcmp(cmd, "DEL") == 0)
        rc = cmd_del(&c, &a);
    else if (strcmp(cmd, "CHECK") == 0)
        rc = cmd_check(&c, &a);
    else
        rc = fail(CNI_ERR_ENV, "unknown CNI_COMMAND \"%.32s\"", cmd);
    cni_conf_free(&c);
    return rc;
}
