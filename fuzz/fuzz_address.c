/*
 * fuzz_address.c - xDS Address resources (model_pb_decode_address), then the
 * decoded object through a model store, a snapshot and its lookups.
 */
#include <stdint.h>
#include <stdio.h>

#include "model/model_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct model_address a;
    char err[512];

    if (model_pb_decode_address(data, size, &a, err, sizeof(err)) < 0)
        return 0;
    /* Twice under one name (replace), once under another: sharing and the name table. */
    struct model_store *st = model_store_new();
    const char *name = a.workload ? a.workload->uid : a.service->key;
    model_store_put(st, name, data, size, err, sizeof(err));
    model_store_put(st, "other", data, size, err, sizeof(err));
    model_store_put_address(st, name, &a);
    struct model *m = model_store_snapshot(st);
    for (size_t i = 0; i < m->n_workloads; i++) {
        const struct workload *w = m->workloads[i];
        for (size_t j = 0; j < w->n_addrs; j++)
            model_workload_by_ip(m, &w->addrs[j]);
        model_workload_by_uid(m, w->uid);
    }
    for (size_t i = 0; i < m->n_services; i++) {
        const struct service *s = m->services[i];
        uint16_t port;
        for (size_t j = 0; j < s->n_vips; j++)
            model_service_by_vip(m, &s->vips[j]);
        for (size_t j = 0; j < s->n_ports; j++)
            model_pick_endpoint(m, s, s->ports[j].service_port, 2 /* AF_INET */, 7, &port);
    }
    model_store_remove(st, "other");
    model_store_free(st);
    model_unref(m);
    return 0;
}
