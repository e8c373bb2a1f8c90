/*
 * wp_h1_fixture.h - drives wp_http1_serve() over socketpairs: a test client on one end of the
 * downstream pair, and fake endpoints behind a fake upstream connect() (each connection a
 * socketpair whose far end the test reads and answers), with a model of two services
 * (echo: endpoints 0..2, echo2: endpoint 3), a Route from a route_build spec and policies.
 */
#ifndef MESH_TESTS_WP_H1_FIXTURE_H
#define MESH_TESTS_WP_H1_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "l7policy/l7policy.h"
#include "route/route.h"
#include "waypoint/l7.h"

#define WPT_EPS      4
#define WPT_BACKENDS 64
#define WPT_DONE     2048

struct wpt_backend {
    int fd;
    int ep; /* endpoint index */
    uint16_t port;
    char *rx;
    size_t rx_len, rx_cap;
    bool eof;
};

struct wpt_done {
    int status;
    unsigned flags, attempts;
    int ep; /* -1: none */
    char method[16], path[256], route[64], policy[128], details[128], request_id[64];
    uint64_t bytes_in, bytes_out;
    bool grpc;
    char grpc_status[8]; /* "" none */
};

struct wpt {
    struct loop *loop;
    int cfd; /* the client */
    char *crx;
    size_t crx_len, crx_cap;
    bool ceof;
    struct workload *ws[WPT_EPS];
    struct model *m;
    struct route_set *routes;
    struct l7pol_set *pols;
    struct route_store rstore;
    struct wp_l7_conn conn;
    struct service *svc;
    /* fake endpoints */
    int refuse[WPT_EPS];     /* connect fails (later) with this error */
    int refuse_now[WPT_EPS]; /* connect() itself fails with this error */
    struct wpt_backend be[WPT_BACKENDS];
    int n_be;
    int connects[WPT_EPS];
    int pending; /* connects not yet called back */
    struct wpt_done done[WPT_DONE];
    int n_done;
    int closed;
};

/* Sets up with Route |spec| (NULL: no Route, the service's default) and no policies. */
void wpt_setup(struct wpt *t, const char *spec);
/* The same, pod-addressed (bound workload |workload| >= 0, no service) and/or another path mode. */
void wpt_setup_ex(struct wpt *t, const char *spec, int workload, enum l7path_mode mode);
/* The same with another engine (wp_http2_serve). */
void wpt_setup_serve(struct wpt *t, const char *spec, int workload, enum l7path_mode mode,
                     void (*serve)(const struct wp_l7_conn *c, struct stream *down));
void wpt_teardown(struct wpt *t);
/* Replaces the policies with |pols| (taken). */
void wpt_set_policies(struct wpt *t, struct l7pol_set *pols);
/* Marks endpoint |i| unhealthy. */
void wpt_unhealthy(struct wpt *t, int i);

void wpt_send(struct wpt *t, const char *s);
void wpt_send_n(struct wpt *t, const void *p, size_t n);
/* Runs until the client has received |needle| |count| times (or EOF with |eof|); false on timeout.
 */
bool wpt_client_has(struct wpt *t, const char *needle, int count);
bool wpt_client_eof(struct wpt *t);
/* Runs until backend connection |i| exists and has received |needle|. */
bool wpt_be_has(struct wpt *t, int i, const char *needle);
bool wpt_be_eof(struct wpt *t, int i);
void wpt_be_send(struct wpt *t, int i, const char *s);
void wpt_be_send_n(struct wpt *t, int i, const void *p, size_t n);
void wpt_be_close(struct wpt *t, int i);
/* Runs until |n| requests were reported. */
bool wpt_dones(struct wpt *t, int n);
void wpt_run(struct wpt *t, uint64_t ms);
/* Occurrences of |needle| in the bytes of the client / of backend |i|. */
int wpt_count(const char *hay, size_t len, const char *needle);

#endif
