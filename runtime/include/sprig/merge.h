/* The merge rule (DESIGN.md section 3): last writer wins per point, in the total order
 * (time, origin, tombstone, value bits, text). Total, so merge is commutative,
 * associative and idempotent. */
#ifndef SPRIG_MERGE_H
#define SPRIG_MERGE_H

#include <stdbool.h>
#include "sprig/point.h"

/* Compares a and b in the merge order; <0, 0 or >0. Only time, origin, tombstone, value
 * bits and text take part (type and key identify the point and are assumed equal).
 * Origin and text compare as bytes; value bits as unsigned 64-bit integers. Every string
 * field must be non-NULL. */
SPRIG_API int sprig_merge_cmp(const sprig_point_t *a, const sprig_point_t *b);
/* True when incoming replaces stored (stored may be NULL: nothing stored yet). */
SPRIG_API bool sprig_merge_wins(const sprig_point_t *stored, const sprig_point_t *incoming);

#endif
