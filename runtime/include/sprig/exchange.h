/* The tree as one JSON document, {"root", "hash", "nodes": [{"id","type","points"}],
 * "edges": [{"up","down","points"}]}: export reads it out of a core, import checks a whole
 * document and applies it through the core's write path as one all-or-nothing write.
 * Shared by GET /v1/export, POST /v1/import and the CLI, which loads such a document
 * without HTTP. Loop thread only, like the core. */
#ifndef SPRIG_EXCHANGE_H
#define SPRIG_EXCHANGE_H

#include <cJSON.h>

#include "sprig/core.h"

/* Returns a new object with the core's root id, the root hash (16 hex digits), every node
 * (deleted ones too) with its points and every edge (tombstoned ones too) with its
 * points, in creation order; caller frees with cJSON_Delete. NULL when out of memory.
 * Loop thread only. */
SPRIG_API cJSON *sprig_export_json(sprig_core_t *core);

/* Imports doc (borrowed, not changed, not kept) as one write, all or nothing: it reads and
 * checks the whole document (its shape, every id, that each edge names a node of the
 * document or of the tree, that a node here keeps its type, that each node is listed
 * once and a new one brings its schema's required points, every point's fields), then
 * hands sprig_core_apply the list of its nodes, then its edges with their points, then
 * each node's points; the core checks each against the tree as the ones before it left
 * it (cycles, the schema's parents and points, driver ownership, the drift limit) and,
 * when one is refused, undoes the others. So a refused document changes nothing: not the
 * tree, its hashes, the store or the bus. The document's root id maps onto this core's
 * root. On success *nodes and *points (either may be NULL) receive the number of nodes
 * and points in the document, on failure 0; the points are merged, so an older or equal
 * point is dropped silently. A caller that must know the import is on disk waits for
 * sprig_core_batch with sprig_core_when_durable. err may be NULL. Returns 0, or a code
 * with err naming the item ("nodes[3]", "edges[1]", "nodes[3].points[2]"), the rule and
 * the value:
 *   -EINVAL  not {"root": id, "nodes": [...], "edges": [...]}, an item without its string
 *            ids, a malformed id or point, or a point or edge the write path or schema
 *            refuses;
 *   -E2BIG   a list of points longer than 100000;
 *   -ENOENT  an edge naming a node in neither the document nor the tree;
 *   -EEXIST  a node that exists here with another type, or one listed twice;
 *   SPRIG_ECYCLE an edge that would close a cycle; SPRIG_EDRIFT a time too far ahead;
 *   -ENOMEM. Loop thread only. */
SPRIG_API int sprig_import_json(sprig_core_t *core, const cJSON *doc, long *nodes, long *points,
                                sprig_error_t *err);

#endif
