/*
 * token_gens.h - per-node token generations: the revocation list of node
 * tokens. A node absent from the table is at generation 0; `meshd token
 * --revoke --node N` bumps N's, and meshd then refuses every token of N
 * minted before (token.h).
 *
 * The table lives in meshd's state directory as text, one node a line:
 *
 *   # amesh node token generations
 *   node-1 3
 *
 * Lines starting with '#' and empty lines are ignored; anything else must be
 * a valid node name, one space, a canonical decimal generation (1 to 2^63-1),
 * each node at most once. At most TOKEN_GENS_MAX_NODES nodes and
 * TOKEN_GENS_MAX_BYTES bytes.
 */
#ifndef MESH_LIB_TOKEN_GENS_H
#define MESH_LIB_TOKEN_GENS_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_GENS_FILE "token-generations"
#define TOKEN_GENS_MAX_NODES 100000
#define TOKEN_GENS_MAX_BYTES ((size_t)32 << 20)

struct token_gens;

/* An empty table (every node at 0). */
struct token_gens *token_gens_new(void);
void token_gens_free(struct token_gens *g);

/* Parses |len| bytes of |text|. Returns the table, or NULL with |err| naming the line. */
struct token_gens *token_gens_parse(const char *text, size_t len, char *err, size_t errlen);

/* |node|'s generation (0 when absent). */
uint64_t token_gens_get(const struct token_gens *g, const char *node);
size_t token_gens_count(const struct token_gens *g);

/* Raises |node|'s generation by one. Returns the new one, or 0 if it cannot (cap, overflow). */
uint64_t token_gens_bump(struct token_gens *g, const char *node);

/* The table as file text (malloc'd, NUL-terminated, sorted by node). */
char *token_gens_format(const struct token_gens *g);

#endif
