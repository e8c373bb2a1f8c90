/*
 * kube_event.c - one watch line into an event, and what an error answer
 * means for the client (the rules of client-go's reflector and pager, see
 * kube.h): expired and too-large resource versions relist from a consistent
 * read, 429 waits as told, 404 is a kind not served, the rest backs off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube_proto.h"


static const struct {
    const char *name;
    enum kube_event_type type;
} types[] = {
    {"ADDED", KUBE_EV_ADDED},       {"MODIFIED", KUBE_EV_MODIFIED}, {"DELETED", KUBE_EV_DELETED},
    {"BOOKMARK", KUBE_EV_BOOKMARK}, {"ERROR", KUBE_EV_ERROR},
};

bool
kube_json_too_deep(const char *p, size_t n)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > KUBE_MAX_DEPTH)
                return true;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return false;
}

void
kube_event_clear(struct kube_event *ev)
{
    json_decref(ev->obj);
    memset(ev, 0, sizeof(*ev));
}

int
kube_event_decode(const char *line, size_t len, struct kube_event *ev, char *err, size_t errlen)
{
    json_error_t je;
    memset(ev, 0, sizeof(*ev));
    if (kube_json_too_deep(line, len)) {
        snprintf(err, errlen, "event nested deeper than %d", KUBE_MAX_DEPTH);
        return -1;
    }
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        snprintf(err, errlen, "event is not JSON: %s", je.text);
        return -1;
    }
    const char *type = json_string_value(json_object_get(root, "type"));
    json_t *obj = json_object_get(root, "object");
    size_t i;
    for (i = 0; type != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(type, types[i].name) == 0)
            break;
    if (type == NULL || i == sizeof(types) / sizeof(types[0])) {
        snprintf(err, errlen, "event type %.40s%s", type != NULL ? type : "missing",
                 type != NULL ? " unknown" : "");
        goto fail;
    }
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "%s event without an object", type);
        goto fail;
    }
    ev->type = types[i].type;
    ev->rv = "";
    if (ev->type != KUBE_EV_ERROR) {
        json_t *md = json_object_get(obj, "metadata");
        const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
        if (rv == NULL || *rv == '\0' || strlen(rv) > KUBE_RV_MAX) {
            snprintf(err, errlen, "%s event without a valid metadata.resourceVersion", type);
            goto fail;
        }
        if (ev->type != KUBE_EV_BOOKMARK &&
            json_string_value(json_object_get(md, "name")) == NULL) {
            snprintf(err, errlen, "%s event without metadata.name", type);
            goto fail;
        }
        ev->rv = rv;
    }
    ev->obj = json_incref(obj);
    json_decref(root);
    return 0;
fail:
    json_decref(root);
    return -1;
}

/* True if the Status |body| says the resource version was too large (cause or, on 1.17-1.18.5, message). */
static bool
too_large(const json_t *body)
{
    json_t *causes = json_object_get(json_object_get(body, "details"), "causes");
    size_t i;
    json_t *c;
    json_array_foreach(causes, i, c) {
        const char *r = json_string_value(json_object_get(c, "reason"));
        if (r != NULL && strcmp(r, "ResourceVersionTooLarge") == 0)
            return true;
    }
    const char *reason = json_string_value(json_object_get(body, "reason"));
    const char *msg = json_string_value(json_object_get(body, "message"));
    return reason != NULL && strcmp(reason, "Timeout") == 0 && msg != NULL &&
           strstr(msg, "Too large resource version") != NULL;
}

enum kube_verdict
kube_classify(int status, const json_t *body, const char *retry_after, unsigned *wait_ms)
{
    *wait_ms = 0;
    const char *reason = json_string_value(json_object_get(body, "reason"));
    json_int_t code = json_integer_value(json_object_get(body, "code"));
    if (status == 0) /* an ERROR event: its Status's code stands for the HTTP status */
        status = (int)code;
    if (status >= 200 && status < 300)
        return KUBE_V_OK;
    if (status == 410 ||
        (reason != NULL && (strcmp(reason, "Expired") == 0 || strcmp(reason, "Gone") == 0)))
        return KUBE_V_EXPIRED;
    if (status == 504 && too_large(body))
        return KUBE_V_TOO_LARGE;
    if (status == 429) {
        long secs = 1;
        json_int_t ras = json_integer_value(
            json_object_get(json_object_get(body, "details"), "retryAfterSeconds"));
        if (retry_after != NULL) {
            char *end;
            long v = strtol(retry_after, &end, 10);
            if (end != retry_after && *end == '\0' && v >= 0)
                secs = v;
        } else if (ras > 0) {
            secs = (long)ras;
        }
        if (secs < 1)
            secs = 1;
        if (secs > 600) /* a peer-chosen delay: bounded */
            secs = 600;
        *wait_ms = (unsigned)secs * 1000u;
        return KUBE_V_THROTTLED;
    }
    if (status == 404)
        return KUBE_V_ABSENT;
    return KUBE_V_RETRY;
}

const char *
kube_verdict_name(enum kube_verdict v)
{
    switch (v) {
    case KUBE_V_OK:
        return "ok";
    case KUBE_V_EXPIRED:
        return "expired";
    case KUBE_V_TOO_LARGE:
        return "resource version too large";
    case KUBE_V_THROTTLED:
        return "throttled";
    case KUBE_V_ABSENT:
        return "not found";
    case KUBE_V_RETRY:
        return "error";
    }
    return "?";
}
