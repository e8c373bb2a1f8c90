/*
 * inpod_exec.c - runs a command (iptables-save, iptables-restore) inside a
 * network namespace: fork, setns() in the child only, exec; stdin, stdout
 * and stderr are pumped with one deadline, after which the child's process
 * group is killed. See inpod_internal.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "inpod/inpod_internal.h"

#define ERR_KEEP 2048 /* bytes of the command's stderr kept for the message */

enum { STAGE_SETNS = 1, STAGE_EXEC = 2 };

/* What the child reports on its status pipe before it dies (nothing when exec works). */
struct child_fail {
    int stage;
    int err;
};

/* Finds |name| in |bin_dir|, or $PATH and then /usr/sbin and /sbin. */
static bool
find_program(const char *bin_dir, const char *name, char *path, size_t pathlen)
{
    const char *dirs = bin_dir;
    char buf[4096];

    if (strchr(name, '/') != NULL) {
        snprintf(path, pathlen, "%s", name);
        return access(path, X_OK) == 0;
    }
    if (dirs == NULL) {
        const char *env = getenv("PATH");
        snprintf(buf, sizeof(buf), "%s%s/usr/sbin:/sbin", env != NULL ? env : "",
                 env != NULL && env[0] != '\0' ? ":" : "");
        dirs = buf;
    }
    for (const char *p = dirs; *p != '\0';) {
        size_t n = strcspn(p, ":");
        if (n > 0 && (size_t)snprintf(path, pathlen, "%.*s/%s", (int)n, p, name) < pathlen &&
            access(path, X_OK) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

static int64_t
now_ms(void)
{
    return (int64_t)clock_mono_ms();
}

/* The command line for messages: "iptables-restore --noflush". */
static void
cmdline(const char *const argv[], char *out, size_t outlen)
{
    size_t len = 0;

    out[0] = '\0';
    for (int i = 0; argv[i] != NULL && len < outlen; i++) {
        int n = snprintf(out + len, outlen - len, "%s%s", i ? " " : "", argv[i]);
        if (n < 0)
            break;
        len += (size_t)n;
    }
}

/* Stderr as one line: newlines become "; ", trailing blanks go. */
static void
one_line(char *s)
{
    size_t n = strlen(s);
    char *w = s;

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = '\0';
    for (char *r = s; *r != '\0'; r++) {
        if (*r == '\r')
            continue;
        if (*r == '\n') {
            while (w > s && w[-1] == ' ')
                w--;
            if (w > s && w[-1] != ';') {
                *w++ = ';';
                *w++ = ' ';
            }
            while (r[1] == ' ' || r[1] == '\n')
                r++;
            continue;
        }
        *w++ = *r;
    }
    *w = '\0';
}

static void __attribute__((noreturn))
child(int netns_fd, const char *path, const char *const argv[], int in, int out, int errfd,
      int status)
{
    struct child_fail f = {0};
    sigset_t all;

    /* Its own process group, so a timeout kills what it started too. */
    setpgid(0, 0);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) {
        f.stage = STAGE_SETNS;
        f.err = errno;
        goto fail;
    }
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0) {
        f.stage = STAGE_EXEC;
        f.err = errno;
        goto fail;
    }
    /* Nothing of the caller's (sockets, namespace fds) leaks into the command. */
    close_range(3, UINT_MAX, CLOSE_RANGE_CLOEXEC);
    execv(path, (char *const *)argv);
    f.stage = STAGE_EXEC;
    f.err = errno;
fail:
    if (write(status, &f, sizeof(f)) < 0) {
        /* Nothing left to tell anyone. */
    }
    _exit(127);
}

/* Appends what |fd| has to |buf| (kept up to |cap| bytes). Returns false at EOF or error. */
static bool
drain(int fd, struct text *buf, size_t cap, bool *overflow)
{
    char chunk[16384];

    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n > 0) {
            size_t keep = (size_t)n;
            if (buf->len + keep > cap) {
                keep = cap > buf->len ? cap - buf->len : 0;
                *overflow = true;
            }
            if (keep > 0)
                text_append(buf, chunk, keep);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && errno == EAGAIN;
    }
}

static void
set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int
inpod_run(int netns_fd, const char *bin_dir, const char *const argv[], const char *input,
          char **out, int timeout_ms, char *err, size_t errlen)
{
    char path[4096], cmd[256];
    int in[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1}, ps[2] = {-1, -1};
    struct text o = {0}, e = {0};
    struct child_fail f = {0};
    size_t f_len = 0, in_off = 0, in_len = input != NULL ? strlen(input) : 0;
    bool o_open = true, e_open = true, s_open = true, in_open = true, overflow = false;
    bool timed_out = false;
    int64_t deadline = now_ms() + timeout_ms;
    int rc, wstatus = 0;
    pid_t pid;

    cmdline(argv, cmd, sizeof(cmd));
    if (out != NULL)
        *out = NULL;
    if (!find_program(bin_dir, argv[0], path, sizeof(path))) {
        snprintf(err, errlen, "%s: program not found in %s", argv[0],
                 bin_dir != NULL ? bin_dir : "$PATH:/usr/sbin:/sbin");
        return -ENOENT;
    }
    /* stdin is a socket so a command that exits early cannot SIGPIPE us (MSG_NOSIGNAL). */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 || pipe2(po, O_CLOEXEC) < 0 ||
        pipe2(pe, O_CLOEXEC) < 0 || pipe2(ps, O_CLOEXEC) < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: pipes: %s", cmd, strerror(errno));
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: fork: %s", cmd, strerror(errno));
        goto out;
    }
    if (pid == 0)
        child(netns_fd, path, argv, in[1], po[1], pe[1], ps[1]);
    /* Also here, against the race with the child's own call. */
    setpgid(pid, pid);
    close(in[1]);
    close(po[1]);
    close(pe[1]);
    close(ps[1]);
    in[1] = po[1] = pe[1] = ps[1] = -1;
    set_nonblock(in[0]);
    set_nonblock(po[0]);
    set_nonblock(pe[0]);
    set_nonblock(ps[0]);

    while (o_open || e_open || s_open) {
        struct pollfd p[4];
        int n = 0, left = (int)(deadline - now_ms());

        if (left <= 0) {
            timed_out = true;
            break;
        }
        if (in_open && in_len == in_off) {
            shutdown(in[0], SHUT_WR);
            in_open = false;
        }
        p[n++] = (struct pollfd){.fd = o_open ? po[0] : -1, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = e_open ? pe[0] : -1, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = s_open ? ps[0] : -1, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = in_open ? in[0] : -1, .events = POLLOUT};
        if (poll(p, (nfds_t)n, left) < 0 && errno != EINTR) {
            rc = -errno;
            snprintf(err, errlen, "%s: poll: %s", cmd, strerror(errno));
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            goto out;
        }
        if (o_open && p[0].revents != 0)
            o_open = drain(po[0], &o, INPOD_OUT_MAX, &overflow);
        if (e_open && p[1].revents != 0) {
            bool ignored = false;
            e_open = drain(pe[0], &e, ERR_KEEP, &ignored);
        }
        if (s_open && p[2].revents != 0) {
            ssize_t r = read(ps[0], (char *)&f + f_len, sizeof(f) - f_len);
            if (r > 0)
                f_len += (size_t)r;
            else if (r == 0 || errno != EAGAIN)
                s_open = false;
        }
        if (in_open && p[3].revents != 0) {
            ssize_t w = send(in[0], input + in_off, in_len - in_off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                in_off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                in_open = false; /* it stopped reading; its exit status tells why */
        }
    }
    /* The outputs are closed; the process itself gets what is left of the deadline. */
    while (!timed_out) {
        pid_t w = waitpid(pid, &wstatus, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            rc = -errno;
            snprintf(err, errlen, "%s: waitpid: %s", cmd, strerror(errno));
            goto out;
        }
        if (now_ms() >= deadline)
            timed_out = true;
        else
            usleep(2000);
    }
    if (timed_out) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        rc = -ETIMEDOUT;
        snprintf(err, errlen, "%s: no result after %d ms, killed", cmd, timeout_ms);
        goto out;
    }
    if (f_len == sizeof(f)) {
        rc = -f.err;
        snprintf(err, errlen, "%s: %s: %s", cmd, f.stage == STAGE_SETNS ? "setns" : "exec",
                 strerror(f.err));
        goto out;
    }
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
        char *msg = text_take(&e);
        e.p = NULL;
        one_line(msg);
        rc = -EIO;
        if (WIFSIGNALED(wstatus))
            snprintf(err, errlen, "%s: killed by signal %d%s%s", cmd, WTERMSIG(wstatus),
                     msg[0] ? ": " : "", msg);
        else
            snprintf(err, errlen, "%s: exit status %d%s%s", cmd, WEXITSTATUS(wstatus),
                     msg[0] ? ": " : "", msg);
        free(msg);
        goto out;
    }
    if (overflow) {
        rc = -EFBIG;
        snprintf(err, errlen, "%s: more than %zu bytes of output", cmd, INPOD_OUT_MAX);
        goto out;
    }
    rc = 0;
    if (out != NULL) {
        *out = text_take(&o);
        o.p = NULL;
    }
out:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (po[i] >= 0)
            close(po[i]);
        if (pe[i] >= 0)
            close(pe[i]);
        if (ps[i] >= 0)
            close(ps[i]);
    }
    free(o.p);
    free(e.p);
    return rc;
}
