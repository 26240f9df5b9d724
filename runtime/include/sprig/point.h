/* The point record that every module passes around (DESIGN.md section 2). */
#ifndef SPRIG_POINT_H
#define SPRIG_POINT_H

#include "sprig/common.h"

/* A point of a node or an edge, identified there by (type, key). All strings are
 * borrowed from whoever filled the record. On input to a write, key NULL means "0",
 * text NULL means "", origin NULL means "" (a person) and time 0 means "now" from the
 * instance's hybrid logical clock. Points held by the tree always have every field set,
 * and their strings stay valid as long as the tree. */
typedef struct sprig_point {
    const char *type;
    const char *key;
    int64_t time; /* nanoseconds since the Unix epoch (HLC) */
    double value;
    const char *text;
    const char *origin;
    int tombstone; /* 0 or 1 */
} sprig_point_t;

#endif
