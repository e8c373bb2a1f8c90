/*
 * token_gens.c - the per-node token generation table (see token_gens.h):
 * a sorted array, looked up by binary search on every authenticated call.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "casvc/token.h"
#include "casvc/token_gens.h"

struct gen_entry {
    char *node;
    uint64_t gen;
};

struct token_gens {
    struct gen_entry *v;
    size_t n, cap;
};

struct token_gens *
token_gens_new(void)
{
    return xcalloc(1, sizeof(struct token_gens));
}

void
token_gens_free(struct token_gens *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i].node);
    free(g->v);
    free(g);
}

static int
cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct gen_entry *)a)->node, ((const struct gen_entry *)b)->node);
}

static const char *
entry_node(const void *e)
{
    return ((const struct gen_entry *)e)->node;
}

/* Index of |node|, or of where it would go (with |found| false). */
static size_t
find(const struct token_gens *g, const char *node, bool *found)
{
    return bsearch_str(g->v, g->n, sizeof(*g->v), node, entry_node, found);
}

static void
append(struct token_gens *g, const char *node, size_t len, uint64_t gen)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->v = xrealloc(g->v, g->cap * sizeof(*g->v));
    }
    g->v[g->n].node = xmalloc(len + 1);
    memcpy(g->v[g->n].node, node, len);
    g->v[g->n].node[len] = '\0';
    g->v[g->n].gen = gen;
    g->n++;
}

/* Parses one "node gen" line of |n| bytes; 0 or -1 with |err|. */
static int
parse_line(struct token_gens *g, const char *line, size_t n, char *err, size_t errlen)
{
    char node[TOKEN_NODE_MAX + 1], num[24];
    const char *sp = memchr(line, ' ', n);
    size_t nl = sp ? (size_t)(sp - line) : 0, dl = sp ? n - nl - 1 : 0;
    if (sp == NULL || nl == 0 || nl > TOKEN_NODE_MAX || dl == 0 || dl > 19) {
        snprintf(err, errlen, "not \"<node> <generation>\"");
        return -1;
    }
    memcpy(node, line, nl);
    node[nl] = '\0';
    memcpy(num, sp + 1, dl);
    num[dl] = '\0';
    if (!token_node_valid(node)) {
        snprintf(err, errlen, "\"%s\" is not a node name", node);
        return -1;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < dl; i++) {
        if (num[i] < '0' || num[i] > '9' || (i == 0 && num[i] == '0')) {
            snprintf(err, errlen, "generation \"%s\" is not a positive decimal", num);
            return -1;
        }
        x = x * 10 + (uint64_t)(num[i] - '0');
    }
    if (x > INT64_MAX) {
        snprintf(err, errlen, "generation %s is too large", num);
        return -1;
    }
    if (g->n >= TOKEN_GENS_MAX_NODES) {
        snprintf(err, errlen, "more than %d nodes", TOKEN_GENS_MAX_NODES);
        return -1;
    }
    append(g, node, nl, x);
    return 0;
}

struct token_gens *
token_gens_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct token_gens *g = token_gens_new();
    char why[320];
    size_t lineno = 0;

    if (len > TOKEN_GENS_MAX_BYTES || memchr(text, 0, len) != NULL) {
        snprintf(err, errlen, "%s", len > TOKEN_GENS_MAX_BYTES ? "too large" : "not text");
        token_gens_free(g);
        return NULL;
    }
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        lineno++;
        if (end > i && text[i] != '#' && parse_line(g, text + i, end - i, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "line %zu: %s", lineno, why);
            token_gens_free(g);
            return NULL;
        }
        i = end + 1;
    }
    if (g->n > 0)
        qsort(g->v, g->n, sizeof(*g->v), cmp_entry);
    for (size_t i = 1; i < g->n; i++)
        if (strcmp(g->v[i - 1].node, g->v[i].node) == 0) {
            snprintf(err, errlen, "node %s is listed twice", g->v[i].node);
            token_gens_free(g);
            return NULL;
        }
    return g;
}

uint64_t
token_gens_get(const struct token_gens *g, const char *node)
{
    bool found;
    size_t i = find(g, node, &found);
    return found ? g->v[i].gen : 0;
}

size_t
token_gens_count(const struct token_gens *g)
{
    return g->n;
}

uint64_t
token_gens_bump(struct token_gens *g, const char *node)
{
    bool found;
    size_t i = find(g, node, &found);
    if (found) {
        if (g->v[i].gen >= INT64_MAX)
            return 0;
        return ++g->v[i].gen;
    }
    if (!token_node_valid(node) || g->n >= TOKEN_GENS_MAX_NODES)
        return 0;
    append(g, node, strlen(node), 1);
    /* append() put it last; move it to its place. */
    struct gen_entry e = g->v[g->n - 1];
    memmove(&g->v[i + 1], &g->v[i], (g->n - 1 - i) * sizeof(*g->v));
    g->v[i] = e;
    return 1;
}

char *
token_gens_format(const struct token_gens *g)
{
    static const char head[] = "# amesh node token generations (meshd token --revoke)\n";
    size_t cap = sizeof(head), len = sizeof(head) - 1;
    for (size_t i = 0; i < g->n; i++)
        cap += strlen(g->v[i].node) + 22;
    char *out = xmalloc(cap);
    memcpy(out, head, len + 1);
    for (size_t i = 0; i < g->n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s %" PRIu64 "\n", g->v[i].node,
                                g->v[i].gen);
    return out;
}
