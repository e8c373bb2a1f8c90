/*
 * dirwatch.c - see dirwatch.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define LOG_SCOPE "config"
#include "base/base.h"
#include "dirwatch/dirwatch.h"
#include "log/log.h"

struct dirwatch {
    struct loop *loop;
    char *dir;
    uint64_t debounce_ms;
    dirwatch_fn *cb;
    void *arg;
    int ifd;
    int wd;
    struct loop_io io;
    struct loop_timer debounce;
    struct loop_timer resync;
};

static void
watch_dir(struct dirwatch *w)
{
    w->wd = inotify_add_watch(w->ifd, w->dir,
                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                  IN_CREATE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
    if (w->wd < 0)
        log_warn("cannot watch %s: %s; polling every %d s", w->dir, strerror(errno),
                 DIRWATCH_RESYNC_MS / 1000);
}

static void
on_debounce(void *arg)
{
    struct dirwatch *w = arg;
    w->cb(w->arg);
}

static void
on_resync(void *arg)
{
    struct dirwatch *w = arg;
    if (w->wd < 0)
        watch_dir(w);
    loop_timer_start(w->loop, &w->resync, DIRWATCH_RESYNC_MS, on_resync, w);
    w->cb(w->arg);
}

static void
on_inotify(void *arg, uint32_t events)
{
    struct dirwatch *w = arg;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    (void)events;

    while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
                /* The directory itself went away or was replaced: watch again at resync. */
                inotify_rm_watch(w->ifd, w->wd);
                w->wd = -1;
            }
            p += sizeof(*ev) + ev->len;
        }
    }
    if (!loop_timer_armed(&w->debounce))
        loop_timer_start(w->loop, &w->debounce, w->debounce_ms, on_debounce, w);
}

struct dirwatch *
dirwatch_start(struct loop *l, const char *dir, uint64_t debounce_ms, dirwatch_fn *cb, void *arg,
               char *err, size_t errlen)
{
    struct dirwatch *w = xcalloc(1, sizeof(*w));
    w->loop = l;
    w->dir = xstrdup(dir);
    w->debounce_ms = debounce_ms;
    w->cb = cb;
    w->arg = arg;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd < 0 || loop_io_start(l, &w->io, w->ifd, EPOLLIN, on_inotify, w) < 0) {
        snprintf(err, errlen, "inotify: %s", strerror(errno));
        if (w->ifd >= 0)
            close(w->ifd);
        free(w->dir);
        free(w);
        return NULL;
    }
    watch_dir(w);
    if (w->wd < 0 && errno == ENOENT) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        dirwatch_stop(w);
        return NULL;
    }
    loop_timer_start(l, &w->resync, DIRWATCH_RESYNC_MS, on_resync, w);
    return w;
}

void
dirwatch_stop(struct dirwatch *w)
{
    if (w == NULL)
        return;
    loop_timer_stop(w->loop, &w->debounce);
    loop_timer_stop(w->loop, &w->resync);
    loop_io_stop(w->loop, &w->io);
    close(w->ifd);
    free(w->dir);
    free(w);
}
