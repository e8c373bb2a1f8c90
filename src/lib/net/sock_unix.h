/*
 * sock_unix.h - a node-local unix SOCK_SEQPACKET listener, as the node agent
 * serves ztunnels (ZDS) and the CNI plugin: private to root (mode 0600 before
 * listen()), a file left by a dead process replaced, one that still accepts
 * (another agent) refused, and on close unlinked only if it is still ours.
 */
#ifndef MESH_LIB_SOCK_UNIX_H
#define MESH_LIB_SOCK_UNIX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct sock_unix {
    int fd;    /* the listener, non-blocking, close-on-exec */
    dev_t dev; /* the socket file we made */
    ino_t ino;
};

/*
 * Listens on |path| (its directory must exist). |*stale| is set when a dead
 * process's socket file was removed first. Returns 0, or -1 with |err| filled.
 */
int sock_unix_listen(struct sock_unix *u, const char *path, int backlog, bool *stale, char *err,
                     size_t errlen);
/* Closes the listener and unlinks |path| if it is still the file we made. */
void sock_unix_close(struct sock_unix *u, const char *path);

#endif
