/*
 * http1_int.h - what the parser's state machine (http1_parse.c) and the
 * field semantics (http1_fields.c) share. Not for callers.
 */
#ifndef MESH_LIB_HTTP1_INT_H
#define MESH_LIB_HTTP1_INT_H

#include "http1/http1.h"

/* Byte classes (http1_fields.c): one bit each in http1_class[]. */
enum {
    HTTP1_C_TCHAR = 1,  /* token character (RFC 9110 5.6.2) */
    HTTP1_C_VALUE = 2,  /* field-vchar, obs-text, SP, HTAB */
    HTTP1_C_TARGET = 4, /* request-target: visible ASCII but '#' */
    HTTP1_C_HOST = 8,   /* uri-host and port: unreserved, sub-delims, ':', '%', '[', ']' */
};
extern const uint8_t http1_class[256];

static inline bool
http1_is(unsigned char c, unsigned cls)
{
    return (http1_class[c] & cls) != 0;
}

/* Records a parser error (a response parser reports every refusal as HTTP1_E_RESPONSE). */
int http1_fail(struct http1_parser *ps, int code, const char *why);

/* A head field just ended (|s| is the head's first byte): its framing meaning. */
int http1_head_field(struct http1_parser *ps, const char *s, const struct http1_field *f);

/* The request target of the head at |s| ended: checks its form against the method. */
int http1_head_target(struct http1_parser *ps, const char *s);

/* The head at |s| is complete: checks that need all fields, sets the body framing. */
int http1_head_done(struct http1_parser *ps, const char *s);

#endif
