/*
 * admin_http.h - a tiny HTTP/1.1 server for admin, readiness and metrics
 * ports: one request per connection, a response built in memory, then close.
 */
#ifndef MESH_LIB_ADMIN_HTTP_H
#define MESH_LIB_ADMIN_HTTP_H

#include <stdint.h>

#include "http1/http1_req.h"
#include "loop/loop.h"
#include "net/addr.h"

struct admin_resp {
    int status;
    const char *content_type;
    char *body; /* heap; freed by the server */
};

/* Fills |resp| for |req|. */
typedef void admin_handler_fn(void *arg, const struct http1_req *req, struct admin_resp *resp);

struct admin_http;

/* Listens on |ip|:|port|; returns NULL and fills |err| on failure. */
struct admin_http *admin_http_start(struct loop *l, const struct ipaddr *ip, uint16_t port,
                                    uint32_t mark, admin_handler_fn *h, void *arg, char *err,
                                    size_t errlen);
/* Closes the listener and every client; call after the loop stopped (it runs deferred frees). */
void admin_http_stop(struct admin_http *a);

#endif
