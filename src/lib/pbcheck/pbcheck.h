/*
 * pbcheck.h - protobuf bytes from a peer are walked before protobuf-c unpacks
 * them: size, nesting depth and wire validity, without recursion.
 *
 * protobuf-c's unpack recurses once per nested message and has no depth limit.
 * google.protobuf.Struct nests without end (Struct -> Value -> ListValue ->
 * Value ...), and it is in the metadata every proxy sends (xDS Node.metadata,
 * the CA request's metadata): ~30 KB nested 5000 deep overflowed meshd's
 * stack. pb_check() walks the wire bytes with an explicit stack, guided by the
 * message descriptors: a length-delimited field whose descriptor says MESSAGE
 * is descended into (and counted), anything else is skipped after its bounds
 * are checked. Unknown fields are skipped, never descended (protobuf-c keeps
 * them as bytes), so only a known message field adds a level.
 *
 * Depth counts messages, the outermost being 1. PB_MAX_DEPTH is 32: the
 * deepest message amesh exchanges is 5 levels (Authorization -> Rule ->
 * Clause -> Match -> StringMatch; DeltaDiscoveryRequest -> Node -> Struct ->
 * FieldsEntry -> Value), and each level of JSON-like nesting in a Struct costs
 * 3 (Struct, its map entry, Value), so 32 leaves room for metadata nested ~9
 * deep. protobuf's own C++/Java parsers stop at 100; at 32 protobuf-c's
 * recursion uses a few tens of KB of stack at most.
 */
#ifndef MESH_LIB_PBCHECK_H
#define MESH_LIB_PBCHECK_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define PB_MAX_DEPTH 32 /* message levels, the outermost included */
#define PB_ERR_MAX   160

/*
 * Checks that |len| bytes at |data| are at most |max_bytes| long, nest at most
 * |max_depth| messages (0: PB_MAX_DEPTH) and are well-formed protobuf wire
 * data for |desc|: every tag, varint and length complete and in bounds, no
 * groups (proto3 has none; protobuf-c cannot read them), the wire type of a
 * known field the one its type uses (packed repeated scalars included, their
 * payload a whole number of elements). Returns 0, -MESH_ELIMIT (too large or
 * too deep) or -MESH_EPROTO (malformed), with a reason in |err|.
 */
int pb_check(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
             size_t max_bytes, unsigned max_depth, char *err, size_t errlen);

/*
 * pb_check() with PB_MAX_DEPTH, then protobuf_c_message_unpack(). Returns the
 * message (free it with protobuf_c_message_free_unpacked() or the generated
 * *__free_unpacked()), or NULL with a reason in |err| ("nested deeper than 32
 * messages", "does not decode as ..."). |data| may be NULL when |len| is 0.
 * Every protobuf a peer sends goes through here.
 */
void *pb_unpack_checked(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                        size_t max_bytes, char *err, size_t errlen);

#endif
