/*
 * test_inpod.c - the in-pod rules: generated text against golden files in
 * tests/unit/inpod/ (IPv4, IPv6, DNS capture on and off), reconciling a
 * saved pod (no duplicate jumps, raw chains dropped when DNS capture goes
 * off, foreign rules untouched), removal, and the command runner (stdin and
 * stdout, stderr in errors, the deadline, missing programs, setns failure).
 * MESH_UPDATE_GOLDEN=1 rewrites the golden files.
 * Nothing here needs root or touches the machine's own tables.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "inpod/inpod.h"
#include "inpod/inpod_internal.h"

#define GOLDEN_DIR MESH_SOURCE_DIR "/tests/unit/inpod/"

static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    struct text t = {0};
    char buf[4096];
    size_t n;

    if (f == NULL)
        return NULL;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        text_append(&t, buf, n);
    fclose(f);
    return text_take(&t);
}

static void
write_file(const char *path, const char *text, int mode)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    if (mode != 0)
        assert_int_equal(chmod(path, (mode_t)mode), 0);
}

/* Length of the leading "#" comment lines of a golden file, which describe it. */
static size_t
header_len(const char *s)
{
    const char *p = s;

    while (*p == '#') {
        const char *nl = strchr(p, '\n');
        p = nl != NULL ? nl + 1 : p + strlen(p);
    }
    return (size_t)(p - s);
}

/* Compares |got| with golden file |name| (MESH_UPDATE_GOLDEN=1 rewrites it, keeping its header). */
static void
check_golden(const char *name, const char *got)
{
    const char *update = getenv("MESH_UPDATE_GOLDEN");
    char path[512];
    char *want;
    size_t h;

    assert_non_null(got);
    snprintf(path, sizeof(path), "%s%s", GOLDEN_DIR, name);
    want = read_file(path);
    if (update != NULL && strcmp(update, "1") == 0) {
        struct text t = {0};
        if (want != NULL)
            text_append(&t, want, header_len(want));
        text_printf(&t, "%s", got);
        char *text = text_take(&t);
        write_file(path, text, 0);
        free(text);
        free(want);
        return;
    }
    if (want == NULL)
        fail_msg("golden file %s missing (MESH_UPDATE_GOLDEN=1 writes it)", path);
    h = header_len(want);
    if (strcmp(want + h, got) != 0) {
        print_message("--- %s\n%s--- generated\n%s", path, want + h, got);
        fail_msg("%s differs from the generated text", name);
    }
    free(want);
}

static void
golden_rules(enum inpod_family f, bool dns, const char *name)
{
    struct inpod_opts o = {.dns_capture = dns};
    char *t = inpod_rules(f, &o);

    check_golden(name, t);
    /* A pod without our chains gets exactly the rule set. */
    char *s = inpod_apply_script(f, &o, "");
    assert_string_equal(s, t);
    free(s);
    free(t);
}

static void
test_golden_v4(void **state)
{
    (void)state;
    golden_rules(INPOD_IPV4, false, "ipv4.rules");
}

static void
test_golden_v4_dns(void **state)
{
    (void)state;
    golden_rules(INPOD_IPV4, true, "ipv4-dns.rules");
}

static void
test_golden_v6(void **state)
{
    (void)state;
    golden_rules(INPOD_IPV6, false, "ipv6.rules");
}

static void
test_golden_v6_dns(void **state)
{
    (void)state;
    golden_rules(INPOD_IPV6, true, "ipv6-dns.rules");
}

static void
test_defaults(void **state)
{
    (void)state;
    char *a = inpod_rules(INPOD_IPV4, NULL);
    struct inpod_opts zero = {0};
    char *b = inpod_rules(INPOD_IPV4, &zero);

    assert_string_equal(a, b);
    assert_non_null(strstr(a, "-A ISTIO_PRERT -s 169.254.7.127/32 -p tcp -m tcp -j ACCEPT\n"));
    assert_null(strstr(a, "15053"));
    assert_null(strstr(a, "*raw"));
    free(a);
    free(b);
}

static void
test_probe_addresses(void **state)
{
    (void)state;
    struct inpod_opts o = {.probe_v4 = "198.18.7.127", .probe_v6 = "2001:DB8:7:0::127"};
    char *t4 = inpod_rules(INPOD_IPV4, &o);
    char *t6 = inpod_rules(INPOD_IPV6, &o);

    /* As iptables-save prints them: canonical text with the prefix length. */
    assert_non_null(strstr(t4, "-A ISTIO_PRERT -s 198.18.7.127/32 -p tcp"));
    assert_non_null(strstr(t4, "-A ISTIO_OUTPUT -d 198.18.7.127/32 -p tcp"));
    assert_non_null(strstr(t6, "-A ISTIO_PRERT -s 2001:db8:7::127/128 -p tcp"));
    free(t4);
    free(t6);

    const char *bad[] = {"", "1.2.3", "198.18.0.1 -j DROP", "::1\n-A OUTPUT -j DROP", "x"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct inpod_opts b4 = {.probe_v4 = bad[i]}, b6 = {.probe_v6 = bad[i]};
        char err[256] = "";
        assert_null(inpod_rules(INPOD_IPV4, &b4));
        assert_null(inpod_rules(INPOD_IPV6, &b6));
        assert_null(inpod_apply_script(INPOD_IPV4, &b4, ""));
        /* Refused before any command runs (there is no such bin_dir). */
        b4.bin_dir = "/nonexistent";
        assert_int_equal(inpod_apply(-1, &b4, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "bad probe address"));
    }
}

/* What iptables-save (nf_tables) printed in a pod after inpod_apply --dns, with foreign rules. */
static char *
applied_save(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s%s", GOLDEN_DIR, "pod-applied-dns.save");
    char *t = read_file(path);
    assert_non_null(t);
    return t;
}

static void
test_reapply(void **state)
{
    (void)state;
    char *saved = applied_save();
    struct inpod_opts dns = {.dns_capture = true}, nodns = {0};
    char *same = inpod_apply_script(INPOD_IPV4, &dns, saved);
    char *off = inpod_apply_script(INPOD_IPV4, &nodns, saved);

    /* Chains are declared (flushed) and refilled; jumps already there are not added again. */
    check_golden("pod-applied-dns.reapply", same);
    assert_null(strstr(same, "-A PREROUTING"));
    assert_null(strstr(same, "-A OUTPUT"));
    assert_null(strstr(same, "-D "));
    /* DNS capture off: the raw chains go, in two steps, the rest as before. */
    check_golden("pod-applied-dns.reapply-nodns", off);
    free(same);
    free(off);
    free(saved);
}

static void
test_duplicate_jumps(void **state)
{
    (void)state;
    const char *saved = "# Generated by iptables-save\n"
                        "*nat\n"
                        ":PREROUTING ACCEPT [0:0]\n"
                        ":OUTPUT ACCEPT [0:0]\n"
                        ":ISTIO_PRERT - [0:0]\n"
                        "-A PREROUTING -j ISTIO_PRERT\n"
                        "-A PREROUTING -p tcp -j ISTIO_PRERT\n"
                        "-A PREROUTING -j ISTIO_PRERT\n"
                        "-A PREROUTING -j ISTIO_PRERT\n"
                        "COMMIT\n";
    char *s = inpod_apply_script(INPOD_IPV4, NULL, saved);
    const char *nat = strstr(s, "*nat\n");

    assert_non_null(nat);
    /* Two of three copies deleted; the jump from nat OUTPUT was missing and is added. */
    assert_non_null(strstr(nat, ":ISTIO_OUTPUT - [0:0]\n:ISTIO_PRERT - [0:0]\n"
                                "-D PREROUTING -j ISTIO_PRERT\n-D PREROUTING -j ISTIO_PRERT\n"
                                "-A OUTPUT -j ISTIO_OUTPUT\n-A ISTIO_OUTPUT"));
    assert_null(strstr(nat, "-A PREROUTING"));
    /* mangle had nothing: all of it is added. */
    assert_non_null(strstr(s, "*mangle\n:ISTIO_OUTPUT - [0:0]\n:ISTIO_PRERT - [0:0]\n"
                              "-A PREROUTING -j ISTIO_PRERT\n"));
    free(s);
}

static void
test_remove(void **state)
{
    (void)state;
    char *saved = applied_save();
    char *s = inpod_remove_script(saved);

    check_golden("pod-applied-dns.remove", s);
    free(s);
    free(saved);

    /* Nothing of ours: nothing to do, even with a same-named chain in a table we never use. */
    s = inpod_remove_script("*filter\n:INPUT ACCEPT [0:0]\n:ISTIO_OUTPUT - [0:0]\n"
                            "-A INPUT -j ISTIO_OUTPUT\n-A ISTIO_OUTPUT -j ACCEPT\nCOMMIT\n"
                            "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ACCEPT\nCOMMIT\n");
    assert_string_equal(s, "");
    free(s);
    s = inpod_remove_script(NULL);
    assert_string_equal(s, "");
    free(s);
}

/* ---- the command runner ---- */

struct bin {
    char dir[64];
};

static int
bin_setup(void **state)
{
    struct bin *b = calloc(1, sizeof(*b));
    char path[128];

    snprintf(b->dir, sizeof(b->dir), "/tmp/inpod-test.XXXXXX");
    assert_non_null(mkdtemp(b->dir));
    snprintf(path, sizeof(path), "%s/fail", b->dir);
    write_file(path,
               "#!/bin/sh\necho 'iptables-restore v1.8.9 (nf_tables): ' >&2\n"
               "echo 'line 5: CHAIN_DEL failed' >&2\nexit 4\n",
               0755);
    snprintf(path, sizeof(path), "%s/hang", b->dir);
    /* A grandchild holding stdout open: the whole group must die. */
    write_file(path, "#!/bin/sh\nsleep 30 &\nsleep 30\n", 0755);
    snprintf(path, sizeof(path), "%s/noread", b->dir);
    write_file(path, "#!/bin/sh\necho done\nexit 0\n", 0755);
    snprintf(path, sizeof(path), "%s/args", b->dir);
    write_file(path, "#!/bin/sh\necho \"$# $*\"\n", 0755);
    *state = b;
    return 0;
}

static int
bin_teardown(void **state)
{
    struct bin *b = *state;
    const char *names[] = {"fail", "hang", "noread", "args"};
    char path[128];

    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", b->dir, names[i]);
        unlink(path);
    }
    rmdir(b->dir);
    free(b);
    return 0;
}

static void
test_run_stdin_stdout(void **state)
{
    (void)state;
    const char *argv[] = {"cat", NULL};
    char err[512] = "", *out = NULL;
    struct text in = {0};

    /* More than a pipe holds, both ways. */
    for (int i = 0; i < 20000; i++)
        text_printf(&in, "-A ISTIO_OUTPUT line %d\n", i);
    char *input = text_take(&in);
    assert_int_equal(inpod_run(-1, NULL, argv, input, &out, 5000, err, sizeof(err)), 0);
    assert_string_equal(out, input);
    free(out);
    free(input);
}

static void
test_run_args(void **state)
{
    struct bin *b = *state;
    const char *argv[] = {"args", "--noflush", "-w", NULL};
    char err[512] = "", *out = NULL;

    assert_int_equal(inpod_run(-1, b->dir, argv, NULL, &out, 5000, err, sizeof(err)), 0);
    assert_string_equal(out, "2 --noflush -w\n");
    free(out);
}

static void
test_run_failure(void **state)
{
    struct bin *b = *state;
    const char *argv[] = {"fail", "--noflush", NULL};
    char err[512] = "", *out = (char *)"untouched";

    assert_int_equal(inpod_run(-1, b->dir, argv, "*nat\nCOMMIT\n", &out, 5000, err, sizeof(err)),
                     -EIO);
    assert_null(out);
    assert_string_equal(err, "fail --noflush: exit status 4: iptables-restore v1.8.9 "
                             "(nf_tables):; line 5: CHAIN_DEL failed");
}

static void
test_run_no_read(void **state)
{
    struct bin *b = *state;
    const char *argv[] = {"noread", NULL};
    char err[512] = "", *out = NULL;
    char *big = xmalloc(4 << 20);

    /* It exits without reading 4 MiB of stdin: no SIGPIPE for us, its status counts. */
    memset(big, 'x', (4 << 20) - 1);
    big[(4 << 20) - 1] = '\0';
    assert_int_equal(inpod_run(-1, b->dir, argv, big, &out, 5000, err, sizeof(err)), 0);
    assert_string_equal(out, "done\n");
    free(out);
    free(big);
}

static void
test_run_timeout(void **state)
{
    struct bin *b = *state;
    const char *argv[] = {"hang", NULL};
    char err[512] = "";
    uint64_t t0 = clock_mono_ms();

    assert_int_equal(inpod_run(-1, b->dir, argv, NULL, NULL, 300, err, sizeof(err)), -ETIMEDOUT);
    uint64_t took = clock_mono_ms() - t0;
    assert_true(took >= 300 && took < 3000);
    assert_string_equal(err, "hang: no result after 300 ms, killed");
}

static void
test_run_missing(void **state)
{
    struct bin *b = *state;
    const char *argv[] = {"iptables-restore", NULL};
    char err[512] = "";

    assert_int_equal(inpod_run(-1, b->dir, argv, NULL, NULL, 5000, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "iptables-restore: program not found in /tmp/inpod-test."));
}

static void
test_run_bad_netns(void **state)
{
    (void)state;
    const char *argv[] = {"true", NULL};
    char err[512] = "";
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    /* Not a namespace: setns fails in the child and says so. */
    assert_true(fd >= 0);
    assert_int_equal(inpod_run(fd, NULL, argv, NULL, NULL, 5000, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "true: setns: Invalid argument");
    close(fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_v4),
        cmocka_unit_test(test_golden_v4_dns),
        cmocka_unit_test(test_golden_v6),
        cmocka_unit_test(test_golden_v6_dns),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_probe_addresses),
        cmocka_unit_test(test_reapply),
        cmocka_unit_test(test_duplicate_jumps),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_run_stdin_stdout),
        cmocka_unit_test_setup_teardown(test_run_args, bin_setup, bin_teardown),
        cmocka_unit_test_setup_teardown(test_run_failure, bin_setup, bin_teardown),
        cmocka_unit_test_setup_teardown(test_run_no_read, bin_setup, bin_teardown),
        cmocka_unit_test_setup_teardown(test_run_timeout, bin_setup, bin_teardown),
        cmocka_unit_test_setup_teardown(test_run_missing, bin_setup, bin_teardown),
        cmocka_unit_test(test_run_bad_netns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
