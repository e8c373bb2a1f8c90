/*
 * k8s_conv.c - the converter object (the view it derived from a store's
 * objects in effect and its memos, k8s_memo.c) and the public entry points.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8sconv/k8sconv_internal.h"

static void
conv_reset(struct k8s_conv *cv)
{
    k8s_memo_clear(cv);
    k8s_view_free(&cv->view);
    cv->view.last_epoch = K8S_EPOCH_NO_SERVICES; /* namespace views' epochs come after it */
    cv->store_id = 0;
}

struct k8s_conv *
k8s_conv_new(void)
{
    struct k8s_conv *cv = xcalloc(1, sizeof(*cv));

    cv->view.last_epoch = K8S_EPOCH_NO_SERVICES;
    return cv;
}

void
k8s_conv_free(struct k8s_conv *cv)
{
    if (cv == NULL)
        return;
    conv_reset(cv);
    free(cv);
}

/* Makes |cv| follow |st|: what it holds of another store is dropped (gens are per store). */
static void
follow(struct k8s_conv *cv, const struct k8s_store *st)
{
    if (cv->store_id != k8s_store_id(st))
        conv_reset(cv);
    cv->store_id = k8s_store_id(st);
    cv->st = st;
}

int
k8s_conv_build(struct k8s_conv *cv, const struct k8s_store *st, const struct k8s_build_opts *o,
               struct mesh_resources *out, struct k8s_diags *d)
{
    follow(cv, st);
    int rc = k8s_build(cv, o, out, d);
    cv->st = NULL;
    return rc;
}

size_t
k8s_conv_packed(const struct k8s_conv *cv)
{
    return cv->packed;
}

void
k8s_conv_diags(struct k8s_conv *cv, const struct k8s_store *st, struct k8s_diags *out)
{
    struct k8s_diags all = {0};

    follow(cv, st);
    k8s_store_diags_unsorted(st, &all);
    k8s_check_ports(cv, &all);
    k8s_authz_diags(cv, &all);
    k8s_waypoint_diags(st, &all);
    k8s_wpconf_diags(st, &all);
    k8s_diags_sort(&all);
    k8s_diags_append(out, &all);
    k8s_diags_clear(&all);
    cv->st = NULL;
}

int
k8s_build_resources(const struct k8s_store *st, const struct k8s_build_opts *o,
                    struct mesh_resources *out, struct k8s_diags *d)
{
    struct k8s_conv *cv = k8s_conv_new();
    int rc = k8s_conv_build(cv, st, o, out, d);

    k8s_conv_free(cv);
    return rc;
}

void
k8s_build_diags(const struct k8s_store *st, struct k8s_diags *out)
{
    struct k8s_conv *cv = k8s_conv_new();

    k8s_conv_diags(cv, st, out);
    k8s_conv_free(cv);
}
