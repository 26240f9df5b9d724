/* The core: the one write path of DESIGN.md section 1. Every change, from a driver, the
 * CLI, the API, a rule or sync, goes through sprig_core_write* and takes the same steps:
 * check the input, give local points a time from the HLC (or check a given time against
 * the drift limit), merge into the tree by the merge rule (which updates the hashes),
 * queue the accepted rows for the store's next batch, publish them on the bus.
 *
 * A call is all or nothing: every point is checked before any is applied, so a refused
 * call changes nothing in memory, on disk or on the bus. Loop thread only. */
#ifndef SPRIG_CORE_H
#define SPRIG_CORE_H

#include <stdbool.h>
#include <uv.h>
#include "sprig/bus.h"
#include "sprig/hlc.h"
#include "sprig/schema.h"
#include "sprig/store.h"
#include "sprig/tree.h"

typedef struct sprig_core sprig_core_t;

typedef struct sprig_core_opts {
    const char *db_path; /* SQLite file; created with a root device when missing */
    sprig_store_opts_t store;
    int64_t drift_ns;       /* remote times this far ahead of wall time are refused */
    size_t text_max;        /* longest point text in bytes; 0: SPRIG_TEXT_MAX_DEFAULT */
    sprig_hlc_wall_fn wall; /* NULL: the real clock (tests pass a fake) */
    const char *root_id;    /* id of the root device of a new database; NULL: a UUIDv4 */
    void *wall_arg;
} sprig_core_opts_t;

/* Opens the store at opts->db_path on loop, loads the tree, rebuilds the hashes and
 * creates the root device when the database is new. Returns 0 or -errno/SPRIG_E*, with
 * err naming the file and fault. Free with sprig_core_close. */
SPRIG_API int sprig_core_open(uv_loop_t *loop, const sprig_core_opts_t *opts, sprig_core_t **out,
                              sprig_error_t *err);
/* Commits the last batch and frees everything; NULL is a no-op. Returns 0 or the error of
 * the last commit. The loop must not be running a batch of this core's store. */
SPRIG_API int sprig_core_close(sprig_core_t *c);

/* Attaches the schema every later write is checked against (borrowed: keep it alive until
 * it is replaced or the core closed; NULL checks nothing). A new node (sprig_core_create,
 * a SPRIG_CHANGE_NODE of sprig_core_apply) must then be of a type the schema declares.
 * Nodes of an undeclared type already in the tree (loaded from a database made under
 * another schema, or replicated by sync through sprig_core_add_node) stay, and their
 * points are written unchecked. Local points of the schema are left out of the hashes. */
SPRIG_API void sprig_core_set_schema(sprig_core_t *c, const sprig_schema_t *schema);
SPRIG_API const sprig_schema_t *sprig_core_schema(const sprig_core_t *c);

/* Borrowed handles, valid until sprig_core_close. Read the tree freely; change it only
 * through the functions below. */
SPRIG_API sprig_tree_t *sprig_core_tree(sprig_core_t *c);
SPRIG_API sprig_bus_t *sprig_core_bus(sprig_core_t *c);
SPRIG_API sprig_store_t *sprig_core_store(sprig_core_t *c);
SPRIG_API sprig_hlc_t *sprig_core_hlc(sprig_core_t *c);
SPRIG_API uv_loop_t *sprig_core_loop(sprig_core_t *c);
SPRIG_API const char *sprig_core_root_id(const sprig_core_t *c);

/* Writes n points to a node. Each point: type and key valid ids (key NULL = "0"), value
 * finite, text valid UTF-8 of at most text_max bytes, tombstone 0 or 1, origin NULL/""
 * or a valid id, time 0 (now) or within the drift limit. source is the link the points
 * came in on (NULL for local writes), passed to bus subscribers; points from a link are
 * stored but not appended to the history (the instance that sampled them sends its own). Returns 0 (points that
 * lose the merge are dropped silently: that is the merge rule), -ENOENT (no such node),
 * -EINVAL, SPRIG_EDRIFT or -ENOMEM, with err naming node, point, rule and value. */
SPRIG_API int sprig_core_write(sprig_core_t *c, const char *node, const sprig_point_t *pts,
                               size_t n, const void *source, sprig_error_t *err);
/* Writes n points to the edge up -> down, adding the edge when missing. A point of type
 * "tombstone" deletes (value 1) or restores (value 0) the edge; an edge that becomes
 * live is refused with SPRIG_ECYCLE when it would close a cycle. */
SPRIG_API int sprig_core_write_edge(sprig_core_t *c, const char *up, const char *down,
                                    const sprig_point_t *pts, size_t n, const void *source,
                                    sprig_error_t *err);

/* One change of a list that sprig_core_apply writes as one. Strings and points are
 * borrowed for the call. */
typedef enum sprig_core_change_kind {
    SPRIG_CHANGE_NODE,   /* sprig_core_add_node(node, type); a new node's type declared */
    SPRIG_CHANGE_EDGE,   /* sprig_core_write_edge(up, node, pts, n) */
    SPRIG_CHANGE_POINTS, /* sprig_core_write(node, pts, n) */
} sprig_core_change_kind_t;

typedef struct sprig_core_change {
    sprig_core_change_kind_t kind;
    const char *node; /* the node; for an edge, its child (down) */
    const char *type; /* NODE: the node's type */
    const char *up;   /* EDGE: the parent */
    const sprig_point_t *pts;
    size_t n;
    const char *label; /* names the change in an error ("edges[3]"); NULL: none */
} sprig_core_change_t;

/* Writes a list of n changes as one write, all or nothing: each change is checked as its
 * function above checks it, against the tree as the changes before it in the list left
 * it (an edge may join nodes the list adds; a point owned by a driver may be written by a
 * parent the list links). When one is refused, the changes before it are undone: the
 * tree, its hashes, the HLC and the counts are as before the call (one refused write is
 * counted), and nothing was queued for the store or published. When all are accepted,
 * their rows are queued and their points published in list order, each point as it was
 * merged. A NODE change of a node not in the tree is refused (-EINVAL) when a schema is
 * attached and does not declare its type. Returns 0, or the refused change's code
 * (-EINVAL, -ENOENT, -EEXIST, SPRIG_ECYCLE, SPRIG_EDRIFT, -ENOMEM) with err naming it by
 * its label, the item, the rule and the value; -ENOMEM after all were accepted leaves the
 * tree whole and the store short of the rows that could not be queued (logged). Not from
 * inside another sprig_core_apply (-EBUSY). */
SPRIG_API int sprig_core_apply(sprig_core_t *c, const sprig_core_change_t *changes, size_t n,
                               const void *source, sprig_error_t *err);

/* Creates a node of type under parent, with its first points, in one step; origin (NULL:
 * a person) is the origin of the new edge and of each point that names none. id NULL
 * generates a UUIDv4; out_id (optional, SPRIG_ID_MAX + 1 bytes) receives the id. With a
 * schema attached, a type it does not declare is refused (-EINVAL, err suggesting the
 * closest declared types: sprig_schema_check_type). Returns 0, -EEXIST, -ENOENT (parent),
 * -EINVAL or one of sprig_core_write's codes. */
SPRIG_API int sprig_core_create(sprig_core_t *c, const char *id, const char *type,
                                const char *parent, const sprig_point_t *pts, size_t n,
                                const char *origin, char *out_id, sprig_error_t *err);
/* Adds a node with no edge yet, for import and sync, which bring its edges next. The
 * type is not checked against the schema: sync replicates a tree typed where it was made
 * (a gateway's own schema folder); import goes through sprig_core_apply, which checks it.
 * Returns 0 (also when it exists with this type), -EEXIST (it exists with another type)
 * or -EINVAL, with err naming the id and the rule. */
SPRIG_API int sprig_core_add_node(sprig_core_t *c, const char *id, const char *type,
                                  sprig_error_t *err);
/* Deletes node from parent (a tombstone on that edge; the node and its points stay). */
SPRIG_API int sprig_core_delete(sprig_core_t *c, const char *node, const char *parent,
                                const char *origin, sprig_error_t *err);
/* Moves node from one parent to another (tombstone on from, live edge to `to`). */
SPRIG_API int sprig_core_move(sprig_core_t *c, const char *node, const char *from, const char *to,
                              const char *origin, sprig_error_t *err);
/* Adds a further live parent to node (mirroring). */
SPRIG_API int sprig_core_mirror(sprig_core_t *c, const char *node, const char *to,
                                const char *origin, sprig_error_t *err);

/* The store batch holding the last accepted write; pass it to sprig_core_when_durable
 * to learn when that write is on disk. */
SPRIG_API uint64_t sprig_core_batch(const sprig_core_t *c);
SPRIG_API int sprig_core_when_durable(sprig_core_t *c, uint64_t batch, sprig_store_durable_cb cb,
                                      void *arg);

typedef struct sprig_core_stats {
    uint64_t accepted; /* points stored */
    uint64_t stale;    /* points that lost the merge (duplicates or older) */
    uint64_t refused;  /* calls refused for bad input */
} sprig_core_stats_t;
SPRIG_API void sprig_core_stats(const sprig_core_t *c, sprig_core_stats_t *out);

#endif
