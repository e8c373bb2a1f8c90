/*
 * sandboxes.h - the pod sandboxes the CNI plugin reported, kept on disk so a
 * restarted mesh-cni still knows each enrolled pod's network namespace (the
 * plugin is called once per sandbox, never again): without them its first
 * snapshot would tell ztunnel to drop every such pod, whose rules still send
 * all traffic to ztunnel.
 *
 * One file per pod, "<namespace>_<name>" (a DNS label and a DNS subdomain:
 * no '_' or '/' in either), holding the plugin's request as it came (the
 * format lib/cni decodes and fuzz_cni covers); written to a temporary file
 * and renamed. The directory belongs to mesh-cni (mode 0700); it sits on
 * /var/run, so it lasts as long as the sandboxes' namespaces do.
 */
#ifndef MESH_CNI_SANDBOXES_H
#define MESH_CNI_SANDBOXES_H

#include <stddef.h>

#include "cni/cni.h"

/* Creates |dir| (0700) if needed; 0 or -1 with |err| filled. */
int sandboxes_open(const char *dir, char *err, size_t errlen);
/* Writes |r| as its pod's file; 0 or -errno. */
int sandboxes_save(const char *dir, const struct cni_req *r);
void sandboxes_forget(const char *dir, const char *ns, const char *name);

typedef void sandboxes_fn(void *arg, const struct cni_req *r);
/*
 * Calls |fn| for each file that decodes, names its own pod and whose network
 * namespace still exists, at most |max| times; removes the others (stale:
 * the sandbox went while we were not running). Returns the number loaded.
 */
size_t sandboxes_load(const char *dir, size_t max, sandboxes_fn *fn, void *arg);

#endif
