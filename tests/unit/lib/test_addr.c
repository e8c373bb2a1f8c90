/* test_addr.c - IP parsing, normalisation and HBONE authorities (table-driven). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "net/addr.h"
#include "net/sock.h"

static const struct {
    const char *in;
    int ok;
    const char *ip;
    uint16_t port;
} authority_cases[] = {
    {"198.18.250.10:8080", 1, "198.18.250.10", 8080},
    {"[2001:db8::1]:15008", 1, "2001:db8::1", 15008},
    {"[::ffff:198.18.0.1]:80", 1, "198.18.0.1", 80}, /* mapped -> IPv4 */
    {"1.2.3.4:65535", 1, "1.2.3.4", 65535},
    {"1.2.3.4:65536", 0, NULL, 0},
    {"1.2.3.4:0", 0, NULL, 0},
    {"1.2.3.4:080", 0, NULL, 0},
    {"1.2.3.4:", 0, NULL, 0},
    {"1.2.3.4", 0, NULL, 0},
    {"2001:db8::1:80", 0, NULL, 0},     /* IPv6 without brackets */
    {"[1.2.3.4]:80", 0, NULL, 0},       /* brackets only for IPv6 */
    {"echo.default.svc:80", 0, NULL, 0}, /* hostnames: double HBONE, not supported */
    {"1.2.3.4:8a", 0, NULL, 0},
    {"1.2.3.4:+80", 0, NULL, 0},
    {"", 0, NULL, 0},
    {"[2001:db8::1]", 0, NULL, 0},
    {"[2001:db8::1]80", 0, NULL, 0},
};

static void
test_authority_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(authority_cases) / sizeof(authority_cases[0]); i++) {
        struct ipaddr ip, want;
        uint16_t port = 0;
        int rc = authority_parse(authority_cases[i].in, strlen(authority_cases[i].in), &ip, &port);
        if (!authority_cases[i].ok) {
            if (rc == 0)
                fail_msg("accepted %s", authority_cases[i].in);
            continue;
        }
        if (rc != 0)
            fail_msg("rejected %s", authority_cases[i].in);
        assert_int_equal(ipaddr_parse(authority_cases[i].ip, &want), 0);
        assert_true(ipaddr_eq(&ip, &want));
        assert_int_equal(port, authority_cases[i].port);
    }
}

static void
test_authority_embedded_nul(void **state)
{
    struct ipaddr ip;
    uint16_t port;
    (void)state;
    assert_int_not_equal(authority_parse("1.2.3.4:80\0x", 12, &ip, &port), 0);
}

static void
test_format(void **state)
{
    struct ipaddr ip;
    char out[ADDR_STRLEN];
    (void)state;
    assert_int_equal(ipaddr_parse("2001:db8::a", &ip), 0);
    assert_string_equal(ipport_str(&ip, 443, out), "[2001:db8::a]:443");
    assert_int_equal(ipaddr_parse("::ffff:10.1.2.3", &ip), 0);
    assert_int_equal(ip.family, AF_INET);
    assert_string_equal(ipport_str(&ip, 1, out), "10.1.2.3:1");
    /* IPv4 is formatted by hand: every width of octet and port. */
    const struct {
        uint8_t b[4];
        uint16_t port;
        const char *want;
    } v4[] = {
        {{0, 0, 0, 0}, 0, "0.0.0.0:0"},
        {{255, 255, 255, 255}, 65535, "255.255.255.255:65535"},
        {{10, 0, 100, 9}, 8080, "10.0.100.9:8080"},
        {{1, 20, 199, 250}, 15008, "1.20.199.250:15008"},
    };
    for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
        struct ipaddr a4;
        assert_int_equal(ipaddr_from_bytes(v4[i].b, 4, &a4), 0);
        assert_string_equal(ipport_str(&a4, v4[i].port, out), v4[i].want);
    }
    uint8_t raw[4] = {198, 18, 0, 1};
    assert_int_equal(ipaddr_from_bytes(raw, 4, &ip), 0);
    assert_string_equal(ipaddr_str(&ip, out), "198.18.0.1");
    assert_int_not_equal(ipaddr_from_bytes(raw, 3, &ip), 0);
}

/* selfcall.c's question: is an address one of this namespace's? (bind probe) */
static void
test_addr_is_local(void **state)
{
    struct ipaddr ip;
    (void)state;
    assert_int_equal(ipaddr_parse("127.0.0.1", &ip), 0);
    assert_int_equal(sock_addr_is_local(&ip, NULL), 1);
    assert_int_equal(ipaddr_parse("127.0.0.2", &ip), 0); /* all of 127/8 is on lo */
    assert_int_equal(sock_addr_is_local(&ip, NULL), 1);
    assert_int_equal(ipaddr_parse("::ffff:127.0.0.1", &ip), 0);
    assert_int_equal(sock_addr_is_local(&ip, NULL), 1);
    assert_int_equal(ipaddr_parse("198.19.255.254", &ip), 0); /* assigned nowhere */
    assert_int_equal(sock_addr_is_local(&ip, NULL), 0);
    assert_int_equal(ipaddr_parse("2001:db8:ffff::fe", &ip), 0);
    int rc = sock_addr_is_local(&ip, NULL);
    assert_true(rc == 0 || rc == -EAFNOSUPPORT); /* no IPv6 at all: not local either */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authority_table),
        cmocka_unit_test(test_authority_embedded_nul),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_addr_is_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
