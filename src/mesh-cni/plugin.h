/*
 * plugin.h - mesh-cni's socket for the CNI plugin (amesh-cni): one request
 * per connection (ADD, DEL or CHECK of a pod sandbox), one answer.
 *
 * ADD records the sandbox (enroll.c) and answers when the pod's fate is
 * known: enrolled (rules installed and a ztunnel acked the pod), not enrolled,
 * or, after --plugin-wait-ms, "pending" when the pod is still not in the
 * store (enrolled when it appears) or "retry" when no ztunnel acked it. DEL
 * forgets the sandbox; CHECK reports where the pod stands.
 *
 * Caps: PLUGIN_CONNS_MAX connections at once (more are closed), one datagram
 * of CNI_MSG_MAX per connection, PLUGIN_READ_MS for it to arrive.
 */
#ifndef MESH_CNI_PLUGIN_H
#define MESH_CNI_PLUGIN_H

#include <stddef.h>

#include "loop/loop.h"

#define PLUGIN_CONNS_MAX 64
#define PLUGIN_READ_MS   2000
#define PLUGIN_WAIT_MS   5000 /* default --plugin-wait-ms: ZDS's own ack timeout */

struct cni;
struct plugin_srv;

struct plugin_srv *plugin_srv_start(struct loop *l, struct cni *c, const char *path,
                                    unsigned wait_ms, char *err, size_t errlen);
/* Something changed (store, members, acks): waiting requests look again, from the loop. */
void plugin_srv_poke(struct plugin_srv *p);
/* Closes everything, unanswered requests included. Accepts NULL. */
void plugin_srv_stop(struct plugin_srv *p);

#endif
