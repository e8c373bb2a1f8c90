/*
 * admin_proxy.c - admin endpoints shared by the proxies (see admin_proxy.h).
 */
#include <string.h>

#include "admin/admin_proxy.h"
#include "base/base.h"
#include "log/log.h"

void
admin_proxy_handle(const struct http1_req *req, struct admin_resp *r, char *(*dump)(void *arg),
                   void *arg)
{
    char level[16];

    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0) {
        r->status = 405;
        return;
    }
    if (strcmp(req->path, "/config_dump") == 0) {
        r->status = 200;
        r->content_type = "application/json";
        r->body = dump(arg);
    } else if (strcmp(req->path, "/logging") == 0) {
        if (http1_query_get(req->query, "level", level, sizeof(level)) == 0) {
            int lv = log_parse_level(level);
            if (lv < 0) {
                r->status = 400;
                r->body = xasprintf("unknown level \"%s\"\n", level);
                return;
            }
            log_set_level((enum log_level)lv);
        }
        r->status = 200;
        r->body = xasprintf("current log level is %s\n", log_level_name(log_get_level()));
    }
}

void
admin_proxy_ready(const struct http1_req *req, struct admin_resp *r, bool ready)
{
    if (strcmp(req->path, "/healthz/ready") != 0)
        return;
    r->status = ready ? 200 : 503;
    r->body = xstrdup(ready ? "ready\n" : "not ready\n");
}
