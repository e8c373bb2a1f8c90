/*
 * fuzz_cni_chain.c - lib/cni's rewrite of the node's primary CNI
 * configuration (cni_chain_insert / cni_chain_remove), on any file a
 * primary plugin's installer (or anyone with write access to the conf dir)
 * could leave there.
 *
 * Byte 0: bit 0 set = the file is a .conflist, clear = a .conf; the rest is
 * the file. Properties: an error always says why; a rewritten file is a
 * .conflist with our entry last and once, that the insert leaves UNCHANGED
 * on a second pass (no rewrite loop with our own inotify events), and whose
 * removal gives back a chain without our entry that a second removal leaves
 * UNCHANGED.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cni/cni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const excl[] = {"kube-system", "amesh"};
static const struct cni_chain_entry entry = {
    .socket = "/var/run/amesh/cni-plugin.sock",
    .log_level = "info",
    .exclude = excl,
    .n_exclude = 2,
};

static size_t
count_ours(const char *buf, size_t n, bool *last_ours)
{
    json_t *root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, NULL), *p;
    json_t *plugins = json_object_get(root, "plugins");
    size_t i, ours = 0;

    if (!json_is_array(plugins) || json_array_size(plugins) == 0)
        abort();
    json_array_foreach(plugins, i, p)
    {
        const char *t = json_string_value(json_object_get(p, "type"));
        if (t == NULL)
            abort();
        ours += strcmp(t, CNI_PLUGIN_TYPE) == 0;
        *last_ours = strcmp(t, CNI_PLUGIN_TYPE) == 0;
    }
    json_decref(root);
    return ours;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "", *out = NULL, *again = NULL, *removed = NULL;
    size_t outlen, againlen, removedlen;
    bool last = false;

    if (size < 1)
        return 0;
    enum cni_chain_rc rc = cni_chain_insert((const char *)data + 1, size - 1, data[0] & 1, &entry,
                                            &out, &outlen, err, sizeof(err));
    if (rc == CNI_CHAIN_ERROR) {
        if (err[0] == '\0' || out != NULL)
            abort();
        return 0;
    }
    if (rc == CNI_CHAIN_UNCHANGED) {
        if (out != NULL || !(data[0] & 1))
            abort(); /* a .conf always becomes a .conflist */
        return 0;
    }
    if (out == NULL || strlen(out) != outlen || count_ours(out, outlen, &last) != 1 || !last)
        abort();
    if (cni_chain_insert(out, outlen, true, &entry, &again, &againlen, err, sizeof(err)) !=
        CNI_CHAIN_UNCHANGED)
        abort();
    if (cni_chain_remove(out, outlen, &removed, &removedlen, err, sizeof(err)) !=
            CNI_CHAIN_REWRITTEN ||
        count_ours(removed, removedlen, &last) != 0)
        abort();
    free(again);
    if (cni_chain_remove(removed, removedlen, &again, &againlen, err, sizeof(err)) !=
            CNI_CHAIN_UNCHANGED ||
        again != NULL)
        abort();
    free(out);
    free(removed);
    return 0;
}
