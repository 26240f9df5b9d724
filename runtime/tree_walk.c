/* The tree's walks over every node: the worklist they share, the from-scratch hash
 * rebuild and check (a store just loaded, sprig store verify), and the questions a node
 * answers by walking up its parents (live, foreign, its device). See tree.c. */
#include <errno.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/hash.h"
#include "sprig/tree.h"
#include "tree_internal.h"

/* The worklist: a stack of nodes reused by every walk. */
int tree__work_push(sprig_tree_t *t, sprig_node_t *n)
{
    if (t->work_len == t->work_cap) {
        size_t cap = t->work_cap != 0 ? t->work_cap * 2 : 64;
        sprig_node_t **w = sprig_realloc(t->work, cap * sizeof(*w));
        if (w == NULL) {
            return -ENOMEM;
        }
        t->work = w;
        t->work_cap = cap;
    }
    t->work[t->work_len++] = n;
    return 0;
}

/* From-scratch hashes of every node, from the points alone: own[] and sub[] are indexed
 * by node index. An iterative post-order walk over live edges, so deep trees cannot
 * overflow the stack; a live edge back into a node still being walked (a cycle in a
 * damaged store) counts as a child with sub 0 and makes the result SPRIG_ECYCLE. */
static int compute_fresh(sprig_tree_t *t, uint64_t *own, uint64_t *sub)
{
    enum { NEW, OPEN, DONE };
    unsigned char *state = sprig_calloc(t->node_count + 1, 1);
    if (state == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    for (sprig_node_t *n = t->first; n != NULL; n = n->next_all) {
        uint64_t o = 0;
        for (prec_t *r = n->points; r != NULL; r = r->next) {
            bool local = t->local_fn != NULL && t->local_fn(n->type, r->p.type, t->local_arg);
            o ^= local ? 0 : sprig_hash_point(&r->p);
        }
        own[n->index] = o;
    }
    for (sprig_node_t *start = t->first; start != NULL; start = start->next_all) {
        if (state[start->index] != NEW) {
            continue;
        }
        t->work_len = 0;
        if (tree__work_push(t, start) != 0) {
            rc = -ENOMEM;
            break;
        }
        while (t->work_len > 0) {
            sprig_node_t *n = t->work[t->work_len - 1];
            if (state[n->index] == NEW) {
                state[n->index] = OPEN;
                for (sprig_edge_t *e = n->children; e != NULL; e = e->next_child) {
                    if (!e->tombstone && state[e->down->index] == NEW &&
                        tree__work_push(t, e->down) != 0) {
                        sprig_free(state);
                        return -ENOMEM;
                    }
                }
                continue;
            }
            t->work_len--;
            if (state[n->index] == DONE) {
                continue; /* pushed twice through a mirror */
            }
            uint64_t s = own[n->index];
            for (sprig_edge_t *e = n->children; e != NULL; e = e->next_child) {
                uint64_t x = 0;
                for (prec_t *r = e->points; r != NULL; r = r->next) {
                    x ^= sprig_hash_point(&r->p);
                }
                uint64_t child = 0;
                if (e->tombstone) {
                    child = 0; /* a deleted subtree is left out */
                }
                else if (state[e->down->index] == DONE) {
                    child = sub[e->down->index];
                }
                else {
                    rc = SPRIG_ECYCLE;
                }
                s ^= sprig_hash_contrib(e->down->id, child, x);
            }
            sub[n->index] = s;
            state[n->index] = DONE;
        }
    }
    sprig_free(state);
    return rc;
}

void sprig_tree_hash_defer(sprig_tree_t *t)
{
    t->deferred = true;
}

int sprig_tree_hash_rebuild(sprig_tree_t *t)
{
    size_t n = t->node_count + 1;
    uint64_t *own = sprig_malloc(n * sizeof(*own));
    uint64_t *sub = sprig_malloc(n * sizeof(*sub));
    int rc = -ENOMEM;
    if (own != NULL && sub != NULL) {
        rc = compute_fresh(t, own, sub);
        if (rc != -ENOMEM) {
            for (sprig_node_t *nd = t->first; nd != NULL; nd = nd->next_all) {
                nd->own = own[nd->index];
                nd->sub = sub[nd->index];
                for (prec_t *r = nd->points; r != NULL; r = r->next) {
                    r->local =
                        t->local_fn != NULL && t->local_fn(nd->type, r->p.type, t->local_arg);
                    r->ph = sprig_hash_point(&r->p);
                }
                for (sprig_edge_t *e = nd->children; e != NULL; e = e->next_child) {
                    e->exor = 0;
                    for (prec_t *r = e->points; r != NULL; r = r->next) {
                        r->ph = sprig_hash_point(&r->p);
                        e->exor ^= r->ph;
                    }
                    e->contrib = sprig_hash_contrib(
                        e->down->id, e->tombstone ? 0 : sub[e->down->index], e->exor);
                }
            }
            t->deferred = false;
        }
    }
    sprig_free(own);
    sprig_free(sub);
    return rc;
}

long sprig_tree_hash_check(sprig_tree_t *t,
                           void (*report)(const sprig_node_t *n, uint64_t kept_sub,
                                          uint64_t fresh_sub, void *arg),
                           void *arg)
{
    size_t n = t->node_count + 1;
    uint64_t *own = sprig_malloc(n * sizeof(*own));
    uint64_t *sub = sprig_malloc(n * sizeof(*sub));
    long bad = -ENOMEM;
    if (own != NULL && sub != NULL && compute_fresh(t, own, sub) != -ENOMEM) {
        bad = 0;
        for (sprig_node_t *nd = t->first; nd != NULL; nd = nd->next_all) {
            if (nd->own != own[nd->index] || nd->sub != sub[nd->index]) {
                bad++;
                if (report != NULL) {
                    report(nd, nd->sub, sub[nd->index], arg);
                }
            }
        }
    }
    sprig_free(own);
    sprig_free(sub);
    return bad;
}

sprig_edge_t *sprig_node_live_parent(const sprig_node_t *n)
{
    for (sprig_edge_t *e = sprig_node_parents(n); e != NULL; e = sprig_edge_next_parent(e)) {
        if (!sprig_edge_tombstone(e)) {
            return e;
        }
    }
    return NULL;
}

bool sprig_node_live(const sprig_tree_t *t, const sprig_node_t *n)
{
    return n == sprig_tree_root(t) || sprig_node_live_parent(n) != NULL;
}

bool sprig_node_foreign(const sprig_tree_t *t, const sprig_node_t *n)
{
    const sprig_node_t *root = sprig_tree_root(t);
    for (int depth = 0; n != NULL && n != root && depth < 256; depth++) {
        if (strcmp(sprig_node_type(n), "device") == 0) {
            return true;
        }
        const sprig_edge_t *e = sprig_node_live_parent(n);
        n = e != NULL ? sprig_edge_up(e) : NULL;
    }
    return false;
}

const sprig_node_t *sprig_node_device(const sprig_tree_t *t, const sprig_node_t *n)
{
    const sprig_node_t *root = sprig_tree_root(t);
    for (int depth = 0; n != NULL && n != root && depth < 256; depth++) {
        /* a device node with no parent is a root of its own (this instance's) */
        if (strcmp(sprig_node_type(n), "device") == 0 && sprig_node_parents(n) != NULL) {
            return n;
        }
        const sprig_edge_t *e = sprig_node_live_parent(n);
        if (e == NULL) {
            e = sprig_node_parents(n);
        }
        n = e != NULL ? sprig_edge_up(e) : NULL;
    }
    return NULL;
}
