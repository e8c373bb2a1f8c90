/*
 * echo.h - what the echo server's files share: the server and its logging.
 *
 * echo.c wires flags, listeners and signals; echo_http.c serves HTTP/1.1,
 * echo_tcp.c the banner-then-echo TCP port. Both keep their connections on
 * lists so SIGTERM can close every one before the process exits.
 */
#ifndef MESH_SAMPLES_ECHO_H
#define MESH_SAMPLES_ECHO_H

#include <stdint.h>

#include "net/addr.h"

#define ECHO_MAX_LABEL 256 /* --name and --version */

struct loop;
struct http_conn;
struct tcp_conn;

struct echo_server {
    struct loop *loop;
    const char *name;    /* pod= in answers */
    const char *version; /* version= in answers */
    struct http_conn *http_conns;
    struct tcp_conn *tcp_conns;
};

/* listener_fn for the HTTP port: takes ownership of |fd|. */
void echo_http_accept(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port);
/* Closes every HTTP connection (at exit). */
void echo_http_close_all(struct echo_server *s);

/* listener_fn for the TCP port: takes ownership of |fd|. */
void echo_tcp_accept(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port);
void echo_tcp_close_all(struct echo_server *s);

/* Writes "<RFC 3339 UTC time> <message>" to stdout and flushes: one line per request. */
void echo_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
