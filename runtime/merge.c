/* The merge rule: see merge.h. */
#include <string.h>

#include "sprig/merge.h"

int sprig_merge_cmp(const sprig_point_t *a, const sprig_point_t *b)
{
    if (a->time != b->time) {
        return a->time < b->time ? -1 : 1;
    }
    int c = strcmp(a->origin, b->origin);
    if (c != 0) {
        return c < 0 ? -1 : 1;
    }
    if (a->tombstone != b->tombstone) {
        return a->tombstone < b->tombstone ? -1 : 1;
    }
    uint64_t va, vb;
    memcpy(&va, &a->value, sizeof(va));
    memcpy(&vb, &b->value, sizeof(vb));
    if (va != vb) {
        return va < vb ? -1 : 1;
    }
    c = strcmp(a->text, b->text);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

bool sprig_merge_wins(const sprig_point_t *stored, const sprig_point_t *incoming)
{
    return stored == NULL || sprig_merge_cmp(incoming, stored) > 0;
}
