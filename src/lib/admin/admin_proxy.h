/*
 * admin_proxy.h - the admin endpoints every amesh proxy (ztunnel, waypoint) serves the same
 * way: /config_dump (the proxy's own JSON), /logging?level= and /healthz/ready.
 */
#ifndef MESH_LIB_ADMIN_PROXY_H
#define MESH_LIB_ADMIN_PROXY_H

#include <stdbool.h>

#include "admin/admin_http.h"

/*
 * Answers GET/POST /config_dump with |dump|(|arg|) (a heap string of JSON) and /logging
 * (with ?level= it sets the level first: 400 for an unknown one); other methods 405. Leaves
 * |r| untouched (404) for other paths.
 */
void admin_proxy_handle(const struct http1_req *req, struct admin_resp *r,
                        char *(*dump)(void *arg), void *arg);

/* /healthz/ready: 200 "ready" or 503 "not ready"; other paths untouched (404). */
void admin_proxy_ready(const struct http1_req *req, struct admin_resp *r, bool ready);

#endif
