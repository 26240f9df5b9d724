/* The tree's walks over every node: the worklist they share, the cycle checks (would an
 * edge close one; the cycles of a damaged store), the from-scratch hash rebuild and check
 * (a store just loaded, sprig store verify), and the questions a node answers by walking
 * up its parents (live, foreign, its device). See tree.c. */
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

bool sprig_tree_would_cycle(const sprig_tree_t *ct, const sprig_node_t *up,
                            const sprig_node_t *down)
{
    sprig_tree_t *t = (sprig_tree_t *)ct; /* the walk's scratch state only */
    if (up == down) {
        return true;
    }
    unsigned mark = ++t->mark;
    t->work_len = 0;
    if (tree__work_push(t, (sprig_node_t *)up) != 0) {
        return true; /* out of memory: refuse rather than risk a cycle */
    }
    while (t->work_len > 0) {
        sprig_node_t *n = t->work[--t->work_len];
        for (sprig_edge_t *e = n->parents; e != NULL; e = e->next_parent) {
            if (e->tombstone || e->up->mark == mark) {
                continue;
            }
            if (e->up == down) {
                t->work_len = 0;
                return true;
            }
            e->up->mark = mark;
            if (tree__work_push(t, e->up) != 0) {
                t->work_len = 0;
                return true;
            }
        }
    }
    return false;
}

/* The edges of the cycle closed by e, whose down is on the current path (the work stack,
 * each node reached through via[its index]). */
static int cycle_edges(const sprig_tree_t *t, sprig_edge_t *const *via, sprig_edge_t *e,
                       sprig_edge_t ***out, size_t *n)
{
    size_t len = 1;
    for (size_t i = t->work_len - 1; t->work[i] != e->down; i--) {
        len++;
    }
    sprig_edge_t **v = sprig_malloc(len * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    /* Path order: from e->down down to e->up, then e back to the start. */
    v[len - 1] = e;
    for (size_t i = t->work_len - 1, k = len - 1; t->work[i] != e->down; i--) {
        v[--k] = via[t->work[i]->index];
    }
    *out = v;
    *n = len;
    return 0;
}

int sprig_tree_find_cycle(sprig_tree_t *t, sprig_edge_t ***out, size_t *n)
{
    enum { NEW, OPEN, DONE };
    /* Per node: its state, the edge the walk reached it through, its next child edge to
     * look at; the path itself is the work stack. */
    unsigned char *state = sprig_calloc(t->node_count + 1, 1);
    sprig_edge_t **via = sprig_calloc(t->node_count + 1, sizeof(*via));
    sprig_edge_t **next = sprig_calloc(t->node_count + 1, sizeof(*next));
    int rc = state != NULL && via != NULL && next != NULL ? 0 : -ENOMEM;
    *out = NULL;
    *n = 0;
    for (sprig_node_t *start = t->first; rc == 0 && start != NULL; start = start->next_all) {
        if (state[start->index] != NEW) {
            continue;
        }
        t->work_len = 0;
        state[start->index] = OPEN;
        next[start->index] = start->children;
        rc = tree__work_push(t, start);
        while (rc == 0 && t->work_len > 0) {
            sprig_node_t *top = t->work[t->work_len - 1];
            sprig_edge_t *e = next[top->index];
            while (e != NULL && e->tombstone) {
                e = e->next_child;
            }
            if (e == NULL) {
                state[top->index] = DONE;
                t->work_len--;
                continue;
            }
            next[top->index] = e->next_child;
            size_t d = e->down->index;
            if (state[d] == NEW) {
                state[d] = OPEN;
                via[d] = e;
                next[d] = e->down->children;
                rc = tree__work_push(t, e->down);
            }
            else if (state[d] == OPEN) {
                rc = cycle_edges(t, via, e, out, n);
                break;
            }
        }
        if (*n != 0) {
            break;
        }
    }
    t->work_len = 0;
    sprig_free(next);
    sprig_free(via);
    sprig_free(state);
    return rc;
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
