/*
 * json_yaml.c - renders a JSON value as YAML in the layout of Go's
 * sigs.k8s.io/yaml (what istioctl -o yaml prints): keys sorted, two-space
 * indent, sequences at their key's indent. Strings that YAML would read as
 * something else (numbers, booleans, null, times) or that hold special
 * characters are double-quoted with JSON-style escapes.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "meshctl.h"

static bool
only_chars(const char *s, const char *set)
{
    return s[strspn(s, set)] == '\0';
}

static bool
needs_quotes(const char *s)
{
    static const char *const words[] = {"null", "~",  "true", "false", "yes",   "no",    "y",
                                        "n",    "on", "off",  ".inf",  "-.inf", "+.inf", ".nan"};
    size_t n = strlen(s);
    char *end;

    if (n == 0 || strchr("-?:,[]{}#&*!|>'\"%@` \t", s[0]) != NULL || s[n - 1] == ' ' ||
        s[n - 1] == ':' || strstr(s, ": ") != NULL || strstr(s, " #") != NULL)
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    for (size_t i = 0; i < ARRAY_LEN(words); i++)
        if (strcasecmp(s, words[i]) == 0)
            return true;
    strtod(s, &end);
    if (*end == '\0')
        return true; /* a number: 10, 1e3, 0x1f */
    /* Dates and times (2024-05-01T12:00:00Z) and YAML 1.1 base-60 numbers (1:30). */
    if (n >= 10 && isdigit((unsigned char)s[0]) && s[4] == '-' && s[7] == '-')
        return true;
    return strchr(s, ':') != NULL && only_chars(s, "0123456789:._+-");
}

static void
put_str(FILE *f, const char *s)
{
    if (!needs_quotes(s)) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\x%02x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void
put_scalar(FILE *f, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        put_str(f, json_string_value(v));
        break;
    case JSON_INTEGER:
        fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        fprintf(f, "%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
        fputs("true", f);
        break;
    case JSON_FALSE:
        fputs("false", f);
        break;
    case JSON_OBJECT:
        fputs("{}", f);
        break; /* only empty ones reach here */
    case JSON_ARRAY:
        fputs("[]", f);
        break;
    default:
        fputs("null", f);
        break;
    }
}

static bool
nonempty_object(const json_t *v)
{
    return json_is_object(v) && json_object_size(v) > 0;
}

static bool
nonempty_array(const json_t *v)
{
    return json_is_array(v) && json_array_size(v) > 0;
}

static int
cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void emit_seq(FILE *f, const json_t *a, int indent, bool cont);

/* |cont|: the cursor already stands after "- ", so the first key goes there. */
static void
emit_map(FILE *f, const json_t *o, int indent, bool cont)
{
    size_t n = json_object_size(o), i = 0;
    const char **keys = xcalloc(n, sizeof(*keys));
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)o, k, v)
        keys[i++] = k;
    qsort(keys, n, sizeof(*keys), cmp_keys);
    for (i = 0; i < n; i++) {
        v = json_object_get(o, keys[i]);
        if (!(cont && i == 0))
            fprintf(f, "%*s", indent, "");
        put_str(f, keys[i]);
        fputc(':', f);
        if (nonempty_object(v)) {
            fputc('\n', f);
            emit_map(f, v, indent + 2, false);
        } else if (nonempty_array(v)) {
            fputc('\n', f);
            emit_seq(f, v, indent, false);
        } else {
            fputc(' ', f);
            put_scalar(f, v);
            fputc('\n', f);
        }
    }
    free(keys);
}

static void
emit_seq(FILE *f, const json_t *a, int indent, bool cont)
{
    size_t i;
    json_t *v;

    json_array_foreach(a, i, v) {
        if (!(cont && i == 0))
            fprintf(f, "%*s", indent, "");
        fputs("- ", f);
        if (nonempty_object(v)) {
            emit_map(f, v, indent + 2, true);
        } else if (nonempty_array(v)) {
            emit_seq(f, v, indent + 2, true);
        } else {
            put_scalar(f, v);
            fputc('\n', f);
        }
    }
}

void
json_print_yaml(FILE *f, const json_t *v)
{
    if (nonempty_object(v)) {
        emit_map(f, v, 0, false);
    } else if (nonempty_array(v)) {
        emit_seq(f, v, 0, false);
    } else {
        put_scalar(f, v);
        fputc('\n', f);
    }
}
