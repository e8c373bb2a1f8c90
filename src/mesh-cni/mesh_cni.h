/*
 * mesh_cni.h - the node agent: follows enrollment and puts enrolled pods of
 * this node into the mesh without restarting them (reference 2.3 - 2.5).
 *
 *   main.c    flags, start-up, signals
 *   enroll.c  the desired set (enrolled pods of this node with a network
 *             namespace) against what is in place: rules in the pod's
 *             namespace (lib/inpod), the pod handed to ztunnel (lib/zds)
 */
#ifndef MESH_CNI_H
#define MESH_CNI_H

#include <stdbool.h>
#include <stddef.h>

#include "loop/loop.h"

struct cni_opts {
    const char *zds_socket;
    const char *config_dir;
    const char *node;
    unsigned debounce_ms;
};

struct cni;

struct cni *cni_start(struct loop *l, const struct cni_opts *o, char *err, size_t errlen);
/* Stops following; rules stay in the pods (a restarted agent takes them over). */
void cni_stop(struct cni *c);
size_t cni_n_enrolled(const struct cni *c);

#endif
