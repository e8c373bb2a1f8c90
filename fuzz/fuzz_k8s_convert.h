/*
 * fuzz_k8s_convert.h - shared by fuzz_k8s and fuzz_k8s_api.
 */
#ifndef MESH_FUZZ_K8S_CONVERT_H
#define MESH_FUZZ_K8S_CONVERT_H

#include "k8s/k8s.h"
#include "k8sconv/k8sconv.h"

/* Builds the resources of |st| with |o| (NULL: defaults); aborts if one does not decode. */
void fuzz_k8s_convert(struct k8s_conv *cv, const struct k8s_store *st,
                      const struct k8s_build_opts *o, struct k8s_diags *d);

#endif
