/*
 * kube_resolve.c - a server name resolved without blocking the loop:
 * getaddrinfo() runs on a short-lived detached thread that sends the answer
 * through a socketpair the loop watches. The thread owns its job; a client
 * that goes away first just closes its end (the send then fails quietly).
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "kube/kube_client_priv.h"

struct job {
    char host[KUBE_MAX_HOST];
    int fd;
};

static void *
resolve_thread(void *arg)
{
    struct job *j = arg;
    struct kube_resolved r = {.err = -EHOSTUNREACH};
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(j->host, NULL, &hints, &res);
    if (rc == 0 && res != NULL) {
        uint16_t port;
        sockaddr_to_ipport(res->ai_addr, &r.ip, &port);
        r.err = 0;
    } else {
        snprintf(r.why, sizeof(r.why), "%s", gai_strerror(rc));
    }
    if (res != NULL)
        freeaddrinfo(res);
    (void)send(j->fd, &r, sizeof(r), MSG_NOSIGNAL);
    close(j->fd);
    free(j);
    return NULL;
}

int
kube_resolve_start(const char *host)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    struct job *j = xcalloc(1, sizeof(*j));
    snprintf(j->host, sizeof(j->host), "%s", host);
    j->fd = sv[1];
    pthread_attr_t a;
    pthread_t t;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &a, resolve_thread, j);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        close(sv[0]);
        close(sv[1]);
        free(j);
        return -rc;
    }
    return sv[0];
}

int
kube_resolve_finish(int fd, struct kube_resolved *out)
{
    ssize_t n = recv(fd, out, sizeof(*out), MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return -EAGAIN;
    if (n != (ssize_t)sizeof(*out)) {
        out->err = -EHOSTUNREACH;
        snprintf(out->why, sizeof(out->why), "resolver failed");
    }
    out->why[sizeof(out->why) - 1] = '\0';
    return 0;
}
