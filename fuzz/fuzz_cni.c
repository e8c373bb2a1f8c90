/*
 * fuzz_cni.c - lib/cni's parsers: the network configuration a runtime writes
 * on amesh-cni's stdin, and the plugin <-> agent datagrams as each side
 * receives them.
 *
 * Byte 0 picks the parser (mod 3: configuration, request, reply); the rest is
 * the input. Whatever parses must respect the caps and the field rules, and a
 * decoded message must survive encode + decode unchanged. Seeds: runtime
 * configurations of each version (prevResult with IPv4 and IPv6, settings),
 * the plugin's requests and the agent's answers, refusals, deep and junk.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cni/cni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_conf(const char *in, size_t n)
{
    struct cni_conf c;
    char err[256];
    unsigned char bin[16];

    int rc = cni_conf_parse(&c, in, n, err, sizeof(err));
    if (rc != CNI_OK) {
        if (rc != CNI_ERR_DECODE && rc != CNI_ERR_CONFIG && rc != CNI_ERR_VERSION)
            abort();
        if (err[0] == '\0')
            abort();
        cni_conf_free(&c);
        return;
    }
    if (!cni_version_supported(c.version) || c.name == NULL || c.type == NULL ||
        c.n_ips > CNI_IPS_MAX || c.n_exclude > CNI_EXCLUDE_MAX || c.socket[0] != '/' ||
        (c.timeout_ms < 100 || c.timeout_ms > CNI_TIMEOUT_MS_MAX))
        abort();
    for (size_t i = 0; i < c.n_ips; i++)
        if (inet_pton(strchr(c.ips[i], ':') ? AF_INET6 : AF_INET, c.ips[i], bin) != 1)
            abort();
    cni_conf_free(&c);
}

static void
check_req(const char *in, size_t n)
{
    struct cni_req r, again;
    char err[256], buf[CNI_MSG_MAX];

    if (cni_req_decode(&r, in, n, err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort();
        return;
    }
    int len = cni_req_encode(&r, buf, sizeof(buf));
    if (len < 0 || cni_req_decode(&again, buf, (size_t)len, err, sizeof(err)) != 0 ||
        memcmp(&r, &again, sizeof(r)) != 0)
        abort();
}

static void
check_reply(const char *in, size_t n)
{
    struct cni_reply r, again;
    char err[256], buf[CNI_MSG_MAX];

    if (cni_reply_decode(&r, in, n, err, sizeof(err)) != 0)
        return;
    for (const char *p = r.message; *p; p++)
        if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
            abort();
    int len = cni_reply_encode(&r, buf, sizeof(buf));
    if (len < 0 || cni_reply_decode(&again, buf, (size_t)len, err, sizeof(err)) != 0 ||
        again.verdict != r.verdict || strcmp(again.message, r.message) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0:
        check_conf(in, n);
        break;
    case 1:
        check_req(in, n);
        break;
    default:
        check_reply(in, n);
        break;
    }
    return 0;
}
