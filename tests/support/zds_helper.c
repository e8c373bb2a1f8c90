/*
 * zds_helper.c - our ZDS server or client in a process of its own, for the
 * independent Python peer (tests/support/zds_peer.py), which plays the other
 * side. Prints one line per event on stdout, flushed.
 *
 *   zds_helper server PATH
 *     Listens on PATH with workload w1 (pod-1, default, sa-1; this process's
 *     netns) and keep k1, prints "ready". After the first snapshot is
 *     answered it adds w2 (pod-2, default, sa-2) and deletes w1. Prints
 *     "ack <kind> <uid|-> <ok|error>" per answer; exits 0 after the answer
 *     to the del, 1 if the ztunnel leaves first.
 *
 *   zds_helper client PATH
 *     Connects to PATH and prints "connected", "add <uid> <name> <ns> <sa>
 *     <readlink of the fd>", "keep <uid>", "snapshot", "del <uid>",
 *     "disconnected <why>". NACKs an add of a pod named "bad" with "bad pod".
 *     Exits 0 after answering a del of uid "last".
 *
 * Either exits 2 after 10 s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "base/base.h"
#include "loop/loop.h"
#include "zds/zds_client.h"
#include "zds/zds_server.h"

static struct loop *loop;
static struct zds_server *srv;
static int rc = 2;
static int netns = -1;
static bool live_sent;
static struct loop_defer done_defer;

static void
on_done(void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static void
finish(int code)
{
    rc = code;
    loop_defer(loop, &done_defer, on_done, NULL); /* after the current handler (and its Ack) */
}

static void
on_timeout(void *arg)
{
    (void)arg;
    printf("timeout\n");
    fflush(stdout);
    loop_stop(loop);
}

static void
s_ack(void *arg, uint64_t client, enum zds_req_kind kind, const char *uid, const char *error)
{
    (void)arg, (void)client;
    printf("ack %s %s %s\n", zds_req_kind_name(kind), uid[0] ? uid : "-", error ? error : "ok");
    fflush(stdout);
    if (kind == ZDS_REQ_SNAPSHOT_SENT && !live_sent) {
        live_sent = true;
        if (zds_server_add(srv, "w2", "pod-2", "default", "sa-2", netns) < 0 ||
            zds_server_del(srv, "w1") < 0)
            finish(1);
    } else if (kind == ZDS_REQ_DEL && strcmp(uid, "w1") == 0) {
        finish(0);
    }
}

static void
s_gone(void *arg, uint64_t client, size_t n, int err)
{
    (void)arg, (void)client, (void)n;
    printf("disconnected %s\n", mesh_strerror(err));
    fflush(stdout);
    finish(1);
}

static void
c_add(void *arg, const struct zds_workload *w, int fd, char *err, size_t errlen)
{
    char link[64], target[128] = "";
    (void)arg;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n > 0)
        target[n] = '\0';
    close(fd);
    printf("add %s %s %s %s %s\n", w->uid, w->name, w->ns, w->sa, target);
    fflush(stdout);
    if (strcmp(w->name, "bad") == 0)
        snprintf(err, errlen, "bad pod");
}

static void
c_keep(void *arg, const char *uid, char *err, size_t errlen)
{
    (void)arg, (void)err, (void)errlen;
    printf("keep %s\n", uid);
    fflush(stdout);
}

static void
c_del(void *arg, const char *uid, char *err, size_t errlen)
{
    (void)arg, (void)err, (void)errlen;
    printf("del %s\n", uid);
    fflush(stdout);
    if (strcmp(uid, "last") == 0)
        finish(0);
}

static void
c_snap(void *arg, char *err, size_t errlen)
{
    (void)arg, (void)err, (void)errlen;
    printf("snapshot\n");
    fflush(stdout);
}

static void
c_up(void *arg)
{
    (void)arg;
    printf("connected\n");
    fflush(stdout);
}

static void
c_down(void *arg, int err)
{
    (void)arg;
    printf("disconnected %s\n", mesh_strerror(err));
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    struct loop_timer t = {0};
    struct zds_client *cli = NULL;
    char err[256];

    if (argc != 3 || (strcmp(argv[1], "server") != 0 && strcmp(argv[1], "client") != 0)) {
        fprintf(stderr, "usage: zds_helper server|client PATH\n");
        return 64;
    }
    loop = loop_new();
    if (loop == NULL)
        return 1;
    loop_timer_start(loop, &t, 10000, on_timeout, NULL);
    if (strcmp(argv[1], "server") == 0) {
        static const struct zds_server_cbs cbs = {.on_ack = s_ack, .on_disconnected = s_gone};
        netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        srv = zds_server_start(loop, argv[2], NULL, &cbs, NULL, err, sizeof(err));
        if (netns < 0 || srv == NULL ||
            zds_server_add(srv, "w1", "pod-1", "default", "sa-1", netns) < 0 ||
            zds_server_keep(srv, "k1") < 0) {
            fprintf(stderr, "zds_helper: cannot start: %s\n", srv ? "add" : err);
            return 1;
        }
        printf("ready\n");
        fflush(stdout);
    } else {
        static const struct zds_client_cbs cbs = {
            .on_add = c_add,
            .on_keep = c_keep,
            .on_del = c_del,
            .on_snapshot = c_snap,
            .on_connected = c_up,
            .on_disconnected = c_down,
        };
        cli = zds_client_start(loop, argv[2], NULL, &cbs, NULL);
        if (cli == NULL)
            return 1;
    }
    if (loop_run(loop) < 0)
        return 1;
    loop_timer_stop(loop, &t);
    zds_server_stop(srv);
    zds_client_stop(cli);
    loop_run_deferred(loop);
    loop_free(loop);
    if (netns >= 0)
        close(netns);
    return rc;
}
