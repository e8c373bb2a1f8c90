/*
 * l7path.h - request path normalisation as Istio's MeshConfig
 * pathNormalization configures Envoy, for the waypoint. The output is what
 * policy matches and what the backend receives; the same normalisation for
 * both is what makes a DENY on a path hold (a backend that resolved "/a/../x"
 * itself would otherwise serve "/x" past a rule written for "/x").
 *
 * BASE (the default; Envoy's normalize_path, RFC 3986 6.2.2):
 *   - "%00" in the path -> 400;
 *   - percent-escapes of unreserved characters decoded once, hex in either
 *     case: %2D %2E %30-%39 %41-%5A %5F %61-%7A %7E ("%252e" stays);
 *     other escapes are kept as written ("%2F" stays, so "/a%2Fb" is one
 *     segment);
 *   - '\' -> '/';
 *   - bytes that may not appear in a URL path (controls, space, DEL, 8-bit)
 *     percent-encoded in upper case, as Envoy's canonicaliser writes them,
 *     and a '%' that does not start an escape written "%25" (RFC 3986;
 *     stricter than Envoy, which leaves it: "%%32e" would otherwise become
 *     "%2e", a dot for whoever decodes next), so the output is canonical:
 *     normalising it again changes nothing;
 *   - dot segments resolved, "." and ".." (also when decoded from %2E);
 *     ".." never climbs above "/"; a trailing "/." or "/.." leaves a "/";
 *   - ';' is not special: "/admin;x" stays (Envoy keeps path parameters).
 * MERGE_SLASHES: BASE, then runs of '/' merged (after dot segments, as Envoy).
 * DECODE_AND_MERGE_SLASHES: first %2F/%2f -> '/' and %5C/%5c -> '\', then
 *   MERGE_SLASHES.
 * NONE: the path is used as received.
 *
 * In every mode a '#' anywhere in the :path is a 400 (Envoy rejects
 * fragments in request paths), and so is a raw NUL byte and the query ('?' onwards) is never
 * changed and never matched: *path_len excludes it. A path that does not start with
 * '/' is a 400 except in NONE (CONNECT and "*" are the caller's business).
 */
#ifndef MESH_LIB_L7PATH_H
#define MESH_LIB_L7PATH_H

#include <stddef.h>

#define L7PATH_MAX 65536 /* bytes of a :path we normalise at all; longer -> 400 */

enum l7path_mode {
    L7PATH_BASE = 0,
    L7PATH_MERGE_SLASHES = 1,
    L7PATH_DECODE_AND_MERGE_SLASHES = 2,
    L7PATH_NONE = 3,
};

/* Bytes |out| needs for an input of |len| bytes (escaping can triple a byte). */
#define L7PATH_OUT_SIZE(len) (3 * (len) + 1)

/*
 * Normalises the |len| bytes of :path at |in| into |out| (|outlen| at least
 * L7PATH_OUT_SIZE(len); NUL-terminated). Returns 0 with the whole new :path
 * length in *out_len and the length of its path part (what policies and
 * routes match) in *path_len, or -MESH_EPROTO (answer 400) with a static
 * reason in *why. |in| and |out| must not overlap.
 */
int l7path_normalize(enum l7path_mode mode, const char *in, size_t len, char *out, size_t outlen,
                     size_t *out_len, size_t *path_len, const char **why);

/* "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES", "NONE" (MeshConfig's names). */
const char *l7path_mode_name(enum l7path_mode mode);
/* The reverse; also accepts "DEFAULT" (= BASE, as Istio). Returns 0 or -1. */
int l7path_mode_parse(const char *s, enum l7path_mode *mode);

#endif
