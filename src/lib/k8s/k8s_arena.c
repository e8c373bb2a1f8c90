/*
 * k8s_arena.c - allocations for one protobuf message, freed together once it
 * is packed (the AuthorizationPolicy conversion here, and the converter).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

void *
k8s_arena_alloc(struct k8s_arena *a, size_t size)
{
    void *p = xcalloc(1, size);

    if (a->n % 64 == 0)
        a->v = xrealloc(a->v, (a->n + 64) * sizeof(*a->v));
    a->v[a->n++] = p;
    return p;
}

char *
k8s_arena_printf(struct k8s_arena *a, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    CHECK(n >= 0);
    if (a->n % 64 == 0)
        a->v = xrealloc(a->v, (a->n + 64) * sizeof(*a->v));
    a->v[a->n++] = s;
    return s;
}

void
k8s_arena_free(struct k8s_arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = 0;
}
