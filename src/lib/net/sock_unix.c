/*
 * sock_unix.c - see sock_unix.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/sock_unix.h"

/* Removes a socket file left by a process that is gone; fails if one still listens. */
static int
clear_stale(const char *path, bool *stale, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket", path);
        return -1;
    }
    int c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    int rc = connect(c, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    close(c);
    if (rc < 0 && e == ECONNREFUSED) {
        *stale = true;
        if (unlink(path) < 0 && errno != ENOENT) {
            snprintf(err, errlen, "unlink %s: %s", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "%s: %s", path,
             rc == 0 || e == EAGAIN ? "another process is listening there" : strerror(e));
    return -1;
}

int
sock_unix_listen(struct sock_unix *u, const char *path, int backlog, bool *stale, char *err,
                 size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;

    u->fd = -1;
    *stale = false;
    if (strlen(path) == 0 || strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "%s: socket path empty or too long", path);
        return -1;
    }
    if (clear_stale(path, stale, err, errlen) < 0)
        return -1;
    memcpy(sa.sun_path, path, strlen(path));
    u->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (bind(u->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(u->fd);
        u->fd = -1;
        return -1;
    }
    /* chmod between bind and listen: until listen() every connect is refused. */
    if (chmod(path, 0600) < 0 || stat(path, &st) < 0 || listen(u->fd, backlog) < 0) {
        snprintf(err, errlen, "listen on %s: %s", path, strerror(errno));
        close(u->fd);
        u->fd = -1;
        unlink(path);
        return -1;
    }
    u->dev = st.st_dev;
    u->ino = st.st_ino;
    return 0;
}

void
sock_unix_close(struct sock_unix *u, const char *path)
{
    struct stat st;

    if (u->fd < 0)
        return;
    close(u->fd);
    u->fd = -1;
    if (lstat(path, &st) == 0 && st.st_dev == u->dev && st.st_ino == u->ino)
        unlink(path);
}
