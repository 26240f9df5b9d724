/* The Merkle hashes of DESIGN.md section 4, as pure functions over XXH3-64. The tree
 * keeps them up to date incrementally; these are also what a from-scratch check uses. */
#ifndef SPRIG_HASH_H
#define SPRIG_HASH_H

#include "sprig/point.h"

/* ph(p): XXH3-64 of the canonical encoding of (type, key, time, value bits, text,
 * tombstone, origin): each string as a u32 little-endian length then its bytes, time and
 * value bits as 8 bytes little-endian, tombstone as one byte. NULL key/text/origin hash
 * as "0"/""/"" as on input to a write. */
SPRIG_API uint64_t sprig_hash_point(const sprig_point_t *p);
/* contrib(parent, c) = XXH3-64 of (c.id as length-prefixed bytes, sub(c) as 8 bytes LE,
 * edge_xor as 8 bytes LE), where edge_xor is the XOR of ph over the edge's points. */
SPRIG_API uint64_t sprig_hash_contrib(const char *child_id, uint64_t child_sub, uint64_t edge_xor);

#endif
