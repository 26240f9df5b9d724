/* The tree's hash map: see map.h. Load factor at most 1/2. */
#include <errno.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "sprig/alloc.h"
#include "map.h"

uint64_t tree__hash_bytes(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

void *tree__map_get(const tree__map_t *m, uint64_t h, tree__map_eq eq, const void *key)
{
    if (m->cap == 0) {
        return NULL;
    }
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        void *item = m->items[i];
        if (item == NULL) {
            return NULL;
        }
        if (m->hashes[i] == h && eq(item, key)) {
            return item;
        }
    }
}

static void place(void **items, uint64_t *hashes, size_t cap, uint64_t h, void *item)
{
    size_t mask = cap - 1;
    size_t i = (size_t)h & mask;
    while (items[i] != NULL) {
        i = (i + 1) & mask;
    }
    items[i] = item;
    hashes[i] = h;
}

int tree__map_add(tree__map_t *m, uint64_t h, void *item)
{
    if ((m->len + 1) * 2 > m->cap) {
        size_t cap = m->cap != 0 ? m->cap * 2 : 16;
        void **items = sprig_calloc(cap, sizeof(*items));
        uint64_t *hashes = sprig_malloc(cap * sizeof(*hashes));
        if (items == NULL || hashes == NULL) {
            sprig_free(items);
            sprig_free(hashes);
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->items[i] != NULL) {
                place(items, hashes, cap, m->hashes[i], m->items[i]);
            }
        }
        sprig_free(m->items);
        sprig_free(m->hashes);
        m->items = items;
        m->hashes = hashes;
        m->cap = cap;
    }
    place(m->items, m->hashes, m->cap, h, item);
    m->len++;
    return 0;
}

void tree__map_remove(tree__map_t *m, uint64_t h, const void *item)
{
    if (m->cap == 0) {
        return;
    }
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (size_t n = 0; m->items[i] != item; i = (i + 1) & mask, n++) {
        if (m->items[i] == NULL || n == m->cap) {
            return;
        }
    }
    /* Backward shift: every item after the hole that may not sit before its home slot
     * moves into the hole, so later lookups never stop at an empty slot too early. */
    m->items[i] = NULL;
    m->len--;
    for (size_t j = (i + 1) & mask; m->items[j] != NULL; j = (j + 1) & mask) {
        size_t home = (size_t)m->hashes[j] & mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            m->items[i] = m->items[j];
            m->hashes[i] = m->hashes[j];
            m->items[j] = NULL;
            i = j;
        }
    }
}

void tree__map_free(tree__map_t *m)
{
    sprig_free(m->items);
    sprig_free(m->hashes);
    m->items = NULL;
    m->hashes = NULL;
    m->cap = m->len = 0;
}
