/*
 * enroll_internal.h - the agent's state, shared by enroll.c (the reconciler,
 * the ZDS and plugin sides) and enroll_scan.c (pods no plugin reported, found
 * by the /proc scan).
 */
#ifndef MESH_CNI_ENROLL_INTERNAL_H
#define MESH_CNI_ENROLL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "k8s/k8s.h"
#include "kube/kube.h"
#include "kwatch.h"
#include "log/log.h"
#include "loop/loop.h"
#include "mark.h"
#include "mesh_cni.h"
#include "zds/zds_server.h"

struct dirwatch;
struct plugin_srv;

/* A pod in the mesh, as we put it there. */
struct member {
    struct member *next;
    char *key;   /* "<ns>/<name>" */
    char *uid;   /* what ztunnel knows it by */
    char *netns; /* the path we opened */
    uint64_t ino;
    bool seen;  /* still wanted in this round */
    bool acked; /* a ztunnel acked its AddWorkload */
    char *nack; /* or refused it, saying this */
};

/* A pod sandbox the CNI plugin reported (ADD), until its DEL. */
struct record {
    struct record *next;
    char *key; /* "<ns>/<name>" */
    char *uid; /* "" when the runtime passed none */
    char *container_id;
    char *netns;
};

struct cni {
    struct loop *loop;
    struct cni_opts o;
    struct k8s_store *store;
    struct dirwatch *watch;
    struct zds_server *zds;
    struct member *members;
    size_t n_members;
    struct record *records;
    size_t n_records;
    struct plugin_srv *plugin;
    struct kube_client *kube; /* with --kubeconfig / --in-cluster */
    struct cni_kube *kw;
    struct marker *marker;
    struct loop_timer zds_retry;
    /* the search for pods without a reported sandbox (scan.h) */
    struct loop_timer scan_timer;
    bool scan_armed;
    uint64_t scan_last_ms, scan_sig, scan_backoff_ms;
    struct log_ratelimit scan_rl;
};

/* With the API server as a source: not every kind listed once yet. */
bool enroll_gated(const struct cni *c);
struct record **enroll_record_slot(struct cni *c, const char *key);
void enroll_record_free(struct record *r);
/* Remembers |r|'s sandbox as its pod's current one; -MESH_ELIMIT over the cap. */
int enroll_record_set(struct cni *c, const struct cni_req *r);
/* The pod's network namespace: its annotation, else the sandbox recorded for it. */
const char *enroll_pod_netns(struct cni *c, const struct k8s_obj *pod,
                             const struct k8s_pod_info *pi, const char *key);
/* The store as it is against the pods in the mesh. */
void enroll_converge(struct cni *c);

/* ---- enroll_scan.c ---- */

/* Arms the next scan if pods wait for one: soon for a new set, with backoff for the same. */
void enroll_scan_maybe(struct cni *c);
/* Drops the scan's records whose pod went (no plugin DEL will come for them). */
void enroll_forget_scanned(struct cni *c);

#endif
