/* test_buf.c - capped buffer: caps, compaction, lazy storage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "buf/buf.h"

static void
test_append_consume(void **state)
{
    struct buf b;
    (void)state;
    buf_init(&b, 16);
    assert_null(b.data);
    assert_int_equal(buf_append(&b, "hello", 5), 0);
    assert_int_equal(buf_len(&b), 5);
    assert_memory_equal(buf_head(&b), "hello", 5);
    buf_consume(&b, 2);
    assert_memory_equal(buf_head(&b), "llo", 3);
    buf_consume(&b, 3);
    assert_int_equal(buf_len(&b), 0);
    buf_release_if_empty(&b);
    assert_null(b.data);
    buf_cleanup(&b);
}

static void
test_cap_is_hard(void **state)
{
    struct buf b;
    char big[32];
    size_t room;
    (void)state;
    memset(big, 'x', sizeof(big));
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, big, 17), -MESH_ELIMIT);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(buf_append(&b, big, 16), 0);
    assert_null(buf_reserve(&b, 1, &room));
    buf_consume(&b, 4);
    /* Compaction makes the consumed front usable again, still within the cap. */
    char *w = buf_reserve(&b, 4, &room);
    assert_non_null(w);
    assert_int_equal(room, 4);
    assert_true(b.cap <= 16);
    buf_cleanup(&b);
}

static void
test_reserve_commit(void **state)
{
    struct buf b;
    size_t room;
    (void)state;
    buf_init(&b, 1 << 20);
    char *w = buf_reserve(&b, 100000, &room);
    assert_non_null(w);
    assert_true(room >= 100000);
    memset(w, 'a', 100000);
    buf_commit(&b, 100000);
    assert_int_equal(buf_len(&b), 100000);
    assert_int_equal(buf_space(&b), (1 << 20) - 100000);
    buf_cleanup(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_consume),
        cmocka_unit_test(test_cap_is_hard),
        cmocka_unit_test(test_reserve_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
