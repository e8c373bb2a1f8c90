/*
 * cluster_manifest.c - reading what apply and delete are given: files,
 * directories (their *.yaml and *.yml, in name order) or stdin, every
 * document and List item, checked with meshd's own parser first (file:line),
 * then each object's kind, namespace and name.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "cluster.h"
#include "k8s/k8s.h"

static bool
has_suffix(const char *s, const char *sfx)
{
    size_t n = strlen(s), m = strlen(sfx);
    return n >= m && strcmp(s + n - m, sfx) == 0;
}

/* Parses one file (or stdin for "-") into |in|, checking it with meshd's parser too. */
static void
read_file(struct input *in, const char *path)
{
    size_t len;
    bool stdin_ = strcmp(path, "-") == 0;
    char *data = stdin_ ? NULL : cl_read_file(path, &len);
    struct k8s_diags d = {0};
    struct k8s_docs docs = {0};

    if (stdin_) {
        size_t cap = 65536;
        data = xmalloc(cap);
        len = 0;
        size_t r;
        while ((r = fread(data + len, 1, cap - len - 1, stdin)) > 0)
            if ((len += r) + 1 == cap)
                data = xrealloc(data, cap *= 2);
        data[len] = '\0';
    }
    if (data == NULL) {
        fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
        in->errors++;
        return;
    }
    /* What meshd would refuse, with file:line (warnings, such as kinds it ignores, are not ours).
     */
    struct k8s_store *st = k8s_store_new();
    k8s_store_load_buf(st, path, data, len, &d);
    for (size_t i = 0; i < d.n; i++)
        if (d.v[i].severity == K8S_ERROR) {
            char *s = k8s_diag_str(&d.v[i]);
            fprintf(stderr, "error: %s\n", s);
            free(s);
            in->errors++;
        }
    k8s_diags_clear(&d);
    k8s_store_free(st);
    if (k8s_yaml_parse(path, data, len, &docs, &d) < 0) {
        for (size_t i = 0; i < d.n && in->errors == 0; i++) {
            char *s = k8s_diag_str(&d.v[i]);
            fprintf(stderr, "error: %s\n", s);
            free(s);
        }
        in->errors++;
    }
    for (size_t i = 0; i < docs.n; i++) {
        json_t *o = docs.v[i].json;
        const char *kind = js(o, "kind");
        size_t kl = kind ? strlen(kind) : 0;
        if (kl > 4 && strcmp(kind + kl - 4, "List") == 0 &&
            json_is_array(json_object_get(o, "items"))) {
            size_t j;
            json_t *item;
            json_array_foreach(json_object_get(o, "items"), j, item)
                json_array_append_new(in->docs, json_pack("{s:s, s:O}", "file", path, "obj", item));
        } else if (json_is_object(o)) {
            json_array_append_new(in->docs, json_pack("{s:s, s:O}", "file", path, "obj", o));
        }
    }
    k8s_docs_free(&docs);
    k8s_diags_clear(&d);
    free(data);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void
manifest_read(struct input *in, const char *path)
{
    struct stat st;
    if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char *names[4096];
        size_t n = 0;
        size_t plen = strlen(path);
        while (plen > 1 && path[plen - 1] == '/')
            plen--;
        while (d != NULL && (e = readdir(d)) != NULL && n < ARRAY_LEN(names))
            if (e->d_name[0] != '.' &&
                (has_suffix(e->d_name, ".yaml") || has_suffix(e->d_name, ".yml")))
                names[n++] = xasprintf("%.*s/%s", (int)plen, path, e->d_name);
        if (d != NULL)
            closedir(d);
        qsort(names, n, sizeof(*names), cmp_str);
        for (size_t i = 0; i < n; i++) {
            read_file(in, names[i]);
            free(names[i]);
        }
        return;
    }
    read_file(in, path);
}

/* Kind, namespace and name of |o|; prints why not and returns NULL when unusable. */
const struct kind_info *
manifest_identify(const json_t *o, const char *file, const char *dflt_ns, bool ns_given,
                  const char **ns, const char **name)
{
    const char *kind = jsd(o, "kind", ""), *api = jsd(o, "apiVersion", "");
    const struct kind_info *k = kind_lookup(kind, api);
    *name = js(o, "metadata.name");
    *ns = "";
    if (k == NULL) {
        fprintf(stderr,
                "error: resource mapping not found for name: \"%s\" from \"%s\": no matches "
                "for kind \"%s\" in version \"%s\"\n",
                *name ? *name : "", file, kind, api);
        return NULL;
    }
    bool label_only = strcmp(kind, "Namespace") == 0 || strcmp(kind, "Service") == 0;
    if (*name == NULL || !(label_only ? k8s_dns_label(*name, false) : k8s_dns_subdomain(*name))) {
        fprintf(stderr, "error: %s: %s \"%s\": metadata.name is not a valid name\n", file, kind,
                *name ? *name : "");
        return NULL;
    }
    if (!k->namespaced)
        return k;
    const char *own = js(o, "metadata.namespace");
    if (own != NULL && ns_given && strcmp(own, dflt_ns) != 0) {
        fprintf(stderr,
                "error: the namespace from the provided object \"%s\" does not match the "
                "namespace \"%s\". You must pass '--namespace=%s' to perform this "
                "operation.\n",
                own, dflt_ns, own);
        return NULL;
    }
    *ns = own ? own : dflt_ns;
    if (!k8s_dns_label(*ns, false)) {
        fprintf(stderr, "error: %s: namespace \"%s\" is not a valid name\n", file, *ns);
        return NULL;
    }
    return k;
}
