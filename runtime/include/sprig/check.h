/* Loading a store into a tree with every check a row must pass, one set of checks for the
 * daemon (which loads what passes and logs one line about the rest) and for `sprig store
 * verify` (which prints each problem and, with --fix, repairs it).
 *
 * A row is left out of the tree when it cannot belong to it: a node whose id or type is
 * not an id, an edge or point of a node (or edge) that is missing or left out, a point
 * that is not valid (a value that is not a finite number, a type, key or origin that is
 * not an id, a tombstone other than 0 or 1, a time not after 1970), and, once every row
 * is in, the newest live edge of each cycle (newest by the latest time of its points;
 * ties go to the greater (up, down) ids). A point whose stored hash does not match its
 * fields (a row changed outside sprig) is loaded: its content is the truth. Loop thread
 * only, like the store and the tree. */
#ifndef SPRIG_CHECK_H
#define SPRIG_CHECK_H

#include <stddef.h>
#include "sprig/store.h"
#include "sprig/tree.h"

typedef enum {
    SPRIG_CHECK_NODE,   /* a node whose id or type is not an id: left out */
    SPRIG_CHECK_ORPHAN, /* an edge or point of a node or edge missing or left out */
    SPRIG_CHECK_POINT,  /* a point that is not valid: left out */
    SPRIG_CHECK_CYCLE,  /* the newest live edge of a cycle: left out */
    SPRIG_CHECK_HASH,   /* a point whose stored hash differs from its fields: loaded */
    SPRIG_CHECK_KINDS
} sprig_check_kind_t;

/* One problem, everything borrowed for the callback. */
typedef struct sprig_check_problem {
    sprig_check_kind_t kind;
    const char *table;      /* the row's table: nodes, edges, points or edge_points */
    const char *up;         /* an edge's (or edge point's) parent; NULL for nodes, points */
    const char *id;         /* the node (nodes, points), or the edge's child */
    const sprig_point_t *p; /* points and edge points; NULL otherwise */
    /* SPRIG_CHECK_CYCLE: the edge, still in the tree with its points (removed after the
     * callback returns). */
    const sprig_edge_t *edge;
    uint64_t hash; /* SPRIG_CHECK_HASH: ph() of the row's fields */
    /* A sentence naming the row, the rule broken and the value; bytes that are not
     * printable ASCII are written \xNN. */
    const char *what;
} sprig_check_problem_t;

typedef void (*sprig_check_fn)(const sprig_check_problem_t *pr, void *arg);

typedef struct sprig_check_result {
    size_t count[SPRIG_CHECK_KINDS]; /* problems of each kind */
    size_t rows;                     /* rows read */
    int64_t max_time;                /* the latest time of a point loaded (0: none) */
} sprig_check_result_t;

/* Loads every row of s into t (empty) through sprig_store_load, applying the checks above,
 * and calls fn (may be NULL) for each problem, in the order of the rows, cycles last. It
 * leaves t's hashes deferred: call sprig_tree_hash_rebuild next. Fills *res. Returns 0,
 * -ENOMEM, or the store's error reading the rows. */
SPRIG_API int sprig_check_load(sprig_store_t *s, sprig_tree_t *t, sprig_check_fn fn, void *arg,
                               sprig_check_result_t *res);

/* Writes into out (n bytes) one line that sums up res's problems for a log, as
 * "1 edge closing a cycle, 2 invalid points left out; 1 row changed outside sprig" and
 * returns whether there was any. */
SPRIG_API bool sprig_check_summary(const sprig_check_result_t *res, char *out, size_t n);

#endif
