/*
 * inpod_rules.c - the in-pod rule set as iptables-restore text, and the
 * scripts that reconcile a namespace's iptables-save output to it or clear
 * it; pure functions, see inpod.h.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "inpod/inpod.h"
#include "inpod/inpod_internal.h"

#define RULE_MAX  32
#define TABLE_MAX 16

/*
 * Our tables by name (iptables-nft-save lists tables in no fixed order; the tests sort), and
 * chains as iptables-save orders them: built-in ones by hook, then user chains by name.
 */
static const char *const our_tables[] = {"mangle", "nat", "raw"};
static const char *const chain_order[] = {"PREROUTING",     "INPUT",       "FORWARD",
                                          "OUTPUT",         "POSTROUTING", INPOD_CHAIN_OUTPUT,
                                          INPOD_CHAIN_PRERT};
/* The jumps into our chains, exactly as iptables-save prints them. */
static const char *const jump_chain[] = {"PREROUTING", "OUTPUT"};
static const char *const jump_target[] = {INPOD_CHAIN_PRERT, INPOD_CHAIN_OUTPUT};
#define JUMPS 2

struct rule {
    const char *table;
    const char *chain;
    char spec[200]; /* after "-A <chain> " */
};

struct ruleset {
    struct rule r[RULE_MAX];
    int n;
};

void
text_printf(struct text *t, const char *fmt, ...)
{
    va_list ap;

    for (;;) {
        size_t room = t->cap - t->len;
        va_start(ap, fmt);
        int n = vsnprintf(t->p != NULL ? t->p + t->len : NULL, room, fmt, ap);
        va_end(ap);
        CHECK(n >= 0);
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->cap + (size_t)n + 1) * 2;
        t->p = xrealloc(t->p, t->cap);
    }
}

void
text_append(struct text *t, const char *data, size_t len)
{
    if (t->cap - t->len < len + 1) {
        t->cap = (t->len + len + 1) * 2;
        t->p = xrealloc(t->p, t->cap);
    }
    memcpy(t->p + t->len, data, len);
    t->len += len;
    t->p[t->len] = '\0';
}

/* Returns the text (never NULL; "" when nothing was written), ownership to the caller. */
char *
text_take(struct text *t)
{
    if (t->p == NULL)
        return xstrdup("");
    return t->p;
}

static void __attribute__((format(printf, 4, 5)))
add(struct ruleset *rs, const char *table, const char *chain, const char *fmt, ...)
{
    va_list ap;
    struct rule *r;

    CHECK(rs->n < RULE_MAX);
    r = &rs->r[rs->n++];
    r->table = table;
    r->chain = chain;
    va_start(ap, fmt);
    int n = vsnprintf(r->spec, sizeof(r->spec), fmt, ap);
    va_end(ap);
    CHECK(n > 0 && (size_t)n < sizeof(r->spec));
}

/* Canonical text of address |s| in family |af| (as iptables-save prints it); false if bad. */
static bool
canon_addr(int af, const char *s, char *out, size_t outlen)
{
    unsigned char bin[16];

    return inet_pton(af, s, bin) == 1 && inet_ntop(af, bin, out, (socklen_t)outlen) != NULL;
}

/* Fills |rs| in Istio's order (cni/pkg/iptables/iptables.go AppendInpodRules). */
static bool
build(enum inpod_family f, const struct inpod_opts *o, struct ruleset *rs)
{
    static const struct inpod_opts defaults;
    char probe[INET6_ADDRSTRLEN];
    const char *lo, *plen, *mark = "0x539/0xfff", *conn = "0x111/0xfff";
    char existing[32], fresh[32];

    if (o == NULL)
        o = &defaults;
    if (f == INPOD_IPV6) {
        if (!canon_addr(AF_INET6, o->probe_v6 ? o->probe_v6 : INPOD_PROBE_V6, probe, sizeof(probe)))
            return false;
        lo = "::1/128";
        plen = "/128";
    } else {
        if (!canon_addr(AF_INET, o->probe_v4 ? o->probe_v4 : INPOD_PROBE_V4, probe, sizeof(probe)))
            return false;
        lo = "127.0.0.1/32";
        plen = "/32";
    }
    snprintf(existing, sizeof(existing), "0x%x/0x%x", INPOD_CT_EXISTING, INPOD_CT_EXISTING);
    snprintf(fresh, sizeof(fresh), "0x%x/0x%x", INPOD_CT_NEW, INPOD_CT_NEW);
    rs->n = 0;
    add(rs, "mangle", "PREROUTING", "-j %s", INPOD_CHAIN_PRERT);
    add(rs, "mangle", "OUTPUT", "-j %s", INPOD_CHAIN_OUTPUT);
    add(rs, "nat", "OUTPUT", "-j %s", INPOD_CHAIN_OUTPUT);
    if (o->dns_capture) {
        add(rs, "raw", "PREROUTING", "-j %s", INPOD_CHAIN_PRERT);
        add(rs, "raw", "OUTPUT", "-j %s", INPOD_CHAIN_OUTPUT);
    }
    add(rs, "nat", "PREROUTING", "-j %s", INPOD_CHAIN_PRERT);

    /*
     * Not in Istio's rules: the connections open at enrollment stay direct, and
     * nothing else slips past. The nat table sees only a connection's first
     * packet; for a connection older than the rules that packet comes without
     * SYN, and redirecting it would reset the connection (istio/istio#48876).
     * inpod_apply() gives those connections' conntrack entries mark 0x1000,
     * which nat accepts. Any other first packet without SYN (a raw ACK, sent
     * to make an entry that a connect() from the same port would then reuse
     * un-NATed) is dropped before it makes one. Entries started here are
     * tagged 0x2000, so a later inpod_apply() knows them from leftovers.
     */
    /*
     * A pod sends TCP only from its own addresses; ztunnel's transparent
     * sockets (the client's address, mark 0x539) are the exception. A raw
     * SYN "from" a remote D:x to the pod itself (over lo, so nat accepts it
     * and a bad checksum gets no reset) would leave an entry whose reply
     * tuple is pod:P -> D:x: a later connect() from P to D is then that
     * entry's reply, never NEW, never redirected.
     */
    add(rs, "mangle", INPOD_CHAIN_OUTPUT,
        "-p tcp -m mark ! --mark %s -m addrtype ! --src-type LOCAL -j DROP", mark);
    static const char *const chains[] = {INPOD_CHAIN_PRERT, INPOD_CHAIN_OUTPUT};
    for (size_t i = 0; i < 2; i++) {
        add(rs, "mangle", chains[i],
            "-p tcp -m conntrack --ctstate NEW -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN "
            "-m connmark ! --mark %s -j DROP",
            existing);
        add(rs, "mangle", chains[i], "-p tcp -m conntrack --ctstate NEW -j CONNMARK --set-xmark %s",
            fresh);
    }
    add(rs, "nat", INPOD_CHAIN_PRERT, "-m connmark --mark %s -j ACCEPT", existing);
    add(rs, "nat", INPOD_CHAIN_OUTPUT, "-m connmark --mark %s -j ACCEPT", existing);
    /* ztunnel's packets into the pod mark their connection, so replies find their way back. */
    add(rs, "mangle", INPOD_CHAIN_PRERT, "-m mark --mark %s -j CONNMARK --set-xmark %s", mark,
        conn);
    /* Kubelet probes, SNATed to the probe address on the node, are not captured. */
    add(rs, "nat", INPOD_CHAIN_PRERT, "-s %s%s -p tcp -m tcp -j ACCEPT", probe, plen);
    add(rs, "nat", INPOD_CHAIN_OUTPUT, "-d %s%s -p tcp -m tcp -j ACCEPT", probe, plen);
    /* Inbound TCP except HBONE (ztunnel listens on 15008 itself) to plaintext inbound. */
    add(rs, "nat", INPOD_CHAIN_PRERT,
        "! -d %s -p tcp -m tcp ! --dport %d -m mark ! --mark %s -j REDIRECT --to-ports %d", lo,
        INPOD_PORT_HBONE, mark, INPOD_PORT_INBOUND);
    /* Replies to ztunnel's connections carry the connection's mark again. */
    add(rs, "mangle", INPOD_CHAIN_OUTPUT,
        "-m connmark --mark %s -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask "
        "0xffffffff",
        conn);
    if (o->dns_capture) {
        add(rs, "nat", INPOD_CHAIN_OUTPUT,
            "! -o lo -p udp -m mark ! --mark %s -m udp --dport 53 -j REDIRECT --to-ports %d", mark,
            INPOD_PORT_DNS);
        add(rs, "nat", INPOD_CHAIN_OUTPUT,
            "! -d %s -p tcp -m tcp --dport 53 -m mark ! --mark %s -j REDIRECT --to-ports %d", lo,
            mark, INPOD_PORT_DNS);
        /* ztunnel's own DNS upstream traffic gets its own conntrack zone (istio#33469). */
        add(rs, "raw", INPOD_CHAIN_OUTPUT,
            "-p udp -m mark --mark %s -m udp --dport 53 -j CT --zone 1", mark);
        add(rs, "raw", INPOD_CHAIN_PRERT,
            "-p udp -m mark ! --mark %s -m udp --sport 53 -j CT --zone 1", mark);
    }
    add(rs, "nat", INPOD_CHAIN_OUTPUT, "-p tcp -m mark --mark %s -j ACCEPT", conn);
    /* The app calling itself on its own address stays local. */
    add(rs, "nat", INPOD_CHAIN_OUTPUT, "! -d %s -o lo -j ACCEPT", lo);
    add(rs, "nat", INPOD_CHAIN_OUTPUT,
        "! -d %s -p tcp -m mark ! --mark %s -j REDIRECT --to-ports %d", lo, mark,
        INPOD_PORT_OUTBOUND);
    return true;
}

static bool
table_used(const struct ruleset *rs, const char *table)
{
    for (int i = 0; i < rs->n; i++)
        if (strcmp(rs->r[i].table, table) == 0)
            return true;
    return false;
}

/* Only tables we write to are ever cleaned: a chain of the same name elsewhere is not ours. */
static bool
our_table(const char *table)
{
    for (size_t i = 0; i < ARRAY_LEN(our_tables); i++)
        if (strcmp(our_tables[i], table) == 0)
            return true;
    return false;
}

/* ---- iptables-save parsing: only what concerns our chains ---- */

struct saved_table {
    char name[32];
    bool chain[JUMPS]; /* our chains declared: [0] ISTIO_PRERT, [1] ISTIO_OUTPUT */
    int jumps[JUMPS];  /* copies of "-A PREROUTING -j ISTIO_PRERT", "-A OUTPUT -j ISTIO_OUTPUT" */
};

struct saved {
    struct saved_table t[TABLE_MAX];
    int n;
};

static void
parse_saved(const char *text, struct saved *sv)
{
    struct saved_table *cur = NULL;
    const char *p = text != NULL ? text : "";

    memset(sv, 0, sizeof(*sv));
    while (*p != '\0') {
        size_t len = strcspn(p, "\n");
        char line[512];

        snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), p);
        p += len + (p[len] == '\n');
        line[strcspn(line, "\r")] = '\0';
        if (line[0] == '*') {
            cur = NULL;
            for (int i = 0; i < sv->n; i++)
                if (strcmp(sv->t[i].name, line + 1) == 0)
                    cur = &sv->t[i];
            if (cur == NULL && sv->n < TABLE_MAX && strlen(line + 1) < sizeof(cur->name)) {
                cur = &sv->t[sv->n++];
                snprintf(cur->name, sizeof(cur->name), "%s", line + 1);
            }
        } else if (cur == NULL) {
            continue;
        } else if (line[0] == ':') {
            size_t n = strcspn(line + 1, " ");
            for (int j = 0; j < JUMPS; j++)
                if (n == strlen(jump_target[j]) && strncmp(line + 1, jump_target[j], n) == 0)
                    cur->chain[j] = true;
        } else if (strncmp(line, "-A ", 3) == 0) {
            for (int j = 0; j < JUMPS; j++) {
                char want[64];
                snprintf(want, sizeof(want), "-A %s -j %s", jump_chain[j], jump_target[j]);
                if (strcmp(line, want) == 0)
                    cur->jumps[j]++;
            }
        }
    }
}

static const struct saved_table *
saved_find(const struct saved *sv, const char *table)
{
    for (int i = 0; i < sv->n; i++)
        if (strcmp(sv->t[i].name, table) == 0)
            return &sv->t[i];
    return NULL;
}

static int
jump_index(const struct rule *r)
{
    for (int j = 0; j < JUMPS; j++) {
        char want[64];
        snprintf(want, sizeof(want), "-j %s", jump_target[j]);
        if (strcmp(r->chain, jump_chain[j]) == 0 && strcmp(r->spec, want) == 0)
            return j;
    }
    return -1;
}

/*
 * Writes table |table| of |rs|: our chain declarations, then the rules in
 * iptables-save order. With |sv|, jumps already there once are left alone
 * and extra copies deleted.
 */
static void
emit_table(struct text *t, const struct ruleset *rs, const char *table,
           const struct saved_table *sv)
{
    text_printf(t, "*%s\n:%s - [0:0]\n:%s - [0:0]\n", table, INPOD_CHAIN_OUTPUT, INPOD_CHAIN_PRERT);
    for (int j = 0; sv != NULL && j < JUMPS; j++)
        for (int k = 1; k < sv->jumps[j]; k++)
            text_printf(t, "-D %s -j %s\n", jump_chain[j], jump_target[j]);
    for (size_t c = 0; c < ARRAY_LEN(chain_order); c++) {
        for (int i = 0; i < rs->n; i++) {
            const struct rule *r = &rs->r[i];
            int j = jump_index(r);
            if (strcmp(r->table, table) != 0 || strcmp(r->chain, chain_order[c]) != 0)
                continue;
            if (j >= 0 && sv != NULL && sv->jumps[j] > 0)
                continue;
            text_printf(t, "-A %s %s\n", r->chain, r->spec);
        }
    }
    text_printf(t, "COMMIT\n");
}

/* Deletes our jumps and chains from the tables of |sv| that |keep| (if any) does not use. */
static void
emit_removal(struct text *t, const struct saved *sv, const struct ruleset *keep)
{
    for (int phase = 0; phase < 2; phase++) {
        for (int i = 0; i < sv->n; i++) {
            const struct saved_table *st = &sv->t[i];
            bool any = false;
            if (!our_table(st->name) || (keep != NULL && table_used(keep, st->name)))
                continue;
            for (int j = 0; j < JUMPS; j++)
                any = any || st->chain[j] || (phase == 0 && st->jumps[j] > 0);
            if (!any)
                continue;
            text_printf(t, "*%s\n", st->name);
            /* Jumps out and chains emptied first; nf_tables deletes only chains already empty. */
            for (int j = 0; phase == 0 && j < JUMPS; j++)
                for (int k = 0; k < st->jumps[j]; k++)
                    text_printf(t, "-D %s -j %s\n", jump_chain[j], jump_target[j]);
            for (int j = JUMPS - 1; j >= 0; j--)
                if (st->chain[j])
                    text_printf(t, "-%c %s\n", phase == 0 ? 'F' : 'X', jump_target[j]);
            text_printf(t, "COMMIT\n");
        }
    }
}

char *
inpod_rules(enum inpod_family f, const struct inpod_opts *o)
{
    return inpod_apply_script(f, o, NULL);
}

char *
inpod_apply_script(enum inpod_family f, const struct inpod_opts *o, const char *saved)
{
    struct ruleset rs;
    struct saved sv;
    struct text t = {0};

    if (!build(f, o, &rs))
        return NULL;
    parse_saved(saved, &sv);
    for (size_t i = 0; i < ARRAY_LEN(our_tables); i++)
        if (table_used(&rs, our_tables[i]))
            emit_table(&t, &rs, our_tables[i], saved_find(&sv, our_tables[i]));
    emit_removal(&t, &sv, &rs);
    return text_take(&t);
}

char *
inpod_remove_script(const char *saved)
{
    struct saved sv;
    struct text t = {0};

    parse_saved(saved, &sv);
    emit_removal(&t, &sv, NULL);
    return text_take(&t);
}
