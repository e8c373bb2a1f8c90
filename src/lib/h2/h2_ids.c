/*
 * h2_ids.c - the stream ids a client skipped (RFC 9113 5.1.1).
 *
 * A new stream's id must be odd and greater than every id the client used
 * before; the ids it skipped are closed without ever having existed, and a
 * HEADERS frame on one is a connection error PROTOCOL_ERROR. nghttp2 refuses
 * stream 0 and even ids, but ignores a HEADERS frame below the highest id when
 * it has no record of the stream, on purpose: it cannot tell a skipped id
 * from a stream closed long ago, where frames may legitimately arrive after
 * our RST_STREAM (section 5.1). So the skipped ids are tracked here, and ids
 * the client did use stay nghttp2's business.
 *
 * Only the last H2_ID_GAPS ranges are kept, so memory is fixed per session; a
 * HEADERS frame in a range forgotten since is ignored as nghttp2 would, which
 * costs nothing: well-behaved clients use consecutive ids and skip none.
 */
#include "h2/h2_internal.h"

static bool
skipped(const struct h2_session *s, uint32_t id)
{
    unsigned n = s->n_id_gaps < H2_ID_GAPS ? s->n_id_gaps : H2_ID_GAPS;

    for (unsigned i = 0; i < n; i++)
        if (id >= s->id_gaps[i].lo && id <= s->id_gaps[i].hi)
            return true;
    return false;
}

bool
h2_ids_bad_new_stream(struct h2_session *s, uint32_t id)
{
    if ((id & 1) == 0)
        return false; /* nghttp2's to refuse */
    if (id < s->next_peer_id)
        return skipped(s, id);
    if (id > s->next_peer_id) {
        unsigned slot = s->n_id_gaps++ % H2_ID_GAPS;
        s->id_gaps[slot].lo = s->next_peer_id;
        s->id_gaps[slot].hi = id - 2;
    }
    s->next_peer_id = id + 2;
    return false;
}
