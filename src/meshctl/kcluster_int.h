/*
 * kcluster_int.h - what the files of `meshctl install --kubernetes` share:
 * kcluster_pki.c (credentials), kcluster_cp.c (control plane, kubectl access),
 * kcluster_install.c (the steps in order, the mesh, the kubelets).
 */
#ifndef MESH_MESHCTL_KCLUSTER_INT_H
#define MESH_MESHCTL_KCLUSTER_INT_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "cluster.h"
#include "kcluster.h"

#define KPKI_TOKEN_LEN 32 /* hex characters: 128 random bits */

/*
 * Writes into |dir|: ca.crt, ca.key (the cluster CA), apiserver.crt/.key
 * (serving certificate for 127.0.0.1, KCLUSTER_APISERVER_IP, the kubernetes
 * VIP and kubernetes.default.svc...), sa.key/sa.pub (service-account token
 * signing pair). Keys are mode 0600. Returns 0, or -1 with |err| set.
 */
int kpki_make(const char *dir, char *err, size_t errlen);
/* A fresh bearer token (lowercase hex). Returns 0 or -1. */
int kpki_token(char out[KPKI_TOKEN_LEN + 1]);
/* A kubeconfig (mode 0600) for |user| with |token| against |server|, trusting |ca_path|. */
int kpki_kubeconfig(const char *path, const char *server, const char *ca_path, const char *user,
                    const char *token, char *err, size_t errlen);

/* ---- kcluster_cp.c ---- */

/* What the install keeps at hand. */
struct kinst {
    struct cluster *c;
    char cp[64];
    char *kube;  /* <dir>/kube */
    char *pki;   /* <dir>/kube/pki */
    char *admin; /* <dir>/kube/admin.kubeconfig (server KCLUSTER_APISERVER) */
    char kubectl[PATH_MAX];
    char err[1024];
};

/* The source tree (manifests/, tools/kube/build.sh): $AMESH_SOURCE_DIR or the build's. */
const char *kc_source_dir(void);
/* An executable |name| in $PATH (its path into |out|)? */
bool kc_in_path(const char *name, char *out, size_t outlen);
/* "12.3 s" or "6m05s". */
void kc_fmt_secs(double s, char *out, size_t outlen);
/* Monotonic seconds. */
double kc_now_s(void);
/* Prints a check-mark line and flushes. */
void kc_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* kubectl as admin inside <p>-cp, |input| on stdin (may be NULL). Exit status, or -1. */
int kc_kubectl(struct kinst *k, const char *input, const char *const *args);
/* Each step returns 0, or an exit code after inst_fail() undid the installation. */
/* The binaries from the cache, or built (log in |log|); 0 or -1 with |err|. */
int kc_binaries(struct cluster *c, const char *log, char *err, size_t errlen);
/* The token file and a kubeconfig per identity; 0 or -1 (k->err). */
int kc_credentials(struct kinst *k);
int kc_control_plane(struct kinst *k);
int kc_objects(struct kinst *k);
int kc_kubectl_access(struct kinst *k, int *port);
/* `kubectl get --raw /readyz` from the host through the forwarder. */
bool kc_host_kubectl_ok(struct kinst *k);
pid_t kc_start_in_cp(struct kinst *k, const char *label, const char *log, const char *const *argv);

#endif
