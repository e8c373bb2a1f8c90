/*
 * fuzz_k8s_api.c - API objects (JSON, one per line, as watch events carry
 * them) into the k8s store through k8s_store_put_json(), then the conversion.
 * Lines go to four sources in turn, so objects replace each other and the
 * last-good-state rules run; a line "-" forgets the next source instead;
 * commits happen now and then, as meshd does at the end of a loop iteration,
 * and the queries between them must only see committed objects. Every
 * resource built must decode.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "k8s/k8s.h"
#include "k8sconv/k8sconv.h"

#include "fuzz_k8s_convert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_conv *cv = k8s_conv_new();
    struct k8s_diags d = {0};
    const char *p = (const char *)data, *end = p + size;
    unsigned n = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char name[32];
        snprintf(name, sizeof(name), "api:Obj/%u", n % 4);
        if (len == 1 && p[0] == '-') {
            k8s_store_forget(st, name, n % 3 == 0);
        } else {
            json_t *j = json_loadb(p, len, JSON_DECODE_ANY, NULL);
            if (j != NULL)
                k8s_store_put_json(st, name, j, &d, n % 3 == 0);
            json_decref(j);
        }
        /* Between commits the view is the last committed one: walk it. */
        for (int k = 0; k < K8S_KIND_COUNT; k++)
            for (size_t i = 0; i < k8s_store_count(st, (enum k8s_kind)k); i++)
                (void)k8s_obj_name(k8s_store_at(st, (enum k8s_kind)k, i));
        if (n % 5 == 4) {
            k8s_store_commit(st);
            fuzz_k8s_convert(cv, st, NULL, &d);
        }
        n++;
        p += len + 1;
    }
    k8s_store_commit(st);
    fuzz_k8s_convert(cv, st, NULL, &d);
    k8s_conv_diags(cv, st, &d);
    for (size_t i = 0; i < d.n; i++)
        free(k8s_diag_str(&d.v[i]));
    k8s_diags_clear(&d);
    k8s_conv_free(cv);
    k8s_store_free(st);
    return 0;
}
