/*
 * fuzz_kubeauth.c - a TokenReview answer from the API server (the bytes of
 * its JSON body), and the same bytes as a bearer token whose expiry meshd
 * reads for its cache.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/k8s.h"
#include "kubeauth/kubeauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kubeauth_identity id;
    char why[KUBEAUTH_WHY_MAX];
    int64_t exp;

    if (kubeauth_review_parse_buf((const char *)data, size, &id, why, sizeof(why)) == 0) {
        /* An accepted answer names a valid account and a pod, nothing else. */
        if (!k8s_dns_label(id.ns, false) || !k8s_dns_subdomain(id.sa) ||
            !k8s_dns_subdomain(id.pod) || id.pod_uid[0] == '\0')
            abort();
    } else if (strlen(why) >= sizeof(why)) {
        abort();
    }
    if (kubeauth_token_plausible((const char *)data, size) &&
        kubeauth_token_expiry((const char *)data, size, &exp) && exp <= 0)
        abort();
    return 0;
}
