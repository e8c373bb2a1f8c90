/* fuzz_hs_record.c - the first-record check of the handshake guard (hs_record_need). */
#include <stdint.h>
#include <stdlib.h>

#include "conn/hs_guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t need = hs_record_need(data, size);

    if (need == 0)
        return 0;
    /* A wait is only ever for a handshake record of 1..2^14 bytes, as its header says. */
    if (size < HS_RECORD_HEADER || data[0] != 22 || data[1] != 3 ||
        need != HS_RECORD_HEADER + ((size_t)data[3] << 8 | data[4]) ||
        need <= HS_RECORD_HEADER || need > HS_RECORD_HEADER + HS_RECORD_MAX)
        abort();
    return 0;
}
