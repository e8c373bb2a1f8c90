/*
 * kube_model.h - a model Kubernetes API server for test_kube_reflector.c: the
 * fake (tests/support/unit_kubesrv.c) serves ConfigMaps from an in-test model
 * with a resourceVersion counter, an event log and a compaction mark, paged
 * LISTs with continue tokens, and WATCHes that replay the log and then stream
 * changes; faults are scripted per test. A sink keeps the reflector's view.
 */
#ifndef MESH_TESTS_KUBE_MODEL_H
#define MESH_TESTS_KUBE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kube/kube.h"
#include "unit_kubesrv.h"

#define MAXO  64
#define MAXEV 512

struct mobj {
    char name[32];
    int val, rv;
    bool alive;
};

struct mev {
    int rv;
    const char *type;
    char name[32];
    int val;
};

struct m {
    struct loop *loop;
    struct fks *f;
    struct kube_client *c;
    struct kube_reflector *rf;
    /* the model */
    int rv, compacted;
    struct mobj o[MAXO];
    int n_o;
    struct mev ev[MAXEV];
    int n_ev;
    bool absent;                     /* the kind is not served (404) */
    bool mute;                       /* changes are not pushed to open watches */
    bool end_watches_at_once;        /* every watch ends right after its replay */
    int page;                        /* the server's page size */
    size_t pace;                     /* watch bytes per loop turn (0: all at once) */
    int list_fault[8], n_list_fault; /* statuses for the next LISTs, in order */
    const char *list_fault_body[8];
    const char *list_fault_hdr[8];
    bool continue_410; /* the next continue page answers 410 */
    bool endless;      /* continue pages never end */
    int watch_fault;   /* the next WATCH answers this status */
    /* what the server saw */
    int n_lists, n_watches;
    char fsel[128], lsel[128]; /* selectors of the last request ("-" if none) */
    char list_rv[16][64];      /* resourceVersion of each LIST ("-" if absent) */
    char watch_rv[64][64];
    uint64_t list_ms[16];
    /* the sink's view */
    int view[MAXO]; /* val, or -1 when absent */
    int upserts[MAXO], removes[MAXO];
    int synced, synced_false;
    bool last_served;
    bool stop_in_upsert;
};

extern const struct kube_resource cm; /* v1 configmaps */
extern const struct kube_sink sink;   /* into struct m's view */

int find(struct m *m, const char *name);
char *obj_json(const char *name, int val, int rv, bool with_kind);
char *event_line(const struct mev *e);
void model_set(struct m *m, const char *name, int val);
void model_del(struct m *m, const char *name);
bool view_ok(void *arg);
void expect_view(struct m *m);
void setup_m(struct m *m, unsigned bo_min, unsigned bo_max);
void start(struct m *m);
void teardown_m(struct m *m);
void stats(struct m *m, struct kube_reflector_stats *st);
size_t open_watches(struct m *m, struct fks_req **out);
bool cond_watching(void *arg);
void wait_watch_n(struct m *m, int n);
void wait_watching(struct m *m);
void end_watches(struct m *m);
void seed(struct m *m, int n);
int num(const char *s);

#endif
