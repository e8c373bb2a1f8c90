/*
 * route_build.h - builds amesh.waypoint.v1.Route bytes from a one-line spec,
 * so the route tests read as tables. Rules are separated by "\n"; each rule
 * is space-separated key=value tokens:
 *   exact=/p prefix=/p regex=RE        path match (none: PathPrefix "/")
 *   h=name:value hr=name:regex         header match (exact / regex)
 *   q=name:value qr=name:regex         query parameter match
 *   m=GET                              method
 *   be=host:port:weight                backend in namespace "default"
 *   redir.scheme= redir.host= redir.port= redir.full= redir.prefix= redir.status=
 *   rw.host= rw.full= rw.prefix=
 *   set=n:v add=n:v rm=n               request header modifier
 *   rset=n:v radd=n:v rrm=n            response header modifier
 *   direct=503 name=x timeout=ms btimeout=ms retry=attempts[:code,code][:backoff_ms]
 *   nomatch                            the Rule has no Match message at all
 *   proto=1                            the Route's protocol (1 HTTP1, 2 HTTP2, 3 GRPC)
 * The route's service is default/echo.default.svc.cluster.local at |port|.
 * An empty spec gives a Route without rules.
 */
#ifndef TESTS_UNIT_LIB_ROUTE_BUILD_H
#define TESTS_UNIT_LIB_ROUTE_BUILD_H

#include <stddef.h>
#include <stdint.h>

#define RB_HOST "echo.default.svc.cluster.local"

/* Packed bytes (malloc'd) of the Route |spec| describes. */
uint8_t *rb_build(const char *spec, uint32_t port, size_t *len);

#endif
