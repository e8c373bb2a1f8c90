/*
 * hbone.h - HBONE (HTTP/2 CONNECT over mutual TLS), both ends, for every proxy of the mesh:
 * ztunnel (outbound client, 15008 server) and the waypoint (15008 server, upstream client).
 *
 *   hbone_pool.c    client connections pooled by (identities, addresses), CONNECT on them
 *   hbone_server.c  server side: TLS with the SPIFFE checks, HTTP/2, per-CONNECT checks
 *   hbone_headers.c the request headers a CONNECT carries (forwarded, baggage, traceparent)
 */
#ifndef MESH_LIB_HBONE_H
#define MESH_LIB_HBONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h2/h2.h"
#include "loop/loop.h"
#include "net/addr.h"
#include "net/sock.h"
#include "tls/tls.h"

#define HBONE_PORT 15008

/* ---- client: the pool ------------------------------------------------------ */

struct hbone_pool;

/* Called with the opened stream and the response status, or NULL and a negative error. */
typedef void hbone_stream_fn(void *arg, struct h2_stream *st, int status);

struct hbone_target {
    struct tls_creds *creds;         /* source identity */
    const char *const *dst_ids;      /* acceptable server identities */
    size_t n_dst_ids;
    struct ipaddr src_ip;            /* bound when local, else the kernel picks */
    struct ipaddr dst_ip;
    uint16_t dst_port;
    const struct sock_opts *dial;    /* how to make the socket; NULL: the pool's default */
};

/* Pooled connections without streams close after |idle_ms|; |dial| is the default socket recipe. */
struct hbone_pool *hbone_pool_new(struct loop *l, uint64_t idle_ms, const struct sock_opts *dial);
/* Frees the pool once it has no connection left (else they die with the process). */
void hbone_pool_free(struct hbone_pool *p);
/* GOAWAY on every connection; no new streams. */
void hbone_pool_drain(struct hbone_pool *p);
/* Closes every pooled connection at once. */
void hbone_pool_abort(struct hbone_pool *p);
size_t hbone_pool_n_conns(const struct hbone_pool *p);
/*
 * Opens a CONNECT for |authority| on a pooled connection for |t|. |cb| runs exactly
 * once: later with the response, or before this returns if no connection can be started.
 * At most 4 of |hdrs| are sent.
 */
void hbone_pool_connect(struct hbone_pool *p, const struct hbone_target *t, const char *authority,
                        const struct h2_header *hdrs, size_t n_hdrs, hbone_stream_fn *cb,
                        void *arg);
/* How many streams we have open or asked for to |ip|:|port| (fewest-streams replica choice). */
unsigned hbone_pool_streams_to(const struct hbone_pool *p, const struct ipaddr *ip, uint16_t port);

/* ---- client: request headers ----------------------------------------------- */

struct workload;
struct hbone_headers {
    struct h2_header h[3];
    size_t n;
    char fwd[ADDR_STRLEN + 300], baggage[1024], trace[64];
};
/*
 * The headers of a CONNECT on behalf of |client|:|cport|: forwarded (for=, host= the service
 * |host| dialled, if any), baggage describing |src| (when known; |cluster| if it names none),
 * a fresh traceparent.
 */
void hbone_headers_make(struct hbone_headers *h, const struct ipaddr *client, uint16_t cport,
                        const char *host, const struct workload *src, const char *cluster);

/* ---- server ----------------------------------------------------------------- */

/*
 * Starts the server side of one accepted HBONE connection on |fd| (taken): mutual TLS with
 * |creds| (the peer must present a SPIFFE identity of |creds|' trust domain; |chk| receives
 * it and must live as long as the session), ALPN h2, then an HTTP/2 server session with
 * |cbs|. NULL (|fd| closed) when TLS state cannot be made.
 */
struct h2_session *hbone_server_start(struct loop *l, int fd, struct tls_creds *creds,
                                      struct tls_check *chk, const struct h2_session_cbs *cbs,
                                      void *arg);
/*
 * The checks every CONNECT gets before its target is looked at: method CONNECT, no :path,
 * :authority IP:port. NULL and |ip|:|port| set, or the reason (answer 400).
 */
const char *hbone_connect_target(const struct h2_stream *st, struct ipaddr *ip, uint16_t *port);
/* Answers |status| without a body and closes the stream; |why| goes to the debug log. */
void hbone_reject(struct h2_stream *st, int status, const char *why);

#endif
