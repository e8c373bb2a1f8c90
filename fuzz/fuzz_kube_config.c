/*
 * fuzz_kube_config.c - a kubeconfig file: YAML through k8s_yaml_parse() into
 * struct kube_config (contexts, clusters, users, base64 data). Relative file
 * references point into a directory that does not exist. Checked: success
 * leaves an https server that parses again, and failure leaves nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kube_config c;
    struct kube_server s;
    char err[256];
    if (kube_config_load_buf("fuzz", (const char *)data, size, "/nonexistent-kubeconfig-dir",
                             NULL, &c, err, sizeof(err)) == 0) {
        if (c.server == NULL || kube_server_parse(c.server, &s, err, sizeof(err)) != 0 ||
            c.namespace == NULL)
            abort();
        kube_config_free(&c);
    } else if (c.server != NULL || c.token != NULL || c.ca_pem != NULL || err[0] == '\0') {
        abort();
    }
    /* The same bytes as a server URL. */
    char url[512];
    size_t n = size < sizeof(url) - 1 ? size : sizeof(url) - 1;
    memcpy(url, data, n);
    url[n] = '\0';
    if (kube_server_parse(url, &s, err, sizeof(err)) == 0 &&
        (s.port == 0 || s.host[0] == '\0' || strchr(s.authority, ':') == NULL))
        abort();
    return 0;
}
