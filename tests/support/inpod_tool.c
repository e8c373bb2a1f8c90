/*
 * inpod_tool.c - test driver for the inpod module (tests/integration/10-inpod-rules.sh).
 *
 *   inpod_tool apply|remove NETNS [options]   NETNS: a name under /run/netns, or a path
 *   inpod_tool rules 4|6 [options]            prints inpod_rules()
 *   inpod_tool conntrack NETNS                prints the pod's TCP conntrack entries that
 *                                             carry our mark bits: "0x1000 SRC:P DST:P"
 *   options: --dns --probe-v4 A --probe-v6 A --timeout MS --bin-dir DIR --debug
 *   (apply and remove always cover both families)
 *
 * Exits 0, or 1 with the error on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "inpod/inpod.h"
#include "inpod/inpod_ct.h"
#include "log/log.h"

static void __attribute__((noreturn)) usage(void)
{
    fprintf(stderr, "usage: inpod_tool apply|remove NETNS | rules 4|6  [--dns] "
                    "[--probe-v4 A] [--probe-v6 A] [--timeout MS] [--bin-dir DIR] [--debug]\n");
    exit(2);
}

static void
end_str(const struct inpod_flow *f, bool second, char *out, size_t len)
{
    char a[INET6_ADDRSTRLEN];

    inet_ntop(f->family, second ? f->b : f->a, a, sizeof(a));
    snprintf(out, len, f->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a,
             second ? f->pb : f->pa);
}

static int
print_conntrack(int fd, char *err, size_t errlen)
{
    struct inpod_ct *e;
    size_t n;
    int rc = inpod_ct_list(fd, &e, &n, err, errlen);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char src[64], dst[64];
        uint32_t ours = e[i].mark & (INPOD_CT_EXISTING | INPOD_CT_NEW);
        if (e[i].proto != IPPROTO_TCP || ours == 0)
            continue;
        end_str(&e[i].orig, false, src, sizeof(src));
        end_str(&e[i].orig, true, dst, sizeof(dst));
        printf("0x%x %s %s\n", ours, src, dst);
    }
    free(e);
    return 0;
}

int
main(int argc, char **argv)
{
    struct inpod_opts o = {0};
    char path[4096], err[2048];
    int fd, rc;

    if (argc < 3)
        usage();
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--dns") == 0)
            o.dns_capture = true;
        else if (strcmp(a, "--debug") == 0)
            log_set_level(LOG_DEBUG);
        else if (i + 1 >= argc)
            usage();
        else if (strcmp(a, "--probe-v4") == 0)
            o.probe_v4 = argv[++i];
        else if (strcmp(a, "--probe-v6") == 0)
            o.probe_v6 = argv[++i];
        else if (strcmp(a, "--timeout") == 0)
            o.timeout_ms = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(a, "--bin-dir") == 0)
            o.bin_dir = argv[++i];
        else
            usage();
    }
    if (strcmp(argv[1], "rules") == 0) {
        char *t = inpod_rules(strcmp(argv[2], "6") == 0 ? INPOD_IPV6 : INPOD_IPV4, &o);
        if (t == NULL) {
            fprintf(stderr, "inpod_tool: bad probe address\n");
            return 1;
        }
        fputs(t, stdout);
        free(t);
        return 0;
    }
    if (strcmp(argv[1], "apply") != 0 && strcmp(argv[1], "remove") != 0 &&
        strcmp(argv[1], "conntrack") != 0)
        usage();
    if (strchr(argv[2], '/') != NULL)
        snprintf(path, sizeof(path), "%s", argv[2]);
    else
        snprintf(path, sizeof(path), "/run/netns/%s", argv[2]);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "inpod_tool: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (strcmp(argv[1], "conntrack") == 0) {
        rc = print_conntrack(fd, err, sizeof(err));
    } else if (strcmp(argv[1], "apply") == 0)
        rc = inpod_apply(fd, &o, err, sizeof(err));
    else
        rc = inpod_remove(fd, &o, err, sizeof(err));
    close(fd);
    if (rc < 0) {
        fprintf(stderr, "inpod_tool: %s: %s (%s)\n", argv[1], err, strerror(-rc));
        return 1;
    }
    return 0;
}
