/*
 * k8s_yaml.c - turns Kubernetes YAML (several documents per file) into JSON
 * values, the form every Kubernetes object has on the API server, and records
 * the line of each value so later errors can point at it.
 *
 * Plain scalars are typed as Kubernetes' YAML reader (go-yaml v2, YAML 1.1)
 * types them: null, booleans including yes/no/on/off, integers (decimal, 0x,
 * leading-0 octal, with '_' separators) and floats; quoted and block scalars
 * are strings. Unlike that reader, duplicate keys and merge keys ("<<") are
 * errors, so that a typo cannot silently override a field. Everything a file
 * controls is capped (values, nesting, documents, string length); aliases are
 * expanded and count against the caps, so an alias bomb stops early.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

/* ---- Line map: open addressing on (pointer, key) ---- */

struct line_ent {
    const void *p; /* NULL: free slot */
    char *key;     /* NULL for the value itself */
    int line;
};

struct k8s_lines {
    int refs;
    struct line_ent *v;
    size_t cap; /* power of two */
    size_t n;
};

static size_t
line_hash(const void *p, const char *key)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL;

    if (key != NULL)
        h = k8s_hash(h, key, strlen(key));
    return (size_t)(h ^ (h >> 29));
}

static bool
line_match(const struct line_ent *e, const void *p, const char *key)
{
    if (e->p != p)
        return false;
    if (key == NULL || e->key == NULL)
        return key == e->key;
    return strcmp(key, e->key) == 0;
}

static void
lines_put(struct k8s_lines *l, const void *p, const char *key, int line)
{
    if ((l->n + 1) * 2 > l->cap) {
        struct line_ent *old = l->v;
        size_t old_cap = l->cap;
        l->cap = old_cap ? old_cap * 2 : 64;
        l->v = xcalloc(l->cap, sizeof(*l->v));
        l->n = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].p != NULL) {
                size_t j = line_hash(old[i].p, old[i].key) & (l->cap - 1);
                while (l->v[j].p != NULL)
                    j = (j + 1) & (l->cap - 1);
                l->v[j] = old[i];
                l->n++;
            }
        free(old);
    }
    size_t j = line_hash(p, key) & (l->cap - 1);
    while (l->v[j].p != NULL) {
        if (line_match(&l->v[j], p, key)) {
            l->v[j].line = line;
            return;
        }
        j = (j + 1) & (l->cap - 1);
    }
    l->v[j].p = p;
    l->v[j].key = key ? xstrdup(key) : NULL;
    l->v[j].line = line;
    l->n++;
}

int
k8s_lines_get(const struct k8s_lines *l, const void *v, const char *key)
{
    if (l == NULL || l->cap == 0 || v == NULL)
        return 0;
    size_t j = line_hash(v, key) & (l->cap - 1);
    while (l->v[j].p != NULL) {
        if (line_match(&l->v[j], v, key))
            return l->v[j].line;
        j = (j + 1) & (l->cap - 1);
    }
    return 0;
}

int
k8s_doc_line_of(const struct k8s_doc *doc, const json_t *v)
{
    int line = k8s_lines_get(doc->lines, v, NULL);
    return line ? line : doc->line;
}

int
k8s_doc_key_line(const struct k8s_doc *doc, const json_t *parent, const char *key)
{
    int line = k8s_lines_get(doc->lines, parent, key);
    return line ? line : k8s_doc_line_of(doc, parent);
}

struct k8s_lines *
k8s_lines_ref(struct k8s_lines *l)
{
    if (l != NULL)
        l->refs++;
    return l;
}

void
k8s_lines_unref(struct k8s_lines *l)
{
    if (l == NULL || --l->refs > 0)
        return;
    for (size_t i = 0; i < l->cap; i++)
        free(l->v[i].key);
    free(l->v);
    free(l);
}

/* ---- YAML to JSON ---- */

struct yctx {
    yaml_document_t doc;
    const char *file;
    struct k8s_lines *lines;
    size_t n_nodes; /* over the whole file */
    struct k8s_diags *d;
};

static int
yfail(struct yctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    k8s_diag_vadd(c->d, c->file, n ? (int)n->start_mark.line + 1 : 0, K8S_ERROR, NULL, fmt, ap);
    va_end(ap);
    return -MESH_ECONFIG;
}

static bool
one_of(const char *s, const char *const *set)
{
    for (; *set != NULL; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

/* Integers as go-yaml v2 reads them: '_' dropped, then Go's base prefixes (0x, 0o, 0). */
static bool
plain_int(const char *s, json_int_t *out)
{
    char buf[72];
    size_t n = 0;
    char *end;

    for (; *s != '\0'; s++) {
        if (*s == '_')
            continue;
        if (n + 1 >= sizeof(buf))
            return false;
        buf[n++] = *s;
    }
    buf[n] = '\0';
    char *p = buf + (buf[0] == '-' || buf[0] == '+');
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        base = 16;
    else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) {
        /* strtoll knows no "0o": drop the 'o' in place. */
        memmove(p + 1, p + 2, strlen(p + 2) + 1);
        base = 8;
    } else if (p[0] == '0' && p[1] != '\0')
        base = 8;
    if (!isxdigit((unsigned char)p[base == 16 ? 2 : 0]))
        return false;
    errno = 0;
    long long v = strtoll(buf, &end, base);
    if (*end != '\0' || errno != 0)
        return false; /* out of range: a float, as in Go */
    *out = (json_int_t)v;
    return true;
}

static bool
plain_float(const char *s, double *out)
{
    char buf[128];
    size_t n = 0;
    bool digit = false;
    char *end;

    for (; *s != '\0'; s++) {
        if (*s == '_')
            continue;
        if (strchr("0123456789.eE+-", *s) == NULL || n + 1 >= sizeof(buf))
            return false;
        digit |= isdigit((unsigned char)*s) != 0;
        buf[n++] = *s;
    }
    buf[n] = '\0';
    if (!digit)
        return false;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end != '\0' || errno != 0 || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static json_t *
plain_scalar(const char *s, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"y",    "Y",    "yes", "Yes", "YES", "true",
                                        "True", "TRUE", "on",  "On",  "ON",  NULL};
    static const char *const falses[] = {"n",     "N",     "no",  "No",  "NO",  "false",
                                         "False", "FALSE", "off", "Off", "OFF", NULL};
    json_int_t i;
    double f;

    if (one_of(s, nulls))
        return json_null();
    if (one_of(s, trues))
        return json_true();
    if (one_of(s, falses))
        return json_false();
    if (strchr("+-.0123456789", s[0]) != NULL) {
        if (plain_int(s, &i))
            return json_integer(i);
        if (plain_float(s, &f))
            return json_real(f);
    }
    return json_stringn(s, len);
}

static int conv(struct yctx *c, yaml_node_t *n, int depth, json_t **out);

static int
conv_scalar(struct yctx *c, yaml_node_t *n, json_t **out)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;

    if (strlen(s) != len)
        return yfail(c, n, "a string contains a NUL byte");
    if (len > K8S_MAX_STRING)
        return yfail(c, n, "a string is longer than %d bytes", K8S_MAX_STRING);
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
        *out = plain_scalar(s, len);
    else
        *out = json_stringn(s, len);
    if (*out == NULL)
        return yfail(c, n, "a string is not valid UTF-8");
    if (json_is_string(*out) || json_is_number(*out))
        lines_put(c->lines, *out, NULL, (int)n->start_mark.line + 1);
    return 0;
}

static int
conv_mapping(struct yctx *c, yaml_node_t *n, int depth, json_t *obj)
{
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&c->doc, p->value);
        json_t *jv = NULL;
        int rc;

        if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE)
            return yfail(c, k, "a mapping key must be a string");
        const char *key = (const char *)k->data.scalar.value;
        if (strlen(key) != k->data.scalar.length)
            return yfail(c, k, "a key contains a NUL byte");
        if (k->data.scalar.length > K8S_MAX_STRING)
            return yfail(c, k, "a key is longer than %d bytes", K8S_MAX_STRING);
        if (strcmp(key, "<<") == 0 && k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            return yfail(c, k, "YAML merge keys (<<) are not supported");
        if (json_object_get(obj, key) != NULL)
            return yfail(c, k, "\"%s\" is given twice", key);
        if ((rc = conv(c, v, depth + 1, &jv)) < 0)
            return rc;
        if (json_object_set_new(obj, key, jv) < 0)
            return yfail(c, k, "key \"%s\" is not valid UTF-8", key);
        lines_put(c->lines, obj, key, (int)k->start_mark.line + 1);
    }
    return 0;
}

static int
conv(struct yctx *c, yaml_node_t *n, int depth, json_t **out)
{
    int rc = 0;

    *out = NULL;
    if (depth > K8S_MAX_DEPTH)
        return yfail(c, n, "nested deeper than %d levels", K8S_MAX_DEPTH);
    if (++c->n_nodes > K8S_MAX_NODES)
        return yfail(c, n, "more than %d values in the file (aliases count each time)",
                     K8S_MAX_NODES);
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return conv_scalar(c, n, out);
    case YAML_SEQUENCE_NODE:
        *out = json_array();
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             i++) {
            json_t *e = NULL;
            yaml_node_t *en = yaml_document_get_node(&c->doc, *i);
            if (en == NULL)
                rc = yfail(c, n, "broken sequence");
            else
                rc = conv(c, en, depth + 1, &e);
            if (rc < 0)
                break;
            json_array_append_new(*out, e);
        }
        break;
    case YAML_MAPPING_NODE:
        *out = json_object();
        rc = conv_mapping(c, n, depth, *out);
        break;
    default:
        return yfail(c, n, "unexpected YAML node");
    }
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
        return rc;
    }
    lines_put(c->lines, *out, NULL, (int)n->start_mark.line + 1);
    return 0;
}

static int
syntax_error(struct yctx *c, const yaml_parser_t *p, const char *data, size_t len)
{
    unsigned long line = (unsigned long)p->problem_mark.line + 1;

    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++)
            line += data[i] == '\n';
    }
    if (p->context != NULL)
        k8s_diag_add(c->d, c->file, (int)line, K8S_ERROR, NULL, "YAML syntax error: %s: %s",
                     p->context, p->problem ? p->problem : "?");
    else
        k8s_diag_add(c->d, c->file, (int)line, K8S_ERROR, NULL, "YAML syntax error: %s",
                     p->problem ? p->problem : "?");
    return -MESH_ECONFIG;
}

void
k8s_docs_free(struct k8s_docs *docs)
{
    for (size_t i = 0; i < docs->n; i++) {
        json_decref(docs->v[i].json);
        k8s_lines_unref(docs->v[i].lines);
    }
    free(docs->v);
    docs->v = NULL;
    docs->n = 0;
}

static bool
empty_doc(const yaml_node_t *root)
{
    return root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0 &&
           root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

int
k8s_yaml_parse(const char *file, const char *data, size_t len, struct k8s_docs *out,
               struct k8s_diags *d)
{
    yaml_parser_t parser;
    struct yctx c = {.file = file, .d = d};
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (len > K8S_MAX_FILE_BYTES) {
        k8s_diag_add(d, file, 0, K8S_ERROR, NULL, "larger than %d bytes", K8S_MAX_FILE_BYTES);
        return -MESH_ECONFIG;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    for (;;) {
        if (!yaml_parser_load(&parser, &c.doc)) {
            rc = syntax_error(&c, &parser, data, len);
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&c.doc);
        if (root == NULL) {
            yaml_document_delete(&c.doc);
            break; /* end of the stream */
        }
        if (!empty_doc(root)) {
            struct k8s_doc doc = {.line = (int)root->start_mark.line + 1};
            if (out->n >= K8S_MAX_OBJECTS) {
                rc = yfail(&c, root, "more than %d documents", K8S_MAX_OBJECTS);
            } else {
                c.lines = xcalloc(1, sizeof(*c.lines));
                c.lines->refs = 1;
                rc = conv(&c, root, 0, &doc.json);
                doc.lines = c.lines;
                c.lines = NULL;
                if (rc == 0) {
                    out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
                    out->v[out->n++] = doc;
                } else {
                    k8s_lines_unref(doc.lines);
                }
            }
        }
        yaml_document_delete(&c.doc);
        if (rc < 0)
            break;
    }
    yaml_parser_delete(&parser);
    if (rc < 0)
        k8s_docs_free(out);
    return rc;
}
