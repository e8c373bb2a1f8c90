/*
 * kube_config.c - where the API server is and how we prove who we are: a
 * kubeconfig file (the subset a mesh component needs: token, token file,
 * client certificate, CA) or the pod's in-cluster service-account files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/base.h"
#include "k8s/k8s.h"
#include "kube/kube_client_priv.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

char *
kube_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    size_t cap = st.st_size > 0 && (size_t)st.st_size <= max ? (size_t)st.st_size + 1 : 4097;
    char *buf = xmalloc(cap);
    size_t n = 0;
    for (;;) {
        if (n + 1 == cap) {
            if (cap - 1 >= max) {
                snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
                goto fail;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
fail:
    close(fd);
    free(buf);
    return NULL;
}

void
kube_config_free(struct kube_config *c)
{
    if (c == NULL)
        return;
    free(c->server);
    free(c->token);
    free(c->token_file);
    free(c->ca_pem);
    free(c->client_cert_pem);
    free(c->client_key_pem);
    free(c->namespace);
    memset(c, 0, sizeof(*c));
}

/* A token as files hold it: surrounding whitespace removed. */
void
kube_trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    size_t i = strspn(s, " \t\r\n");
    if (i > 0)
        memmove(s, s + i, n - i + 1);
}

/* ---- in-cluster ---- */

int
kube_config_in_cluster(const char *dir, struct kube_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (host == NULL || *host == '\0' || port == NULL || *port == '\0') {
        snprintf(err, errlen,
                 "not in a cluster: KUBERNETES_SERVICE_HOST and "
                 "KUBERNETES_SERVICE_PORT must be set");
        return -1;
    }
    if (dir == NULL)
        dir = SA_DIR;
    bool v6 = strchr(host, ':') != NULL;
    out->server = xasprintf("https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
    struct kube_server srv;
    if (kube_server_parse(out->server, &srv, err, errlen) != 0)
        goto fail;

    out->token_file = xasprintf("%s/token", dir);
    out->token = kube_read_file(out->token_file, KUBE_MAX_CONFIG_BYTES, NULL, err, errlen);
    if (out->token == NULL)
        goto fail;
    kube_trim(out->token);
    if (*out->token == '\0') {
        snprintf(err, errlen, "%s: empty token", out->token_file);
        goto fail;
    }
    char *ca = xasprintf("%s/ca.crt", dir);
    out->ca_pem = kube_read_file(ca, KUBE_MAX_CONFIG_BYTES, NULL, err, errlen);
    free(ca);
    if (out->ca_pem == NULL)
        goto fail;
    char *nsf = xasprintf("%s/namespace", dir);
    char e2[8];
    out->namespace = kube_read_file(nsf, 256, NULL, e2, sizeof(e2));
    free(nsf);
    if (out->namespace != NULL)
        kube_trim(out->namespace);
    if (out->namespace == NULL || *out->namespace == '\0') {
        free(out->namespace);
        out->namespace = xstrdup("default");
    }
    return 0;
fail:
    kube_config_free(out);
    return -1;
}

/* ---- kubeconfig ---- */

/* The entry of list |key| of |doc| whose "name" is |name|, then its member |inner|. */
static json_t *
named(const json_t *doc, const char *key, const char *name, const char *inner)
{
    json_t *list = json_object_get(doc, key);
    size_t i;
    json_t *e;
    if (!json_is_array(list))
        return NULL;
    json_array_foreach(list, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n != NULL && strcmp(n, name) == 0) {
            json_t *v = json_object_get(e, inner);
            return json_is_object(v) ? v : NULL;
        }
    }
    return NULL;
}

static const char *
str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL && *s != '\0' ? s : NULL;
}

/* |path| made absolute against |dir| when relative. */
static char *
resolve(const char *dir, const char *path)
{
    if (path[0] == '/' || dir == NULL)
        return xstrdup(path);
    return xasprintf("%s/%s", dir, path);
}

/* base64 (whitespace ignored) into a NUL-terminated heap string; NULL if malformed. */
static char *
b64_decode(const char *in)
{
    size_t n = strlen(in);
    char *clean = xmalloc(n + 1);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i] != ' ' && in[i] != '\n' && in[i] != '\r' && in[i] != '\t')
            clean[m++] = in[i];
    clean[m] = '\0';
    if (m == 0 || m % 4 != 0) {
        free(clean);
        return NULL;
    }
    size_t pad = (clean[m - 1] == '=') + (m > 1 && clean[m - 2] == '=');
    char *out = xmalloc(m / 4 * 3 + 1);
    int r = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)clean, (int)m);
    free(clean);
    if (r < 0 || (size_t)r < pad) {
        free(out);
        return NULL;
    }
    out[(size_t)r - pad] = '\0';
    return out;
}

/*
 * |key|-data (base64) or |key| (a file, relative to |dir|) of |o| into
 * *|out|; 0 when neither is there, -1 with |err| when the one given is bad.
 */
static int
data_or_file(const json_t *o, const char *key, const char *dir, char **out, char *err,
             size_t errlen)
{
    char dkey[64];
    snprintf(dkey, sizeof(dkey), "%s-data", key);
    const char *d = str(o, dkey);
    const char *f = str(o, key);
    if (d != NULL) {
        *out = b64_decode(d);
        if (*out == NULL) {
            snprintf(err, errlen, "%s is not valid base64", dkey);
            return -1;
        }
        return 0;
    }
    if (f != NULL) {
        char *p = resolve(dir, f);
        char e[200];
        *out = kube_read_file(p, KUBE_MAX_CONFIG_BYTES, NULL, e, sizeof(e));
        free(p);
        if (*out == NULL) {
            snprintf(err, errlen, "%s: %s", key, e);
            return -1;
        }
    }
    return 0;
}

static int
load_doc(const json_t *doc, const char *dir, const char *context, struct kube_config *out,
         char *err, size_t errlen)
{
    if (context == NULL)
        context = str(doc, "current-context");
    if (context == NULL) {
        snprintf(err, errlen, "no context given and no current-context");
        return -1;
    }
    json_t *ctx = named(doc, "contexts", context, "context");
    if (ctx == NULL) {
        snprintf(err, errlen, "context \"%s\" not found", context);
        return -1;
    }
    const char *cname = str(ctx, "cluster");
    json_t *cl = cname != NULL ? named(doc, "clusters", cname, "cluster") : NULL;
    if (cl == NULL) {
        snprintf(err, errlen, "context \"%s\": cluster \"%s\" not found", context,
                 cname != NULL ? cname : "");
        return -1;
    }
    const char *server = str(cl, "server");
    struct kube_server srv;
    if (server == NULL) {
        snprintf(err, errlen, "cluster \"%s\" has no server", cname);
        return -1;
    }
    if (kube_server_parse(server, &srv, err, errlen) != 0)
        return -1;
    out->server = xstrdup(server);
    out->insecure_skip_verify = json_is_true(json_object_get(cl, "insecure-skip-tls-verify"));
    if (data_or_file(cl, "certificate-authority", dir, &out->ca_pem, err, errlen) != 0)
        return -1;
    const char *ns = str(ctx, "namespace");
    out->namespace = xstrdup(ns != NULL ? ns : "default");

    const char *uname = str(ctx, "user");
    if (uname == NULL)
        return 0; /* anonymous */
    json_t *u = named(doc, "users", uname, "user");
    if (u == NULL) {
        snprintf(err, errlen, "context \"%s\": user \"%s\" not found", context, uname);
        return -1;
    }
    static const char *const refused[] = {"exec", "auth-provider", "username", "password"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (json_object_get(u, refused[i]) != NULL) {
            snprintf(err, errlen,
                     "user \"%s\": \"%s\" authentication is not supported (use a token, "
                     "tokenFile or a client certificate)",
                     uname, refused[i]);
            return -1;
        }
    const char *tok = str(u, "token");
    const char *tf = str(u, "tokenFile");
    if (tok != NULL) {
        out->token = xstrdup(tok);
    } else if (tf != NULL) {
        out->token_file = resolve(dir, tf);
        out->token = kube_read_file(out->token_file, KUBE_MAX_CONFIG_BYTES, NULL, err, errlen);
        if (out->token == NULL)
            return -1;
        kube_trim(out->token);
    }
    if (data_or_file(u, "client-certificate", dir, &out->client_cert_pem, err, errlen) != 0 ||
        data_or_file(u, "client-key", dir, &out->client_key_pem, err, errlen) != 0)
        return -1;
    if ((out->client_cert_pem == NULL) != (out->client_key_pem == NULL)) {
        snprintf(err, errlen,
                 "user \"%s\": a client certificate needs its key and a key its "
                 "certificate",
                 uname);
        return -1;
    }
    return 0;
}

int
kube_config_load_buf(const char *name, const char *data, size_t len, const char *dir,
                     const char *context, struct kube_config *out, char *err, size_t errlen)
{
    struct k8s_docs docs = {0};
    struct k8s_diags d = {0};
    memset(out, 0, sizeof(*out));
    if (k8s_yaml_parse(name, data, len, &docs, &d) != 0) {
        char *m = d.n > 0 ? k8s_diag_str(&d.v[0]) : NULL;
        snprintf(err, errlen, "%s", m != NULL ? m : "invalid YAML");
        free(m);
        k8s_diags_clear(&d);
        return -1;
    }
    k8s_diags_clear(&d);
    int rc = -1;
    if (docs.n != 1 || !json_is_object(docs.v[0].json))
        snprintf(err, errlen, "%s: a kubeconfig is one YAML mapping", name);
    else
        rc = load_doc(docs.v[0].json, dir, context, out, err, errlen);
    k8s_docs_free(&docs);
    if (rc != 0)
        kube_config_free(out);
    return rc;
}

int
kube_config_load_file(const char *path, const char *context, struct kube_config *out, char *err,
                      size_t errlen)
{
    size_t len;
    memset(out, 0, sizeof(*out));
    char *data = kube_read_file(path, KUBE_MAX_CONFIG_BYTES, &len, err, errlen);
    if (data == NULL)
        return -1;
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        free(dir);
        dir = xstrdup(".");
    } else if (slash == dir) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }
    int rc = kube_config_load_buf(path, data, len, dir, context, out, err, errlen);
    free(dir);
    free(data);
    return rc;
}
