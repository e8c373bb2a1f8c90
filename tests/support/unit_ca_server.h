/*
 * unit_ca_server.h - a CA on loopback for unit tests: TLS with a certificate
 * for istiod.istio-system.svc, HTTP/2, and CreateCertificate answered by
 * casvc_sign() (any node may have any identity), or refused, as the test
 * says. One loop, no threads.
 */
#ifndef MESH_TESTS_UNIT_CA_SERVER_H
#define MESH_TESTS_UNIT_CA_SERVER_H

#include <stdint.h>

#include <openssl/ssl.h>

#include "h2/h2.h"
#include "loop/loop.h"
#include "rpc/rpc.h"
#include "tls/ca.h"

#define UCAS_NAME "istiod.istio-system.svc"
#define UCAS_MAX_CALLS 32
#define UCAS_MAX_SESSIONS 8

enum ucas_mode {
    UCAS_SIGN = 0, /* sign what is asked */
    UCAS_REFUSE,   /* UNAUTHENTICATED "refused by the test" */
};

struct ucas_call {
    struct ucas *srv;
    struct rpc_call *c;
    uint8_t *req;
    size_t len;
};

struct ucas {
    struct loop *loop;
    const struct ca *ca;
    SSL_CTX *ctx;
    int lfd;
    struct loop_io lio;
    uint16_t port;
    enum ucas_mode mode;
    unsigned calls, signed_n, refused;
    char last_auth[600]; /* authorization metadata of the last call */
    struct ucas_call slots[UCAS_MAX_CALLS];
    struct h2_session *sess[UCAS_MAX_SESSIONS];
};

/* Listens on 127.0.0.1 (an ephemeral port, in |s->port|), signing with |ca|. */
void ucas_start(struct ucas *s, struct loop *l, const struct ca *ca);
/* Closes every session and the listener (runs the loop's deferred work). */
void ucas_stop(struct ucas *s);

#endif
