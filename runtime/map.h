/* An open-addressing hash map for the runtime's own indexes (the tree's nodes, points and
 * strings; the store's history series). Internal: not part of the public headers. */
#ifndef SPRIG_MAP_H
#define SPRIG_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A set of items found by a 64-bit hash and an equality test. Linear probing. Zeroed is
 * empty. Removal is for undoing a refused change (sprig_tree_rollback): the tree never
 * forgets a node, point or string it has kept. */
typedef struct tree__map {
    void **items;
    uint64_t *hashes;
    size_t cap; /* power of two, or 0 */
    size_t len;
} tree__map_t;

typedef bool (*tree__map_eq)(const void *item, const void *key);

void *tree__map_get(const tree__map_t *m, uint64_t h, tree__map_eq eq, const void *key);
/* Adds an item the caller has checked is absent; 0 or -ENOMEM. */
int tree__map_add(tree__map_t *m, uint64_t h, void *item);
/* Removes item (the pointer itself, added with hash h); a no-op when it is absent. Never
 * allocates, so an undo cannot fail. */
void tree__map_remove(tree__map_t *m, uint64_t h, const void *item);
/* Frees the map's arrays, not the items. */
void tree__map_free(tree__map_t *m);
uint64_t tree__hash_bytes(const void *p, size_t n);

#endif
