/*
 * fuzz_rpc.c - a hostile gRPC peer against lib/rpc over a cleartext
 * h2_session: the first input byte picks the side (even: we are the client
 * of one call, as ztunnel calls meshd; odd: we are an echo server, as meshd),
 * the rest is what the peer sends.
 *
 * Checked: on_end at most once per call with a status in 0..16, messages
 * never over the cap, and everything freed (LeakSanitizer) after a bounded
 * number of loop iterations (fuzz_peer.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn/tcp_stream.h"
#include "fuzz_peer.h"
#include "h2/h2.h"
#include "loop/loop.h"
#include "rpc/rpc.h"

#define FUZZ_MAX_MSG   (64 * 1024)
#define FUZZ_MAX_CALLS 64

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct fcall {
    struct fz *f;
    struct rpc_call *c;
    int ends;
};

struct fz {
    struct fuzz_peer p;
    struct h2_session *s;
    struct fcall calls[FUZZ_MAX_CALLS];
    int n_calls;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
on_message(void *arg, struct rpc_call *c, const uint8_t *msg, size_t len)
{
    struct fcall *k = arg;

    k->f->p.progress = true;
    if (len > FUZZ_MAX_MSG || k->ends != 0)
        abort();
    /* The server echoes; a message starting with '!' makes the receiver abort. */
    if (len > 0 && msg[0] == '!')
        return -1;
    if (rpc_call_session(c) != NULL && h2_session_is_ready(k->f->s) && len < 256)
        rpc_call_send(c, msg, len);
    return 0;
}

static void
on_end(void *arg, struct rpc_call *c, int status, const char *message)
{
    struct fcall *k = arg;

    k->f->p.progress = true;
    if (++k->ends != 1 || status < 0 || status > GRPC_STATUS_MAX) {
        fprintf(stderr, "on_end #%d status %d (%s)\n", k->ends, status, message ? message : "");
        abort();
    }
    (void)rpc_call_path(c);
    (void)rpc_call_header(c, "authorization");
    rpc_call_finish(c, GRPC_STATUS_OK, "bye 100%");
}

static const struct rpc_call_cbs call_cbs = {
    .on_message = on_message,
    .on_end = on_end,
};

static void
on_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct fz *f = arg;
    (void)s;

    f->p.progress = true;
    if (!rpc_is_grpc(st)) {
        h2_stream_respond(st, 415, NULL, 0, true);
        stream_close(h2_stream_as_stream(st), false);
        return;
    }
    if (f->n_calls == FUZZ_MAX_CALLS || strcmp(h2_stream_path(st), "/fuzz.Svc/Refuse") == 0) {
        rpc_refuse(st, GRPC_STATUS_UNAVAILABLE, "busy \xff");
        return;
    }
    struct fcall *k = &f->calls[f->n_calls++];
    k->f = f;
    k->c = rpc_call_accept(st, FUZZ_MAX_MSG, &call_cbs, k);
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct fz *f = arg;
    (void)s;
    (void)err;
    f->p.done = true;
}

static const struct h2_session_cbs sess_cbs = {
    .on_request = on_request,
    .on_closed = on_closed,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f;
    static const struct h2_header md[] = {{"authorization", "Bearer fuzz"}};
    bool server = size > 0 && (data[0] & 1);

    if (size > 0) {
        data++;
        size--;
    }
    memset(&f, 0, sizeof(f));
    if (server) {
        fuzz_peer_init(&f.p, data, size, size >= 3 && memcmp(data, "PRI", 3) == 0 ? NULL : preface);
        f.s =
            h2_session_new(f.p.loop, tcp_stream_new(f.p.loop, f.p.session_fd), true, &sess_cbs, &f);
    } else {
        fuzz_peer_init(&f.p, data, size, NULL);
        f.s = h2_session_new(f.p.loop, tcp_stream_new(f.p.loop, f.p.session_fd), false, &sess_cbs,
                             &f);
        struct fcall *k = &f.calls[f.n_calls++];
        k->f = &f;
        k->c =
            rpc_call_start(f.s, "/fuzz.Svc/Call", "meshd:15012", md, 1, FUZZ_MAX_MSG, &call_cbs, k);
        if (k->c == NULL)
            abort();
        rpc_call_send(k->c, "hello", 5);
    }
    fuzz_peer_run(&f.p);

    for (int i = 0; i < f.n_calls; i++)
        rpc_call_free(f.calls[i].c);
    h2_session_close(f.s, 0);
    h2_session_release(f.s);
    fuzz_peer_finish(&f.p);
    return 0;
}
