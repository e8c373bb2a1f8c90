/*
 * channel.h - a client's HTTP/2-over-TLS connection to one control-plane
 * address (meshd's xDS or CA), made on demand and made again after it closes.
 *
 * Users ask for the session with channel_get(); whoever asks while it is being
 * made waits in a queue and hears once, with the session or with the error
 * that ended the attempt. Retry pacing is the user's business (xDS and CA
 * back off differently), so a failed attempt is not retried here.
 */
#ifndef MESH_LIB_CHANNEL_H
#define MESH_LIB_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "h2/h2.h"
#include "loop/loop.h"
#include "net/addr.h"

#define CHANNEL_CONNECT_TIMEOUT_MS 5000

struct channel;

/* |s| is a ready session (borrowed: valid until its calls end), or NULL with |err| < 0. */
typedef void channel_ready_fn(void *arg, struct h2_session *s, int err);

/* A place in the queue; embed it in the user's state. */
struct channel_waiter {
    struct channel_waiter *next, *prev;
    channel_ready_fn *cb;
    void *arg;
    bool queued;
};

/* |ctx| is referenced, not copied; |name| is for logs. */
struct channel *channel_new(struct loop *l, const struct ipaddr *ip, uint16_t port, SSL_CTX *ctx,
                            const char *name);
/* Closes the session; queued waiters are dropped without a call. */
void channel_free(struct channel *c);

/*
 * Calls |cb| with a ready session: before returning if there is one, else
 * once the connection attempt ends. |w| must stay valid until then or until
 * channel_cancel().
 */
void channel_get(struct channel *c, struct channel_waiter *w, channel_ready_fn *cb, void *arg);
void channel_cancel(struct channel *c, struct channel_waiter *w);

/* True when a session is up and accepting new calls. */
bool channel_is_ready(const struct channel *c);

#endif
