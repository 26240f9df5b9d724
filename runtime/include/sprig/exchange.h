/* The tree as one JSON document, {"root", "hash", "nodes": [{"id","type","points"}],
 * "edges": [{"up","down","points"}]}: export reads it out of a core, import checks a whole
 * document and then applies it through the core's write path. Shared by GET /v1/export,
 * POST /v1/import and the CLI, which loads such a document without HTTP. Loop thread only,
 * like the core. */
#ifndef SPRIG_EXCHANGE_H
#define SPRIG_EXCHANGE_H

#include <cJSON.h>

#include "sprig/core.h"

/* Returns a new object with the core's root id, the root hash (16 hex digits), every node
 * (deleted ones too) with its points and every edge (tombstoned ones too) with its
 * points, in creation order; caller frees with cJSON_Delete. NULL when out of memory.
 * Loop thread only. */
SPRIG_API cJSON *sprig_export_json(sprig_core_t *core);

/* Imports doc (borrowed, not changed, not kept): checks every node, then every edge, then
 * every node's points without changing anything, and only then applies them in that order
 * through sprig_core_add_node, sprig_core_write_edge and sprig_core_write, so a refused
 * document changes nothing. The document's root id maps onto this core's root. (An edge
 * that would close a cycle is only found while applying: the nodes and edges applied
 * before it stay.) On success *nodes and *points (either may be NULL) receive the number
 * of nodes and points in the document, on failure 0; the points are merged, so an older
 * or equal point is dropped silently. A caller that must know the import is on disk waits
 * for sprig_core_batch with sprig_core_when_durable. err may be NULL. Returns 0, or a code
 * with err naming the item, the rule and the value:
 *   -EINVAL  not {"root": id, "nodes": [...], "edges": [...]}, an item without its string
 *            ids, a malformed id or point, or a point the write path or schema refuses;
 *   -E2BIG   a list of points longer than 100000;
 *   -ENOENT  an edge naming a node in neither the document nor the tree;
 *   -EEXIST  a node that exists here with another type;
 *   -ENOMEM, or any other code of sprig_core_check, sprig_schema_check_required,
 *   sprig_core_add_node, sprig_core_write (SPRIG_EDRIFT) or sprig_core_write_edge
 *   (SPRIG_ECYCLE). Loop thread only. */
SPRIG_API int sprig_import_json(sprig_core_t *core, const cJSON *doc, long *nodes, long *points,
                                sprig_error_t *err);

#endif
