/*
 * kubeauth.c - TokenReview requests and answers, trusted node accounts, and
 * the caller's node from the store (see kubeauth.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s.h"
#include "kubeauth/kubeauth.h"

__attribute__((format(printf, 3, 4))) static int
fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool
b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

bool
kubeauth_token_plausible(const char *tok, size_t len)
{
    if (len == 0 || len > KUBEAUTH_MAX_TOKEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!b64url_char(tok[i]) && tok[i] != '.' && tok[i] != '=')
            return false;
    return true;
}

json_t *
kubeauth_review_request(const char *tok, size_t len)
{
    return json_pack("{s:s, s:s, s:{s:s#, s:[s]}}", "apiVersion", "authentication.k8s.io/v1",
                     "kind", "TokenReview", "spec", "token", tok, (int)len, "audiences",
                     KUBEAUTH_AUDIENCE);
}

/* A server's message for the log: printable ASCII only, cut to fit. */
static void
clean_copy(char *out, size_t outlen, const char *s)
{
    size_t j = 0;
    for (size_t i = 0; s[i] != '\0' && j + 1 < outlen; i++)
        out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (outlen > 0)
        out[j] = '\0';
}

/* The single string of extra |key|, or NULL (absent, empty, not one string). */
static const char *
extra_one(const json_t *extra, const char *key)
{
    const json_t *v = json_object_get(extra, key);
    if (!json_is_array(v) || json_array_size(v) != 1)
        return NULL;
    const char *s = json_string_value(json_array_get(v, 0));
    return s != NULL && s[0] != '\0' ? s : NULL;
}

static bool
has_audience(const json_t *auds)
{
    size_t i;
    const json_t *a;
    json_array_foreach(auds, i, a)
    {
        const char *s = json_string_value(a);
        if (s != NULL && strcmp(s, KUBEAUTH_AUDIENCE) == 0)
            return true;
    }
    return false;
}

/* A string value without NUL bytes (jansson allows them), or NULL. */
static const char *
plain_string(const json_t *v)
{
    const char *s = json_string_value(v);
    if (s == NULL || strlen(s) != json_string_length(v))
        return NULL;
    return s;
}

int
kubeauth_review_parse(const json_t *body, struct kubeauth_identity *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body))
        return fail(why, whylen, "TokenReview answer is not a JSON object");
    const char *kind = plain_string(json_object_get(body, "kind"));
    if (kind == NULL || strcmp(kind, "TokenReview") != 0)
        return fail(why, whylen, "answer is not a TokenReview (kind %.40s)", kind ? kind : "absent");
    const json_t *status = json_object_get(body, "status");
    if (!json_is_object(status))
        return fail(why, whylen, "TokenReview has no status");
    if (!json_is_true(json_object_get(status, "authenticated"))) {
        const char *e = plain_string(json_object_get(status, "error"));
        char msg[KUBEAUTH_WHY_MAX - 40];
        clean_copy(msg, sizeof(msg), e != NULL && e[0] != '\0' ? e : "no reason given");
        return fail(why, whylen, "API server did not authenticate the token: %s", msg);
    }
    if (!has_audience(json_object_get(status, "audiences")))
        return fail(why, whylen, "token is not for audience " KUBEAUTH_AUDIENCE);
    const json_t *user = json_object_get(status, "user");
    const char *name = plain_string(json_object_get(user, "username"));
    size_t plen = strlen(KUBEAUTH_SA_PREFIX);
    if (name == NULL || strncmp(name, KUBEAUTH_SA_PREFIX, plen) != 0)
        return fail(why, whylen, "token is not a service account's");
    const char *ns = name + plen, *colon = strchr(ns, ':');
    size_t ns_len = colon ? (size_t)(colon - ns) : 0;
    if (colon == NULL || ns_len == 0 || ns_len > KUBEAUTH_NS_MAX ||
        strlen(colon + 1) > KUBEAUTH_NAME_MAX)
        return fail(why, whylen, "service account name is malformed");
    memcpy(out->ns, ns, ns_len);
    out->ns[ns_len] = '\0';
    snprintf(out->sa, sizeof(out->sa), "%s", colon + 1);
    if (!k8s_dns_label(out->ns, false) || !k8s_dns_subdomain(out->sa))
        return fail(why, whylen, "service account name is malformed");

    const json_t *extra = json_object_get(user, "extra");
    const char *pod = extra_one(extra, KUBEAUTH_EXTRA_POD_NAME);
    const char *uid = extra_one(extra, KUBEAUTH_EXTRA_POD_UID);
    if (pod == NULL || uid == NULL)
        return fail(why, whylen, "token of %s/%s is not bound to a pod", out->ns, out->sa);
    if (strlen(pod) > KUBEAUTH_NAME_MAX || !k8s_dns_subdomain(pod) ||
        strlen(uid) > KUBEAUTH_UID_MAX || strlen(uid) != strcspn(uid, " \t\r\n"))
        return fail(why, whylen, "token of %s/%s names a malformed pod", out->ns, out->sa);
    snprintf(out->pod, sizeof(out->pod), "%s", pod);
    snprintf(out->pod_uid, sizeof(out->pod_uid), "%s", uid);
    return 0;
}

int
kubeauth_review_parse_buf(const char *buf, size_t len, struct kubeauth_identity *out, char *why,
                          size_t whylen)
{
    json_error_t err;
    memset(out, 0, sizeof(*out));
    if (len > KUBEAUTH_MAX_ANSWER)
        return fail(why, whylen, "TokenReview answer larger than %u bytes", KUBEAUTH_MAX_ANSWER);
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL)
        return fail(why, whylen, "TokenReview answer is not JSON: %.80s", err.text);
    int rc = kubeauth_review_parse(j, out, why, whylen);
    json_decref(j);
    return rc;
}

/* base64url without padding (RFC 7515 2) into |out|; returns the length or -1. */
static long
b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return bits >= 6 ? -1 : (long)n; /* one spare character is not base64url */
}

bool
kubeauth_token_expiry(const char *tok, size_t len, int64_t *exp)
{
    uint8_t payload[4096];
    const char *dot1 = memchr(tok, '.', len);
    if (dot1 == NULL)
        return false;
    const char *p = dot1 + 1, *end = tok + len;
    const char *dot2 = memchr(p, '.', (size_t)(end - p));
    if (dot2 == NULL)
        return false;
    long n = b64url_decode(p, (size_t)(dot2 - p), payload, sizeof(payload));
    if (n <= 0)
        return false;
    json_t *j = json_loadb((const char *)payload, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    const json_t *e = json_object_get(j, "exp");
    bool ok = json_is_integer(e) && json_integer_value(e) > 0;
    if (ok)
        *exp = (int64_t)json_integer_value(e);
    json_decref(j);
    return ok;
}

int
kubeauth_accounts_parse(const char *s, struct kubeauth_accounts *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    for (const char *p = s; *p != '\0';) {
        size_t n = strcspn(p, ",");
        const char *b = p, *e = p + n;
        p = *e == ',' ? e + 1 : e;
        while (b < e && *b == ' ')
            b++;
        while (e > b && e[-1] == ' ')
            e--;
        if (b == e)
            continue;
        const char *slash = memchr(b, '/', (size_t)(e - b));
        size_t ns_len = slash ? (size_t)(slash - b) : 0;
        size_t sa_len = slash ? (size_t)(e - slash - 1) : 0;
        if (out->n == KUBEAUTH_MAX_ACCOUNTS)
            return fail(err, errlen, "more than %d trusted node accounts", KUBEAUTH_MAX_ACCOUNTS);
        if (slash == NULL || ns_len == 0 || ns_len > KUBEAUTH_NS_MAX || sa_len == 0 ||
            sa_len > KUBEAUTH_NAME_MAX)
            return fail(err, errlen, "\"%.*s\" is not NAMESPACE/SERVICEACCOUNT",
                        (int)(e - b > 300 ? 300 : e - b), b);
        memcpy(out->v[out->n].ns, b, ns_len);
        out->v[out->n].ns[ns_len] = '\0';
        memcpy(out->v[out->n].sa, slash + 1, sa_len);
        out->v[out->n].sa[sa_len] = '\0';
        if (!k8s_dns_label(out->v[out->n].ns, false) || !k8s_dns_subdomain(out->v[out->n].sa))
            return fail(err, errlen, "\"%.*s\" is not NAMESPACE/SERVICEACCOUNT",
                        (int)(e - b > 300 ? 300 : e - b), b);
        out->n++;
    }
    return 0;
}

bool
kubeauth_accounts_has(const struct kubeauth_accounts *a, const char *ns, const char *sa)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].ns, ns) == 0 && strcmp(a->v[i].sa, sa) == 0)
            return true;
    return false;
}

int
kubeauth_decide(const struct kubeauth_identity *id, const struct k8s_store *st,
                const struct kubeauth_accounts *trusted, struct kubeauth_caller *out, char *why,
                size_t whylen)
{
    struct k8s_pod_info pi;

    memset(out, 0, sizeof(*out));
    out->id = *id;
    if (!k8s_pod_info(st, id->ns, id->pod, &pi))
        return fail(why, whylen, "token of %s/%s is bound to pod %s/%s, which meshd does not know",
                    id->ns, id->sa, id->ns, id->pod);
    if (strcmp(pi.uid, id->pod_uid) != 0)
        return fail(why, whylen,
                    "token of %s/%s is bound to pod %s/%s UID %s, but that pod now has UID %s "
                    "(deleted and recreated)",
                    id->ns, id->sa, id->ns, id->pod, id->pod_uid, pi.uid[0] ? pi.uid : "(none)");
    if (strcmp(pi.service_account, id->sa) != 0)
        return fail(why, whylen, "pod %s/%s runs as %s, not as the token's %s", id->ns, id->pod,
                    pi.service_account, id->sa);
    if (pi.terminated)
        return fail(why, whylen, "pod %s/%s has terminated", id->ns, id->pod);
    if (pi.node[0] == '\0' || strlen(pi.node) > KUBEAUTH_NAME_MAX)
        return fail(why, whylen, "pod %s/%s is not bound to a node", id->ns, id->pod);
    snprintf(out->node, sizeof(out->node), "%s", pi.node);
    out->trusted = trusted != NULL && kubeauth_accounts_has(trusted, id->ns, id->sa);
    return 0;
}

bool
kubeauth_may_obtain(const struct kubeauth_caller *c, const struct k8s_store *st, const char *ns,
                    const char *sa, char *why, size_t whylen)
{
    if (strcmp(ns, c->id.ns) == 0 && strcmp(sa, c->id.sa) == 0)
        return true;
    if (!c->trusted) {
        fail(why, whylen, "%s/%s is not a trusted node account: it may obtain only its own identity",
             c->id.ns, c->id.sa);
        return false;
    }
    if (k8s_sa_on_node(st, c->node, ns, sa))
        return true;
    fail(why, whylen, "no pod on node %s (of caller %s/%s) runs as service account %s/%s", c->node,
         c->id.ns, c->id.pod, ns, sa);
    return false;
}
