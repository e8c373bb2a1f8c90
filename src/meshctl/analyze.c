/*
 * analyze.c - meshctl analyze: offline lint of the Kubernetes YAML meshd
 * would read, with the same parser and conversion (lib/k8s), so what it
 * reports is exactly what meshd would log and refuse.
 *
 *   meshctl analyze [-f FILE|DIR]... [-o text|json]
 *
 * Without -f it reads ./ (as meshd --config-dir .). Errors, warnings and
 * infos are counted apart. Exit status, as istioctl analyze with its default
 * --failure-threshold Error: 0 when no error stands (warnings and infos
 * alone pass), 1 when one does (a file or resource meshd would not apply),
 * 2 on bad usage or unreadable input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "base/base.h"
#include "k8s/k8s.h"
#include "k8sconv/k8sconv.h"
#include "meshctl.h"

void
analyze_usage(FILE *f)
{
    fprintf(f, "Usage: meshctl analyze [-f FILE|DIR]... [-o text|json]\n"
               "  Checks Kubernetes YAML as meshd reads it (file:line for every problem).\n"
               "  -f, --filename PATH   a file or a directory (not recursive); repeatable;\n"
               "                        default: the current directory\n"
               "  -o, --output FORMAT   text (default) or json\n"
               "Exit status: 0 no errors (warnings and infos alone pass), 1 errors found,\n"
               "2 bad usage or unreadable input.\n");
}

static const char *
severity_name(int sev)
{
    return sev == K8S_ERROR ? "Error" : sev == K8S_WARNING ? "Warning" : "Info";
}

int
analyze_main(int argc, char **argv)
{
    const char *paths[256];
    size_t n_paths = 0;
    bool json = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-f") == 0 || strcmp(a, "--filename") == 0) && i + 1 < argc) {
            if (n_paths == ARRAY_LEN(paths)) {
                fprintf(stderr, "meshctl analyze: at most %zu -f paths\n", ARRAY_LEN(paths));
                return MESHCTL_EXIT_USAGE;
            }
            paths[n_paths++] = argv[++i];
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
            const char *o = argv[++i];
            if (strcmp(o, "json") != 0 && strcmp(o, "text") != 0) {
                fprintf(stderr, "meshctl analyze: -o: \"%s\" is not text or json\n", o);
                return MESHCTL_EXIT_USAGE;
            }
            json = strcmp(o, "json") == 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            analyze_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "meshctl analyze: unexpected argument \"%s\"\n", a);
            analyze_usage(stderr);
            return MESHCTL_EXIT_USAGE;
        }
    }
    if (n_paths == 0)
        paths[n_paths++] = ".";

    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0}, all = {0};
    int rc = 0;
    for (size_t i = 0; i < n_paths; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) < 0) {
            fprintf(stderr, "meshctl analyze: %s: %s\n", paths[i], strerror(errno));
            rc = MESHCTL_EXIT_USAGE;
            goto out;
        }
        int r = S_ISDIR(sb.st_mode) ? k8s_store_sync_dir(st, paths[i], &d)
                                    : k8s_store_load_file(st, paths[i], &d);
        if (r < 0 && r != -MESH_ECONFIG) {
            fprintf(stderr, "meshctl analyze: %s: %s\n", paths[i], mesh_strerror(r));
            rc = MESHCTL_EXIT_USAGE;
            goto out;
        }
    }
    /* Conversion warnings too (e.g. a named targetPort a selected pod lacks). */
    k8s_build_diags(st, &all);

    size_t errors = k8s_diags_count(&all, K8S_ERROR);
    size_t warnings = k8s_diags_count(&all, K8S_WARNING);
    size_t infos = k8s_diags_count(&all, K8S_INFO);
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < all.n; i++) {
            const struct k8s_diag *g = &all.v[i];
            json_t *o = json_pack("{s:s, s:s, s:i, s:s}", "level", severity_name(g->severity),
                                  "file", g->file ? g->file : "", "line", g->line, "message",
                                  g->msg ? g->msg : "");
            if (g->code != NULL)
                json_object_set_new(o, "code", json_string(g->code));
            json_array_append_new(arr, o);
        }
        char *s = json_dumps(arr, JSON_INDENT(2));
        printf("%s\n", s ? s : "[]");
        free(s);
        json_decref(arr);
    } else if (all.n == 0) {
        printf("\u2714 No validation issues found when analyzing %s.\n",
               n_paths == 1 ? paths[0] : "the given files");
    } else {
        for (size_t i = 0; i < all.n; i++) {
            char *s = k8s_diag_str(&all.v[i]);
            printf("%s\n", s);
            free(s);
        }
        printf("%zu error(s), %zu warning(s), %zu info(s)\n", errors, warnings, infos);
    }
    rc = errors > 0 ? MESHCTL_EXIT_FAIL : 0;
out:
    k8s_diags_clear(&d);
    k8s_diags_clear(&all);
    k8s_store_free(st);
    return rc;
}
