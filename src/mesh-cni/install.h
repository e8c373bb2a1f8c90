/*
 * install.h - mesh-cni as the node's CNI installer (istio-cni's install-cni):
 * the amesh-cni binary copied into the host's CNI bin dir, and our entry kept
 * last in the chain of the primary CNI configuration of the host's conf dir.
 *
 * The primary configuration is the one the kubelet and the container
 * runtimes use: the lexically first *.conflist, *.conf or *.json (libcni's
 * order; hidden files skipped). Our entry is put in at start and again each
 * time the conf dir changes (inotify, lib/dirwatch, plus its periodic
 * resync), so a primary plugin's installer that rewrites its file gets it
 * back; a file that already has it, unchanged, is not touched. No primary
 * configuration yet: we wait (logged) and are not ready. Files are written
 * to a hidden temporary in the same directory and renamed over the old one.
 *
 * On stop with |uninstall|, the entry is taken out of the file and the
 * binary removed, as istio-cni does on uninstall (--cni-keep: left).
 */
#ifndef MESH_CNI_INSTALL_H
#define MESH_CNI_INSTALL_H

#include <stdbool.h>
#include <stddef.h>

#include "cni/cni.h"
#include "loop/loop.h"

#define INSTALL_BIN_MAX     ((size_t)64 << 20) /* the amesh-cni we copy */
#define INSTALL_DIR_MAX     1024               /* entries of the conf dir looked at */
#define INSTALL_DEBOUNCE_MS 20

struct install_opts {
    const char *bin_dir;    /* NULL: no copy */
    const char *conf_dir;   /* NULL: no chain */
    const char *plugin_bin; /* the amesh-cni to copy */
    struct cni_chain_entry entry;
};

struct install;

/* Copies the binary (an error is fatal: |err|), then follows the conf dir. */
struct install *install_start(struct loop *l, const struct install_opts *o, char *err,
                              size_t errlen);
/* True once our entry is in the primary configuration (always true without a conf dir). */
bool install_ready(const struct install *in);
/* Stops following; with |uninstall|, takes the entry out and removes the binary. Accepts NULL. */
void install_stop(struct install *in, bool uninstall);

#endif
