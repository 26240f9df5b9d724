/* What the files of the core module share. */
#ifndef SPRIG_CORE_INTERNAL_H
#define SPRIG_CORE_INTERNAL_H

#include "sprig/core.h"

struct sprig_core {
    uv_loop_t *loop;
    sprig_tree_t *tree;
    sprig_bus_t *bus;
    sprig_store_t *store;
    sprig_hlc_t hlc;
    size_t text_max;
    uint64_t last_batch;
    sprig_core_stats_t stats;
    const sprig_schema_t *schema;
    char root[SPRIG_ID_MAX + 1];
    /* While sprig_core_apply runs its list: the rows and events held back until every
     * change of it is accepted. */
    bool applying;
    struct core_row *rows;
    size_t nrows, caprows;
};

/* Queues the store row of a new node, or of a new edge up -> down (held back while
 * sprig_core_apply runs). 0 or -ENOMEM. */
int core__put_node(sprig_core_t *c, sprig_node_t *node);
int core__put_edge(sprig_core_t *c, sprig_node_t *up, sprig_node_t *down);

/* Checks n points for a write to `what` (a sentence fragment naming the node or edge):
 * 0, or the error code with err filled. */
int core__check_points(sprig_core_t *c, const char *what, const sprig_point_t *pts, size_t n,
                       sprig_error_t *err);
/* Applies checked points to an edge (creating it, and storing it, when missing). Points
 * without an origin get `origin` (NULL: ""). */
int core__apply_edge(sprig_core_t *c, sprig_node_t *up, sprig_node_t *down,
                     const sprig_point_t *pts, size_t n, const char *origin, const void *source);
/* Applies checked points to a node, the same way. */
int core__apply_node(sprig_core_t *c, sprig_node_t *node, const sprig_point_t *pts, size_t n,
                     const char *origin, const void *source);
/* Finds a node by id, or fails with -ENOENT naming `role` ("node", "parent", ...). */
int core__find(sprig_core_t *c, const char *id, const char *role, sprig_node_t **out,
               sprig_error_t *err);

/* Checks that a new node's type is declared, when a schema is attached: 0, or -EINVAL
 * with err naming the node, the type and the closest declared types. */
int core__check_type(sprig_core_t *c, const char *id, const char *type, sprig_error_t *err);

/* Checks points against the node's schema type (when there is one); 0 or -EINVAL. */
int core__check_schema(sprig_core_t *c, const sprig_node_t *n, const sprig_point_t *pts,
                       size_t count, sprig_error_t *err);

#endif
