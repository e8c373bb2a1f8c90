/*
 * agent.c - the plugin's side of the exchange with the node agent: one
 * request datagram, one answer datagram, on a unix SOCK_SEQPACKET socket
 * (message boundaries for free, and the agent can tell a caller's uid with
 * SO_PEERCRED). Every step is non-blocking under one deadline: a hung agent
 * costs the runtime at most |timeout_ms|.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "amesh_cni.h"
#include "base/base.h"

static int
wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = clock_mono_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n > 0)
            return 0;
    }
}

int
agent_exchange(const char *path, const struct cni_req *req, unsigned timeout_ms,
               struct cni_reply *reply, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char buf[CNI_MSG_MAX + 1];
    uint64_t deadline = clock_mono_ms() + timeout_ms;
    int fd = -1, rc, len;
    ssize_t n;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "agent socket path too long");
        return -EINVAL;
    }
    memcpy(sa.sun_path, path, strlen(path));
    len = cni_req_encode(req, buf, sizeof(buf));
    if (len < 0) {
        snprintf(err, errlen, "request too large");
        return len;
    }
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return rc;
    }
    /* A unix connect never stays in progress: it succeeds, or the backlog is full (EAGAIN). */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
        snprintf(err, errlen, "connecting to the node agent at %s: %s", path,
                 errno == EAGAIN ? "its backlog is full" : strerror(errno));
        goto out;
    }
    for (;;) {
        n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
        if (n == len)
            break;
        if (n >= 0 || (errno != EAGAIN && errno != EINTR)) {
            rc = n >= 0 ? -EIO : -errno;
            snprintf(err, errlen, "sending to the node agent: %s", strerror(-rc));
            goto out;
        }
        if ((rc = wait_fd(fd, POLLOUT, deadline)) < 0) {
            snprintf(err, errlen, "sending to the node agent: %s", strerror(-rc));
            goto out;
        }
    }
    for (;;) {
        n = recv(fd, buf, sizeof(buf), MSG_TRUNC);
        if (n >= 0)
            break;
        if (errno != EAGAIN && errno != EINTR) {
            rc = -errno;
            snprintf(err, errlen, "reading the node agent's answer: %s", strerror(errno));
            goto out;
        }
        if ((rc = wait_fd(fd, POLLIN, deadline)) < 0) {
            snprintf(err, errlen, "no answer from the node agent within %u ms", timeout_ms);
            goto out;
        }
    }
    if (n == 0 || (size_t)n > CNI_MSG_MAX) {
        rc = -MESH_EPROTO;
        snprintf(err, errlen,
                 n == 0 ? "the node agent closed the connection without answering"
                        : "the node agent's answer is over %d bytes",
                 CNI_MSG_MAX);
        goto out;
    }
    rc = cni_reply_decode(reply, buf, (size_t)n, err, errlen);
out:
    close(fd);
    return rc;
}
