/*
 * amesh_cni.h - amesh-cni, the CNI plugin (CNI spec 1.0) a container runtime
 * runs for every new pod, chained after the primary plugin. It hands the
 * pod's network namespace to the node agent (mesh-cni --plugin-socket) and
 * returns only when the agent has decided, so an ambient pod's containers
 * never start outside the mesh (reference 2.3: istio-cni's plugin).
 *
 *   main.c   environment, stdin, ADD/DEL/CHECK/VERSION, the spec's results
 *   agent.c  one request/answer exchange with the agent, under a deadline
 */
#ifndef AMESH_CNI_H
#define AMESH_CNI_H

#include <stddef.h>

#include "cni/cni.h"

/*
 * Sends |req| to the agent listening on |path| and waits for its answer, all
 * within |timeout_ms|. Returns 0 with |reply| filled; -ENOENT/-ECONNREFUSED
 * when no agent listens; -ETIMEDOUT; -MESH_EPROTO for an answer that does not
 * decode; other -errno. |err| says what happened.
 */
int agent_exchange(const char *path, const struct cni_req *req, unsigned timeout_ms,
                   struct cni_reply *reply, char *err, size_t errlen);

#endif
