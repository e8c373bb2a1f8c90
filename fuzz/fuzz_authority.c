/* fuzz_authority.c - HBONE :authority parsing and address formatting round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ipaddr ip, ip2;
    uint16_t port, port2;
    char out[ADDR_STRLEN];

    if (authority_parse((const char *)data, size, &ip, &port) == 0) {
        /* What we accept must print back to something we accept with the same meaning. */
        ipport_str(&ip, port, out);
        if (authority_parse(out, strlen(out), &ip2, &port2) != 0 || !ipaddr_eq(&ip, &ip2) ||
            port != port2)
            abort();
    }
    return 0;
}
