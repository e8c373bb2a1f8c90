/*
 * base.h - allocation that aborts on failure, invariants and project error codes.
 *
 * xmalloc() and friends are for fixed-size internal structures; sizes a peer
 * controls go through checked paths that return -ENOMEM instead.
 */
#ifndef MESH_LIB_BASE_H
#define MESH_LIB_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MESH_UNUSED  __attribute__((unused))

/* Project error codes, returned negated like -errno, in a range errno never uses. */
enum mesh_err {
    MESH_EPROTO = 2000, /* peer broke a protocol rule */
    MESH_ETLS,          /* TLS handshake or record failure */
    MESH_EDENIED,       /* refused by policy */
    MESH_ENOIDENTITY,   /* no certificate for the identity we must present */
    MESH_ECONFIG,       /* configuration invalid */
    MESH_ELIMIT,        /* a cap was reached */
};

/* Returns a static description of a negative error |err| (-errno or -MESH_E*). */
const char *mesh_strerror(int err);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Binary search of the |n| elements of |size| bytes at |v|, sorted by strcmp of
 * key_of(element), for |key|: the index where it is (*found true) or where it
 * would be inserted to keep the order (*found false).
 */
size_t bsearch_str(const void *v, size_t n, size_t size, const char *key,
                   const char *(*key_of)(const void *elem), bool *found);

/*
 * Whether |n| bytes at |s| are strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), as proto3 strings must be.
 */
bool utf8_valid(const uint8_t *s, size_t n);

/* Aborts with file and line when |cond| is false, in every build. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            mesh_check_failed(__FILE__, __LINE__, #cond);                                          \
    } while (0)
void mesh_check_failed(const char *file, int line, const char *what) __attribute__((noreturn));

/* Monotonic and wall clocks in milliseconds. */
uint64_t clock_mono_ms(void);
uint64_t clock_wall_ms(void);

/* Raises the soft RLIMIT_NOFILE to the hard one: proxies hold a descriptor per connection. */
void mesh_raise_nofile(void);

#endif
