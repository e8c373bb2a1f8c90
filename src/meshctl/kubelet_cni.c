/*
 * kubelet_cni.c - the node's CNI chain run as a container runtime's libcni
 * runs a configuration list (CNI spec 1.0): ADD each plugin in order with the
 * previous plugin's result as prevResult, CHECK in order and DEL in reverse
 * with the cached result. Each plugin is a child with the CNI_* environment
 * and its configuration on stdin; its stdout is capped (KL_CNI_OUT_MAX) and
 * its run bounded (KL_CNI_TIMEOUT_MS, then SIGKILL).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cni/cni.h"
#include "kubelet.h"

uint64_t
kl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The plugin's executable: |type| in one of |path|'s directories. */
static char *
find_plugin(const char *type, const char *path)
{
    if (strchr(type, '/') != NULL || type[0] == '.' || type[0] == '\0')
        return NULL;
    char *dirs = xstrdup(path), *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
        char *exe = xasprintf("%s/%s", d, type);
        if (access(exe, X_OK) == 0) {
            free(dirs);
            return exe;
        }
        free(exe);
    }
    free(dirs);
    return NULL;
}

/*
 * Runs |exe| with |env|, |in| on stdin; *out gets stdout (NUL-terminated).
 * Returns the exit status, or -1 with |err|.
 */
static int
exec_plugin(const char *exe, char **env, const char *in, char **out, char *err, size_t errlen)
{
    int ip[2], op[2];
    if (pipe2(ip, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe2(op, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        close(ip[0]);
        close(ip[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int nul = open("/dev/null", O_WRONLY);
        if (dup2(ip[0], 0) < 0 || dup2(op[1], 1) < 0 || (nul >= 0 && dup2(nul, 2) < 0))
            _exit(127);
        char *argv[] = {(char *)exe, NULL};
        execve(exe, argv, env);
        _exit(127);
    }
    close(ip[0]);
    close(op[1]);
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(ip[1]);
        close(op[0]);
        return -1;
    }
    fcntl(ip[1], F_SETFL, O_NONBLOCK);
    size_t in_len = strlen(in), in_off = 0, len = 0, cap = 4096;
    char *buf = xmalloc(cap);
    uint64_t deadline = kl_mono_ms() + KL_CNI_TIMEOUT_MS;
    bool timed_out = false, too_big = false;
    int wfd = ip[1];
    for (;;) {
        struct pollfd pf[2] = {{.fd = op[0], .events = POLLIN}, {.fd = wfd, .events = POLLOUT}};
        uint64_t now = kl_mono_ms();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        int n = poll(pf, wfd >= 0 ? 2 : 1, (int)(deadline - now));
        if (n < 0 && errno != EINTR)
            break;
        if (wfd >= 0 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(wfd, in + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                in_off = in_len; /* the plugin closed stdin: it has what it wanted */
            if (in_off >= in_len) {
                close(wfd);
                wfd = -1;
            }
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (len + 1 >= cap) {
                if (cap >= KL_CNI_OUT_MAX) {
                    too_big = true;
                    break;
                }
                cap *= 2;
                buf = xrealloc(buf, cap);
            }
            ssize_t r = read(op[0], buf + len, cap - len - 1);
            if (r == 0)
                break;
            if (r > 0)
                len += (size_t)r;
            else if (errno != EINTR && errno != EAGAIN)
                break;
        }
    }
    if (wfd >= 0)
        close(wfd);
    close(op[0]);
    if (timed_out || too_big)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    buf[len] = '\0';
    if (timed_out || too_big) {
        snprintf(err, errlen, "%s: %s", exe,
                 timed_out ? "timed out" : "printed more than the result cap");
        free(buf);
        return -1;
    }
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A plugin's stdout as JSON (depth and size checked first), or NULL. */
static json_t *
parse_out(const char *out)
{
    size_t n = strlen(out);
    if (n == 0 || !cni_json_depth_ok(out, n, CNI_DEPTH_MAX))
        return NULL;
    return json_loadb(out, n, JSON_REJECT_DUPLICATES, NULL);
}

/* One plugin's run; *result (ADD) gets its parsed stdout. */
static int
run_one(const json_t *list, size_t i, const char *cmd, char **env, const char *cni_path,
        const json_t *prev, json_t **result, char *err, size_t errlen)
{
    json_t *conf = kl_plugin_conf(list, i, prev);
    const char *type = jsd(conf, "type", "");
    char *exe = conf != NULL ? find_plugin(type, cni_path) : NULL;
    int rc = -1;

    if (conf == NULL) {
        snprintf(err, errlen, "plugin %zu: not an object", i);
    } else if (exe == NULL) {
        snprintf(err, errlen, "plugin %s not found in %s", type, cni_path);
    } else {
        char *in = json_dumps(conf, JSON_COMPACT), *out = NULL;
        int st = exec_plugin(exe, env, in, &out, err, errlen);
        json_t *o = out != NULL ? parse_out(out) : NULL;
        if (st == 0 && (strcmp(cmd, "ADD") != 0 || json_is_object(o))) {
            if (result != NULL) {
                *result = o;
                o = NULL;
            }
            rc = 0;
        } else if (st == 0) {
            snprintf(err, errlen, "%s %s: the result is not a JSON object", type, cmd);
        } else if (st > 0) {
            /* The spec's error object: code, msg, details. */
            snprintf(err, errlen, "%s %s: exit %d: %s%s%s (code %lld)", type, cmd, st,
                     jsd(o, "msg", "no error object"), js(o, "details") ? ": " : "",
                     jsd(o, "details", ""),
                     (long long)json_integer_value(json_object_get(o, "code")));
        }
        json_decref(o);
        free(in);
        free(out);
    }
    free(exe);
    json_decref(conf);
    return rc;
}

int
kl_cni_run(const json_t *list, const char *cmd, const char *id, const char *netns, const char *args,
           const char *cni_path, const json_t *prev, json_t **result, char *err, size_t errlen)
{
    size_t n = json_array_size(json_object_get(list, "plugins"));
    char **env = kl_cni_env(cmd, id, netns, args, cni_path);
    int rc = 0;

    if (result != NULL)
        *result = NULL;
    if (strcmp(cmd, "ADD") == 0) {
        json_t *last = NULL;
        for (size_t i = 0; i < n && rc == 0; i++) {
            json_t *r = NULL;
            rc = run_one(list, i, cmd, env, cni_path, last, &r, err, errlen);
            if (rc == 0) {
                json_decref(last);
                last = r;
            }
        }
        if (rc == 0 && result != NULL)
            *result = last;
        else
            json_decref(last);
    } else if (strcmp(cmd, "CHECK") == 0) {
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = run_one(list, i, cmd, env, cni_path, prev, NULL, err, errlen);
    } else {
        char first[512] = "";
        for (size_t i = n; i-- > 0;)
            if (run_one(list, i, cmd, env, cni_path, prev, NULL, err, errlen) < 0 && rc == 0) {
                snprintf(first, sizeof(first), "%s", err);
                rc = -1;
            }
        if (rc < 0)
            snprintf(err, errlen, "%s", first);
    }
    kl_strv_free(env);
    return rc;
}
