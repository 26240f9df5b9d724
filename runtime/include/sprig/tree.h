/* The tree of nodes, edges and their points, held in memory, with the Merkle hashes of
 * DESIGN.md section 4 kept up to date on every change (O(depth) per point).
 *
 * The tree knows nothing of SQLite, clocks or validation: the core (core.h) is the one
 * writer, and checks input before it calls sprig_tree_*. Everything here runs on the
 * loop thread. Nodes and edges are never freed before the tree: a delete is a tombstone
 * point on an edge. Strings handed out (ids, types, point fields) stay valid as long as
 * the tree, except a point's text, which is valid until that point is next replaced. */
#ifndef SPRIG_TREE_H
#define SPRIG_TREE_H

#include <stdbool.h>
#include "sprig/point.h"

typedef struct sprig_tree sprig_tree_t;
typedef struct sprig_node sprig_node_t;
typedef struct sprig_edge sprig_edge_t;

/* Point types that describe this instance only (DESIGN.md section 2: `local = true` in a
 * schema) are stored but not hashed. The schema sets this predicate; none by default. */
typedef bool (*sprig_tree_local_fn)(const char *node_type, const char *point_type, void *arg);

/* Creates an empty tree; returns 0 or -ENOMEM. Free with sprig_tree_close. */
SPRIG_API int sprig_tree_open(sprig_tree_t **out);
/* Frees the tree and everything it handed out; NULL is a no-op. */
SPRIG_API void sprig_tree_close(sprig_tree_t *t);
SPRIG_API void sprig_tree_set_local_fn(sprig_tree_t *t, sprig_tree_local_fn fn, void *arg);

/* Returns the tree's copy of s (interned: equal strings give the same pointer), or NULL
 * on -ENOMEM. Valid as long as the tree. */
SPRIG_API const char *sprig_tree_intern(sprig_tree_t *t, const char *s);

/* Adds a node with no edges. Returns 0, -EEXIST (a node with that id exists; *out is set
 * to it) or -ENOMEM. Ids and types are not checked here. */
SPRIG_API int sprig_tree_node_add(sprig_tree_t *t, const char *id, const char *type,
                                  sprig_node_t **out);
/* Returns the node with that id, or NULL. */
SPRIG_API sprig_node_t *sprig_tree_node(const sprig_tree_t *t, const char *id);
SPRIG_API void sprig_tree_set_root(sprig_tree_t *t, sprig_node_t *root);
SPRIG_API sprig_node_t *sprig_tree_root(const sprig_tree_t *t);
/* Root hash: sub(root), or 0 with no root. */
SPRIG_API uint64_t sprig_tree_root_hash(const sprig_tree_t *t);
SPRIG_API size_t sprig_tree_node_count(const sprig_tree_t *t);
SPRIG_API size_t sprig_tree_point_count(const sprig_tree_t *t);
/* Visits every node in creation order; stops early and returns fn's value when it is
 * non-zero. */
SPRIG_API int sprig_tree_each_node(const sprig_tree_t *t, int (*fn)(sprig_node_t *, void *),
                                   void *arg);

/* True when a live edge up -> down would close a cycle: down is up, or down is an
 * ancestor of up through edges that are not tombstoned. */
SPRIG_API bool sprig_tree_would_cycle(const sprig_tree_t *t, const sprig_node_t *up,
                                      const sprig_node_t *down);
/* Returns the edge up -> down, or NULL. */
SPRIG_API sprig_edge_t *sprig_tree_edge(const sprig_tree_t *t, const sprig_node_t *up,
                                        const sprig_node_t *down);
/* Returns the edge up -> down, adding it (with no points, so not tombstoned) when
 * missing; NULL on -ENOMEM. Cycles are not checked here. */
SPRIG_API sprig_edge_t *sprig_tree_edge_add(sprig_tree_t *t, sprig_node_t *up, sprig_node_t *down);

/* Finds one cycle of live (not tombstoned) edges, as a damaged store can hold (the core
 * refuses an edge that would close one). On success *out (caller frees with sprig_free)
 * holds its edges, each one's down being the next one's up, *n of them; *out is NULL and
 * *n 0 when there is none. Returns 0 or -ENOMEM. */
SPRIG_API int sprig_tree_find_cycle(sprig_tree_t *t, sprig_edge_t ***out, size_t *n);
/* Removes edge e and its points from the tree, as if it had never been added (loading a
 * damaged store leaves out an edge that closes a cycle). Only while hashes are deferred
 * and no journal is open, else -EBUSY; 0 when removed. e is freed. */
SPRIG_API int sprig_tree_edge_remove(sprig_tree_t *t, sprig_edge_t *e);

/* Merges p into the node's points by the merge rule. Returns 1 when p was stored (new, or
 * greater than the stored point), 0 when it was not (equal or older), -ENOMEM. Every field
 * of p must be set; strings are copied. Hashes are updated up every path to the root. */
SPRIG_API int sprig_tree_point_put(sprig_tree_t *t, sprig_node_t *n, const sprig_point_t *p);
/* The same, and *held (when not NULL and the result is 0 or 1) is the point the tree holds
 * for (type, key) afterwards: the write path's way to avoid a second lookup. */
SPRIG_API int sprig_tree_point_merge(sprig_tree_t *t, sprig_node_t *n, const sprig_point_t *p,
                                     const sprig_point_t **held);
/* The same for a point of an edge; a point of type "tombstone" with key "0" sets the
 * edge's tombstone state from its value (non-zero = deleted). */
SPRIG_API int sprig_tree_edge_point_put(sprig_tree_t *t, sprig_edge_t *e, const sprig_point_t *p);
SPRIG_API int sprig_tree_edge_point_merge(sprig_tree_t *t, sprig_edge_t *e, const sprig_point_t *p,
                                          const sprig_point_t **held);
/* The stored point (type, key) of a node, found through the tree's index, or NULL. key
 * NULL means "0". */
SPRIG_API const sprig_point_t *sprig_tree_point(const sprig_tree_t *t, const sprig_node_t *n,
                                                const char *type, const char *key);
/* The same by a walk of the node's (or edge's) few points; key NULL means "0". */
SPRIG_API const sprig_point_t *sprig_node_point(const sprig_node_t *n, const char *type,
                                                const char *key);
SPRIG_API const sprig_point_t *sprig_edge_point(const sprig_edge_t *e, const char *type,
                                                const char *key);

/* ph() of a point held by the tree (one returned by the functions above), kept with it. */
SPRIG_API uint64_t sprig_tree_point_hash(const sprig_point_t *p);
/* Whether such a point is local (left out of the hashes), as decided when it was stored. */
SPRIG_API bool sprig_tree_point_local(const sprig_point_t *p);

/* Node accessors. Points are listed in the order they were first stored. */
SPRIG_API const char *sprig_node_id(const sprig_node_t *n);
SPRIG_API const char *sprig_node_type(const sprig_node_t *n);
SPRIG_API uint64_t sprig_node_own_hash(const sprig_node_t *n);
SPRIG_API uint64_t sprig_node_hash(const sprig_node_t *n); /* sub(n) */
SPRIG_API const sprig_point_t *sprig_node_points(const sprig_node_t *n);
SPRIG_API const sprig_point_t *sprig_point_next(const sprig_point_t *p);
SPRIG_API sprig_edge_t *sprig_node_children(const sprig_node_t *n); /* first child edge */
SPRIG_API sprig_edge_t *sprig_node_parents(const sprig_node_t *n);  /* first parent edge */
/* The first parent edge of n that is not deleted (the one it is shown under), or NULL:
 * the root, or a deleted node. */
SPRIG_API sprig_edge_t *sprig_node_live_parent(const sprig_node_t *n);

/* True when n is the root or has a parent edge that is not deleted: the nodes whose
 * drivers and rules run. */
SPRIG_API bool sprig_node_live(const sprig_tree_t *t, const sprig_node_t *n);
/* True when n lies in another device's tree kept here (an upstream keeps each device's
 * tree under a node of type "device" below its root): its drivers and rules run on that
 * device, not here (DESIGN.md section 2). Follows live parents; bounded. */
SPRIG_API bool sprig_node_foreign(const sprig_tree_t *t, const sprig_node_t *n);
/* The root of the device tree n lies in (the nearest node of type "device" above or at n
 * that has a parent: not the tree's root), or NULL when n is this instance's own. Follows live parents, else
 * (a deleted node) its first parent; bounded. */
SPRIG_API const sprig_node_t *sprig_node_device(const sprig_tree_t *t, const sprig_node_t *n);
/* Edge accessors. Tombstoned edges are listed too; check sprig_edge_tombstone. */
SPRIG_API sprig_node_t *sprig_edge_up(const sprig_edge_t *e);
SPRIG_API sprig_node_t *sprig_edge_down(const sprig_edge_t *e);
SPRIG_API bool sprig_edge_tombstone(const sprig_edge_t *e);
SPRIG_API uint64_t sprig_edge_contrib(const sprig_edge_t *e);
SPRIG_API const sprig_point_t *sprig_edge_points(const sprig_edge_t *e);
SPRIG_API sprig_edge_t *sprig_edge_next_child(const sprig_edge_t *e);  /* sibling under up */
SPRIG_API sprig_edge_t *sprig_edge_next_parent(const sprig_edge_t *e); /* other parents */

/* Undo. Between sprig_tree_begin and sprig_tree_commit or sprig_tree_rollback, every
 * change is journaled: rollback removes each node, edge, point and interned string added
 * since begin, gives each changed point its old fields back and each node and edge its
 * old hashes, so the tree is as it was at begin (root hash included) and every pointer it
 * handed out since begin is dangling. It never allocates and cannot fail. commit keeps the
 * changes and drops the journal. One journal at a time: begin returns -EBUSY while one is
 * open, else 0. Hash maintenance (defer, rebuild) must not run while one is open. The
 * core's sprig_core_apply uses this to make a list of writes all or nothing. */
SPRIG_API int sprig_tree_begin(sprig_tree_t *t);
SPRIG_API void sprig_tree_commit(sprig_tree_t *t);
SPRIG_API void sprig_tree_rollback(sprig_tree_t *t);

/* Hash maintenance. While deferred, puts do not update hashes (bulk load at start);
 * sprig_tree_hash_rebuild then computes all of them from scratch and resumes. */
SPRIG_API void sprig_tree_hash_defer(sprig_tree_t *t);
SPRIG_API int sprig_tree_hash_rebuild(sprig_tree_t *t);
/* Recomputes every hash from the points alone, without touching the kept ones, and
 * calls report for each node whose kept own or sub hash differs. Returns the number of
 * differing nodes, or -ENOMEM. */
SPRIG_API long sprig_tree_hash_check(sprig_tree_t *t,
                                     void (*report)(const sprig_node_t *n, uint64_t kept_sub,
                                                    uint64_t fresh_sub, void *arg),
                                     void *arg);

#endif
