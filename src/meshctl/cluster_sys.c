/*
 * cluster_sys.c - what the local cluster asks of the system: running `ip`
 * and iptables (argv, never a shell), joining network namespaces, starting
 * daemons in sessions of their own, and stopping process groups without
 * ever signalling a process whose pid was reused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cluster.h"
#include "meshctl.h"

extern char **environ;

void
sys_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

const char *
sys_ip_path(void)
{
    static const char *const cands[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    for (size_t i = 0; i < ARRAY_LEN(cands); i++)
        if (access(cands[i], X_OK) == 0)
            return cands[i];
    return "ip";
}

/* Appends up to |max| bytes read from |fd| to *buf; returns false at end of file. */
static bool
drain(int fd, char **buf, size_t *len, size_t max)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    if (*len < max) {
        size_t take = (size_t)n < max - *len ? (size_t)n : max - *len;
        *buf = xrealloc(*buf, *len + take + 1);
        memcpy(*buf + *len, tmp, take);
        *len += take;
        (*buf)[*len] = '\0';
    }
    return true;
}

int
sys_run(const char *const *argv, const char *input, char **out, char *err, size_t errlen)
{
    int in[2] = {-1, -1}, op[2], ep[2];
    char *obuf = NULL, *ebuf = NULL;
    size_t olen = 0, elen = 0, ilen = input ? strlen(input) : 0, ioff = 0;
    int status;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (pipe2(op, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0 ||
        (input != NULL && pipe2(in, O_CLOEXEC) < 0)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        signal(SIGPIPE, SIG_DFL);
        dup2(input != NULL ? in[0] : nul, 0);
        dup2(op[1], 1);
        dup2(ep[1], 2);
        execvp(argv[0], (char *const *)argv);
        dprintf(2, "%s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(op[1]);
    close(ep[1]);
    if (input != NULL)
        close(in[0]);
    signal(SIGPIPE, SIG_IGN);
    bool o_open = true, e_open = true;
    while (o_open || e_open || in[1] >= 0) {
        struct pollfd p[3] = {
            {op[0], o_open ? POLLIN : 0, 0}, {ep[0], e_open ? POLLIN : 0, 0}, {in[1], POLLOUT, 0}};
        if (poll(p, in[1] >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents)
            o_open = drain(op[0], &obuf, &olen, 64u << 20);
        if (p[1].revents)
            e_open = drain(ep[0], &ebuf, &elen, 64 * 1024);
        if (in[1] >= 0 && p[2].revents) {
            ssize_t n = (p[2].revents & POLLOUT) ? write(in[1], input + ioff, ilen - ioff) : -1;
            if (n > 0)
                ioff += (size_t)n;
            if (n < 0 && errno != EINTR && errno != EAGAIN)
                ioff = ilen;
            if (ioff >= ilen) {
                close(in[1]);
                in[1] = -1;
            }
        }
    }
    close(op[0]);
    close(ep[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            status = -1;
            break;
        }
    if (ebuf != NULL && err != NULL && errlen > 0)
        snprintf(err, errlen, "%.*s", (int)strcspn(ebuf, "\n"), ebuf);
    free(ebuf);
    if (out != NULL)
        *out = obuf ? obuf : xstrdup("");
    else
        free(obuf);
    if (status < 0 || !WIFEXITED(status)) {
        if (err != NULL && errlen > 0 && err[0] == '\0')
            snprintf(err, errlen, "%s: killed", argv[0]);
        return -1;
    }
    return WEXITSTATUS(status);
}

int
sys_ip(char *err, size_t errlen, ...)
{
    const char *argv[32];
    size_t n = 0;
    va_list ap;

    argv[n++] = sys_ip_path();
    va_start(ap, errlen);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        CHECK(n < ARRAY_LEN(argv) - 1);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    char e[512];
    int rc = sys_run(argv, NULL, NULL, e, sizeof(e));
    if (rc != 0) {
        char cmd[512] = "ip";
        for (size_t i = 1; i < n; i++)
            snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " %s", argv[i]);
        snprintf(err, errlen, "%s: %s", cmd, e[0] ? e : "failed");
        return -1;
    }
    return 0;
}

int
sys_in_netns(const char *netns, const char *const *argv, const char *input, char *err,
             size_t errlen)
{
    const char *full[64];
    size_t n = 0;
    full[n++] = sys_ip_path();
    full[n++] = "netns";
    full[n++] = "exec";
    full[n++] = netns;
    for (size_t i = 0; argv[i] != NULL; i++) {
        CHECK(n < ARRAY_LEN(full) - 1);
        full[n++] = argv[i];
    }
    full[n] = NULL;
    return sys_run(full, input, NULL, err, errlen);
}

int
sys_netns_enter(const char *name, int *saved, char *err, size_t errlen)
{
    char path[512];
    snprintf(path, sizeof(path), "/run/netns/%s", name);
    *saved = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*saved < 0 || fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
        snprintf(err, errlen, "entering %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (*saved >= 0)
            close(*saved);
        *saved = -1;
        return -1;
    }
    close(fd);
    return 0;
}

void
sys_netns_leave(int saved)
{
    if (saved < 0)
        return;
    CHECK(setns(saved, CLONE_NEWNET) == 0);
    close(saved);
}

int
sys_sysctl_in(const char *netns, const char *key, const char *value, char *err, size_t errlen)
{
    int saved, rc = 0;
    char path[256];

    if (sys_netns_enter(netns, &saved, err, errlen) < 0)
        return -1;
    /* /proc/sys/net belongs to the network namespace of whoever opens it. */
    snprintf(path, sizeof(path), "/proc/sys/%s", key);
    for (char *p = path + strlen("/proc/sys/"); *p; p++)
        if (*p == '.')
            *p = '/';
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, value, strlen(value)) < 0) {
        snprintf(err, errlen, "%s in %s: %s", path, netns, strerror(errno));
        rc = -1;
    }
    if (fd >= 0)
        close(fd);
    sys_netns_leave(saved);
    return rc;
}

pid_t
sys_spawn(const struct spawn *s, char *err, size_t errlen)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    int nsfd = -1;
    if (s->netns != NULL) {
        char path[512];
        snprintf(path, sizeof(path), "/run/netns/%s", s->netns);
        if ((nsfd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            close(ep[0]);
            close(ep[1]);
            return -1;
        }
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(ep[0]);
        close(ep[1]);
        if (nsfd >= 0)
            close(nsfd);
        return -1;
    }
    if (pid == 0) {
        int e = 0;
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        if (setsid() < 0)
            e = errno;
        if (e == 0 && nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0)
            e = errno;
        if (e == 0 && s->cwd != NULL && chdir(s->cwd) < 0)
            e = errno;
        int nul = open("/dev/null", O_RDONLY);
        int log = s->log ? open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644)
                         : open("/dev/null", O_WRONLY);
        if (e == 0 && (nul < 0 || log < 0))
            e = errno;
        if (e == 0) {
            dup2(nul, 0);
            dup2(log, 1);
            dup2(log, 2);
            close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); /* the error pipe closes at exec */
            execve(s->argv[0], (char *const *)s->argv, s->envp ? s->envp : environ);
            e = errno;
        }
        ssize_t w = write(ep[1], &e, sizeof(e));
        (void)w;
        _exit(127);
    }
    close(ep[1]);
    if (nsfd >= 0)
        close(nsfd);
    int e = 0;
    ssize_t n;
    while ((n = read(ep[0], &e, sizeof(e))) < 0 && errno == EINTR) {
    }
    close(ep[0]);
    if (n == (ssize_t)sizeof(e)) {
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "starting %s: %s", s->argv[0], strerror(e));
        return -1;
    }
    return pid;
}

/* Fields of /proc/<pid>/stat after the command: state, ppid, pgrp, ... Returns false when gone. */
static bool
proc_stat(pid_t pid, char *state, int *pgrp, unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return false;
    int ppid;
    /* Fields 3..22: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
       stime cutime cstime priority nice threads itrealvalue starttime. */
    if (sscanf(p + 2,
               "%c %d %d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
               state, &ppid, pgrp, start) != 4)
        return false;
    return true;
}

unsigned long long
proc_starttime(pid_t pid)
{
    char st;
    int pg;
    unsigned long long start;
    return proc_stat(pid, &st, &pg, &start) ? start : 0;
}

bool
proc_alive(pid_t pid, unsigned long long start)
{
    char st;
    int pg;
    unsigned long long s;
    if (pid <= 1 || !proc_stat(pid, &st, &pg, &s) || st == 'Z' || st == 'X')
        return false;
    return start == 0 || s == start;
}

/* Is any live (not zombie) process in group |pgid|? */
static bool
group_alive(pid_t pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    bool alive = false;

    if (d == NULL)
        return kill(-pgid, 0) == 0;
    while (!alive && (e = readdir(d)) != NULL) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        char st;
        int pg;
        unsigned long long s;
        if (*end != '\0' || v <= 1)
            continue;
        if (proc_stat((pid_t)v, &st, &pg, &s) && pg == (int)pgid && st != 'Z' && st != 'X')
            alive = true;
    }
    closedir(d);
    return alive;
}

static bool
wait_group_gone(pid_t pid, int ms)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)ms;
    for (;;) {
        while (waitpid(pid, NULL, WNOHANG) > 0) {
        }
        if (!group_alive(pid))
            return true;
        if (clock_mono_ms() >= deadline)
            return false;
        sys_sleep_ms(50);
    }
}

int
proc_stop_group(pid_t pid, unsigned long long start, int ms)
{
    unsigned long long now = proc_starttime(pid);

    if (pid <= 1)
        return 0;
    /* The pid runs something else: ours ended, and a pid still naming a group is never reused. */
    if (now != 0 && start != 0 && now != start)
        return 0;
    if (!group_alive(pid))
        return 0;
    kill(-pid, SIGTERM);
    if (wait_group_gone(pid, ms))
        return 0;
    kill(-pid, SIGKILL);
    return wait_group_gone(pid, 2000) ? 0 : -1;
}

bool
sys_http_ok_in(const char *netns, const char *hostport, const char *path)
{
    char err[256];
    int saved;
    char *body = NULL;
    size_t len;

    if (sys_netns_enter(netns, &saved, err, sizeof(err)) < 0)
        return false;
    int rc = admin_get(hostport, path, 1000, &body, &len, err, sizeof(err));
    sys_netns_leave(saved);
    free(body);
    return rc == 0;
}

static void
random_bytes(void *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = getrandom((char *)buf + off, n - off, 0);
        if (r < 0 && errno == EINTR)
            continue;
        CHECK(r > 0);
        off += (size_t)r;
    }
}

void
sys_uid(char out[37])
{
    unsigned char b[16];
    random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

void
sys_random_suffix(char out[6])
{
    static const char alpha[] = CL_SAFE_ALPHABET;
    unsigned char b[5];
    random_bytes(b, sizeof(b));
    for (int i = 0; i < 5; i++)
        out[i] = alpha[b[i] % (sizeof(alpha) - 1)];
    out[5] = '\0';
}
