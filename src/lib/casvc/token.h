/*
 * token.h - node credentials: what a ztunnel presents to meshd as
 * "authorization: Bearer <token>" on xDS and CA calls.
 *
 * A token names one node and an expiry and is signed with HMAC-SHA256 under a
 * key only meshd holds (token-key in its state directory):
 *
 *   v1:<node>:<expires, unix seconds>:<64 hex digits of HMAC("v1:<node>:<expires>")>
 *
 * meshd issues one per node (`meshd token --node NAME`); the node's ztunnel
 * reads it from a file. Kubernetes service-account tokens replace this when
 * meshd runs against a real cluster.
 */
#ifndef MESH_LIB_TOKEN_H
#define MESH_LIB_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_KEY_LEN 32
#define TOKEN_MAX_LEN 512
#define TOKEN_NODE_MAX 253 /* a DNS subdomain, as Kubernetes node names are */

/* True if |node| is a valid node name: 1-253 of [a-z0-9.-], starting and ending alphanumeric. */
bool token_node_valid(const char *node);

/* Writes the token for |node| valid until |expires| into |out|. Returns 0 or -EINVAL. */
int token_mint(const uint8_t key[TOKEN_KEY_LEN], const char *node, int64_t expires, char *out,
               size_t outlen);

/*
 * Checks |len| bytes of |tok| at time |now|. Returns 0 with the node name in
 * |node| (at least TOKEN_NODE_MAX + 1 bytes), or -MESH_EDENIED with |why| set
 * to a static reason (for the log; peers get an opaque error).
 */
int token_verify(const uint8_t key[TOKEN_KEY_LEN], const char *tok, size_t len, int64_t now,
                 char *node, const char **why);

#endif
