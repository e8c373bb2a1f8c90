/*
 * main.c - meshctl: inspect and operate an amesh mesh.
 *
 * A table of {name, entry, summary} in the WireGuard tools style; each
 * subcommand parses its own flags and returns the process exit code.
 */
#include <stdio.h>
#include <string.h>

#include "kcluster.h"
#include "meshctl.h"

static int help_main(int argc, char **argv);

static const struct command {
    const char *name;
    meshctl_cmd_fn *fn;
    void (*usage)(FILE *f);
    const char *summary;
} commands[] = {
    {"ztunnel-config", ztunnel_config_main, ztunnel_config_usage,
     "show a ztunnel's workloads, services, certificates, policies, connections"},
    {"analyze", analyze_main, analyze_usage,
     "check Kubernetes YAML as meshd reads it (file:line for every problem)"},
    {"install", install_main, install_usage,
     "create the local cluster: nodes, meshd, ztunnel and mesh-cni per node"},
    {"uninstall", uninstall_main, uninstall_usage,
     "remove the local cluster and everything it made"},
    {"apply", apply_main, apply_usage, "create or update objects from Kubernetes YAML (-f)"},
    {"delete", delete_main, delete_usage, "delete objects (-f FILE, or KIND NAME...)"},
    {"get", get_main, get_usage, "list pods, services, namespaces, deployments, ..."},
    {"label", label_main, label_usage, "set or remove labels (e.g. enroll a namespace)"},
    {"exec", exec_main, exec_usage, "run a command in a pod's network namespace"},
    {"logs", logs_main, logs_usage, "print the logs of a pod, ztunnel, mesh-cni or meshd"},
    {"waypoint", waypoint_main, waypoint_usage,
     "generate, apply, list, show the status of, or delete waypoints (L7 proxies)"},
    {"waypoint-config", waypoint_config_main, waypoint_config_usage,
     "show a waypoint's routes, L7 policies, services, workloads, certificate"},
    {"help", help_main, NULL, "show this help, or a command's (meshctl help COMMAND)"},
};

static const struct command *
find(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void
usage(FILE *f)
{
    fprintf(f, "Usage: meshctl COMMAND [ARGS...]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'meshctl help COMMAND' or 'meshctl COMMAND --help' for a command's flags.\n");
}

static int
help_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return 0;
    }
    const struct command *c = find(argv[1]);
    if (c == NULL || c->usage == NULL) {
        fprintf(stderr, "meshctl: no help for \"%s\"; see 'meshctl help'\n", argv[1]);
        return MESHCTL_EXIT_USAGE;
    }
    c->usage(stdout);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MESHCTL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "__pod-run") == 0) /* a pod's supervisor, started by apply */
        return pod_run_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "__kubelet") == 0) /* a node's kubelet, started by install --kubernetes */
        return kubelet_main(argc - 1, argv + 1);
    /* kubectl's way to the API server, started by install --kubernetes */
    if (strcmp(argv[1], "__forward") == 0)
        return kforward_main(argc - 1, argv + 1);
    const struct command *c = find(argv[1]);
    if (c == NULL) {
        fprintf(stderr, "meshctl: unknown command \"%s\"; see 'meshctl help'\n", argv[1]);
        return MESHCTL_EXIT_USAGE;
    }
    return c->fn(argc - 1, argv + 1);
}
