/*
 * node_netns.c - --node N: each node's ztunnel answers on 127.0.0.1:15000
 * inside that node's network namespace, so meshctl joins the namespace
 * before connecting.
 *
 * $MESH_CLUSTER_DIR/nodes/N/netns (default /run/amesh) names it: a path, or
 * a name under /run/netns. Without that file, N itself is tried as a name
 * under /run/netns (clusters made with plain `ip netns`).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meshctl.h"

#define CLUSTER_DIR_DEFAULT "/run/amesh"

static bool
plain_name(const char *s)
{
    return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Reads the first line of |path| into |out|. Returns 0, or -1 with errno set. */
static int
read_line(const char *path, char *out, size_t outlen)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    if (fgets(out, (int)outlen, f) == NULL)
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* Resolves |node| to a netns path. Returns 0, or -1 with |err| set. */
static int
netns_path(const char *node, char *path, size_t pathlen, char *err, size_t errlen)
{
    const char *dir = getenv("MESH_CLUSTER_DIR");
    char file[4096], line[4096];
    struct stat st;

    if (dir == NULL || dir[0] == '\0')
        dir = CLUSTER_DIR_DEFAULT;
    if (!plain_name(node)) {
        snprintf(err, errlen, "bad node name \"%s\"", node);
        return -1;
    }
    snprintf(file, sizeof(file), "%s/nodes/%s/netns", dir, node);
    if (read_line(file, line, sizeof(line)) == 0) {
        if (line[0] == '/') {
            snprintf(path, pathlen, "%s", line);
        } else if (plain_name(line)) {
            snprintf(path, pathlen, "/run/netns/%s", line);
        } else {
            snprintf(err, errlen, "%s: \"%s\" is neither a path nor a netns name", file, line);
            return -1;
        }
        return 0;
    }
    if (errno != ENOENT && errno != ENOTDIR) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return -1;
    }
    snprintf(path, pathlen, "/run/netns/%s", node);
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "unknown node \"%s\": no %s and no %s", node, file, path);
        return -1;
    }
    return 0;
}

int
node_enter_netns(const char *node, char *err, size_t errlen)
{
    char path[4096];

    if (netns_path(node, path, sizeof(path), err, errlen) < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "node \"%s\": %s: %s", node, path, strerror(errno));
        return -1;
    }
    if (setns(fd, CLONE_NEWNET) < 0) {
        int e = errno;
        snprintf(err, errlen, "node \"%s\": entering %s: %s%s", node, path, strerror(e),
                 e == EPERM ? " (needs root or CAP_SYS_ADMIN)" : "");
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}
