/*
 * tabwriter.c - aligned text columns as istioctl prints them (Go's
 * text/tabwriter with space padding): every column but the last is padded to
 * its widest cell plus |pad| spaces; widths count UTF-8 characters.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "meshctl.h"

struct table {
    size_t n_cols;
    char **cells; /* row-major, n_rows * n_cols */
    size_t n_rows, cap_rows;
};

/* A copy of |s| safe to print on a terminal: control characters become '?'. */
static char *
clean(const char *s)
{
    char *c = xstrdup(s ? s : "");
    for (unsigned char *p = (unsigned char *)c; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    return c;
}

static size_t
width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xc0) != 0x80; /* count lead bytes, not continuation bytes */
    return n;
}

struct table *
table_new(size_t n_cols, const char *const *header)
{
    struct table *t = xcalloc(1, sizeof(*t));
    t->n_cols = n_cols;
    table_add(t, header);
    return t;
}

void
table_add(struct table *t, const char *const *cells)
{
    if (t->n_rows == t->cap_rows) {
        t->cap_rows = t->cap_rows ? t->cap_rows * 2 : 16;
        t->cells = xrealloc(t->cells, t->cap_rows * t->n_cols * sizeof(*t->cells));
    }
    for (size_t i = 0; i < t->n_cols; i++)
        t->cells[t->n_rows * t->n_cols + i] = clean(cells[i]);
    t->n_rows++;
}

void
table_print(struct table *t, FILE *f, size_t pad)
{
    size_t *w = xcalloc(t->n_cols, sizeof(*w));

    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols; c++) {
            size_t n = width(t->cells[r * t->n_cols + c]);
            if (n > w[c])
                w[c] = n;
        }
    for (size_t r = 0; r < t->n_rows; r++) {
        /* Trailing empty cells print nothing, so lines never end in spaces. */
        size_t last = t->n_cols;
        while (last > 1 && t->cells[r * t->n_cols + last - 1][0] == '\0')
            last--;
        for (size_t c = 0; c < last; c++) {
            const char *s = t->cells[r * t->n_cols + c];
            fputs(s, f);
            if (c + 1 < last)
                fprintf(f, "%*s", (int)(w[c] - width(s) + pad), "");
        }
        fputc('\n', f);
    }
    free(w);
}

void
table_free(struct table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
