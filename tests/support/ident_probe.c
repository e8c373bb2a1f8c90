/*
 * ident_probe.c - a proxy with exactly one identity, shaped like the waypoint
 * will be, built only from lib/identity and lib/ads: its certificate from
 * meshd's CA with the node token, its config over delta ADS with a "router"
 * node id and NAMESPACE / NAME / SERVICE_ACCOUNT metadata. Driver for
 * 29-identity-lib.sh.
 *
 *   ident_probe --xds-address HOST:PORT --root-cert FILE --token FILE --node N
 *               --namespace NS --name NAME --service-account SA
 *               [--refuse RESOURCE] [--seconds S]
 *
 * Prints "certificate <uri> valid until <t>" when the certificate arrives and
 * "push applied: <n> addresses" after each Address response and "synced <n>
 * addresses" when every type was ACKed; exits 0 once it has the certificate
 * and is synced, 1 after S seconds (default 10) with the last failure. With
 * --refuse, the Address resource of that name is refused (NACK) with
 * "refused by the probe", and one push handled is enough (a NACKed type is
 * never synced).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ads/ads.h"
#include "base/base.h"
#include "identity/certmgr.h"
#include "identity/node_tokens.h"
#include "log/log.h"
#include "net/addr.h"
#include "tls/tls_cp.h"

#define CP_NAME "istiod.istio-system.svc"

struct probe {
    struct loop *loop;
    struct certmgr *certs;
    char identity[300];
    const char *refuse;
    size_t n_addresses;
    unsigned pushes;
    bool have_cert, synced;
    struct certmgr_waiter wait;
};

static void
done_if_both(struct probe *p)
{
    /* A NACKed type is never synced: with --refuse, one push handled is enough. */
    if (p->have_cert && (p->synced || (p->refuse != NULL && p->pushes > 0)))
        loop_stop(p->loop);
}

static void
on_cert(void *arg)
{
    struct probe *p = arg;
    struct tls_creds *c = certmgr_get(p->certs, p->identity);
    if (c == NULL)
        return;
    printf("certificate %s valid until %ld\n", tls_creds_id(c)->uri, tls_creds_not_after(c));
    fflush(stdout);
    p->have_cert = true;
    done_if_both(p);
}

static const char *
address_apply(void *arg, const char *name, const uint8_t *bytes, size_t len)
{
    struct probe *p = arg;
    (void)bytes, (void)len;
    if (p->refuse != NULL && strcmp(name, p->refuse) == 0)
        return "refused by the probe";
    p->n_addresses++;
    return NULL;
}

static void
address_commit(void *arg)
{
    struct probe *p = arg;
    p->pushes++;
    printf("push applied: %zu addresses\n", p->n_addresses);
    fflush(stdout);
    done_if_both(p);
}

static void
on_synced(void *arg)
{
    struct probe *p = arg;
    if (p->synced)
        return;
    printf("synced %zu addresses\n", p->n_addresses);
    fflush(stdout);
    p->synced = true;
    done_if_both(p);
}

static void
on_timeout(void *arg)
{
    struct probe *p = arg;
    const char *e = certmgr_last_error(p->certs, p->identity);
    fprintf(stderr, "timeout: certificate %s%s%s, xDS %s\n", p->have_cert ? "ok" : "missing",
            e && *e ? ": " : "", e ? e : "", p->synced ? "synced" : "not synced");
    loop_stop(p->loop);
}

static void
usage(void)
{
    fprintf(stderr, "usage: ident_probe --xds-address HOST:PORT --root-cert FILE --token FILE "
                    "--node N --namespace NS --name NAME --service-account SA [--refuse NAME] "
                    "[--seconds S]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"xds-address", required_argument, NULL, 'x'}, {"root-cert", required_argument, NULL, 'r'},
        {"token", required_argument, NULL, 't'},       {"node", required_argument, NULL, 'n'},
        {"namespace", required_argument, NULL, 's'},   {"name", required_argument, NULL, 'N'},
        {"service-account", required_argument, NULL, 'a'},
        {"refuse", required_argument, NULL, 'R'},      {"seconds", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    const char *xds = NULL, *root = NULL, *token = NULL, *node = NULL, *ns = NULL, *name = NULL;
    const char *sa = NULL;
    long seconds = 10;
    struct probe p = {0};
    char err[512];
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'x': xds = optarg; break;
        case 'r': root = optarg; break;
        case 't': token = optarg; break;
        case 'n': node = optarg; break;
        case 's': ns = optarg; break;
        case 'N': name = optarg; break;
        case 'a': sa = optarg; break;
        case 'R': p.refuse = optarg; break;
        case 'S': seconds = strtol(optarg, NULL, 10); break;
        default: usage();
        }
    }
    struct ipaddr ip;
    uint16_t port;
    if (!xds || !root || !token || !node || !ns || !name || !sa || seconds <= 0 ||
        authority_parse(xds, strlen(xds), &ip, &port) < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    snprintf(p.identity, sizeof(p.identity), "spiffe://cluster.local/ns/%s/sa/%s", ns, sa);
    p.loop = loop_new();
    SSL_CTX *ctx = tls_cp_client_ctx(root, CP_NAME, NULL, err, sizeof(err));
    if (p.loop == NULL || ctx == NULL)
        fatal("%s", ctx == NULL ? err : "epoll");
    struct channel *xchan = channel_new(p.loop, &ip, port, ctx, "xDS");
    struct channel *cchan = channel_new(p.loop, &ip, port, ctx, "CA");
    const struct node_tokens_config tc = {.loop = p.loop, .path = token, .xds_chan = xchan,
                                          .ca_chan = cchan, .authority = CP_NAME,
                                          .cluster = "Kubernetes", .who = "ident_probe"};
    struct node_tokens *tokens = node_tokens_new(&tc);

    /* One identity: the proxy's own service account. */
    const struct certmgr_config cc = {
        .loop = p.loop, .chan = cchan,
        .auth = {.authority = CP_NAME, .cluster = "Kubernetes", .bearer = node_tokens_bearer_ca,
                 .bearer_arg = tokens},
        .cert_ttl_s = 3600,
    };
    if ((p.certs = certmgr_new(&cc, err, sizeof(err))) == NULL)
        fatal("%s", err);
    certmgr_wait(p.certs, &p.wait, p.identity, on_cert, &p);

    char *node_id = xds_node_id("router", "", name, ns);
    const struct xds_kv meta[] = {
        {"NAME", name}, {"NAMESPACE", ns}, {"SERVICE_ACCOUNT", sa}, {"NODE_NAME", node},
    };
    const struct ads_type types[] = {{XDS_TYPE_ADDRESS, address_apply, NULL, address_commit, &p}};
    const struct ads_config ac = {
        .mux = {.node_id = node_id, .meta = meta, .n_meta = ARRAY_LEN(meta), .types = types,
                .n_types = 1},
        .loop = p.loop, .chan = xchan,
        .auth = {.authority = CP_NAME, .cluster = "Kubernetes", .bearer = node_tokens_bearer_xds,
                 .bearer_arg = tokens},
        .on_synced = on_synced, .arg = &p,
    };
    struct ads *a = ads_start(&ac);
    free(node_id);
    if (a == NULL)
        fatal("cannot start xDS");

    struct loop_timer deadline = {0};
    loop_timer_start(p.loop, &deadline, (uint64_t)seconds * 1000, on_timeout, &p);
    loop_run(p.loop);
    loop_timer_stop(p.loop, &deadline);

    node_tokens_free(tokens);
    ads_stop(a);
    certmgr_cancel(p.certs, &p.wait);
    certmgr_free(p.certs);
    loop_run_deferred(p.loop);
    channel_free(xchan);
    channel_free(cchan);
    loop_run_deferred(p.loop);
    SSL_CTX_free(ctx);
    loop_free(p.loop);
    return p.have_cert && (p.synced || (p.refuse != NULL && p.pushes > 0)) ? 0 : 1;
}
