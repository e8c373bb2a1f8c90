/*
 * inpod_tool.c - test driver for the inpod module (tests/integration/10-inpod-rules.sh).
 *
 *   inpod_tool apply|remove NETNS [options]   NETNS: a name under /run/netns, or a path
 *   inpod_tool rules 4|6 [options]            prints inpod_rules()
 *   options: --dns --ipv6 --probe-v4 A --probe-v6 A --timeout MS --bin-dir DIR
 *
 * Exits 0, or 1 with the error on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inpod/inpod.h"
#include "log/log.h"

static void __attribute__((noreturn)) usage(void)
{
    fprintf(stderr, "usage: inpod_tool apply|remove NETNS | rules 4|6  [--dns] [--ipv6] "
                    "[--probe-v4 A] [--probe-v6 A] [--timeout MS] [--bin-dir DIR] [--debug]\n");
    exit(2);
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
        else if (strcmp(a, "--ipv6") == 0)
            o.ipv6 = true;
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
    if (strcmp(argv[1], "apply") != 0 && strcmp(argv[1], "remove") != 0)
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
    if (strcmp(argv[1], "apply") == 0)
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
