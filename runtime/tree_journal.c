/* The tree's undo journal: begin, commit and rollback (see tree.h); tree.c journals each
 * change as it makes it.
 *
 * The undo journal (sprig_tree_begin) records, before each change, what puts it back: an
 * added node, edge, point or string to remove, a point's old fields, a node's or edge's
 * old hashes. Each object is journaled once per journal (its `journaled` flag), so a
 * rollback restores the values of begin exactly, hashes too, without recomputing any. */
#include <errno.h>
#include <string.h>

#include "sprig/alloc.h"
#include "tree_internal.h"

int sprig_tree_begin(sprig_tree_t *t)
{
    if (t->journaling) {
        return -EBUSY;
    }
    t->journaling = true;
    t->jlen = 0;
    return 0;
}

/* Closes the journal; a large one gives its memory back (a big import would otherwise
 * keep it for the life of the process). */
static void jclose(sprig_tree_t *t)
{
    t->journaling = false;
    t->jlen = 0;
    if (t->jcap > 4096) {
        sprig_free(t->journal);
        t->journal = NULL;
        t->jcap = 0;
    }
}

void sprig_tree_commit(sprig_tree_t *t)
{
    for (size_t i = 0; t->journaling && i < t->jlen; i++) {
        jent_t *e = &t->journal[i];
        switch (e->kind) {
        case J_NODE:
        case J_NODE_HASH:
            ((sprig_node_t *)e->item)->journaled = false;
            break;
        case J_EDGE:
        case J_EDGE_HASH:
            ((sprig_edge_t *)e->item)->journaled = false;
            break;
        case J_POINT:
            if (e->old.p.text != tree__empty_text) {
                sprig_free((char *)e->old.p.text);
            }
            ((prec_t *)e->item)->journaled = false;
            break;
        case J_NODE_POINT:
        case J_EDGE_POINT:
            ((prec_t *)e->item)->journaled = false;
            break;
        case J_STRING:
            break;
        }
    }
    jclose(t);
}

/* Undoes one journal step; the steps after it are undone already. */
static void undo(sprig_tree_t *t, jent_t *e)
{
    prec_t *r = e->item;
    sprig_node_t *n = e->item;
    sprig_edge_t *ed = e->item;
    switch (e->kind) {
    case J_STRING:
        tree__map_remove(&t->strings, e->a, e->item);
        sprig_free(e->item);
        break;
    case J_NODE:
        tree__map_remove(&t->nodes, tree__hash_bytes(n->id, strlen(n->id)), n);
        t->last = e->where;
        if (t->last != NULL) {
            t->last->next_all = NULL;
        }
        else {
            t->first = NULL;
        }
        t->node_count--;
        sprig_free(n);
        break;
    case J_EDGE:
        ed->up->children = ed->next_child;
        ed->down->parents = ed->next_parent;
        tree__free_points(ed->points);
        sprig_free(ed);
        break;
    case J_NODE_POINT:
        n = e->where;
        tree__map_remove(&t->points, tree__prec_hash(r), r);
        n->points_tail = e->tail;
        if (e->tail != NULL) {
            e->tail->next = NULL;
        }
        else {
            n->points = NULL;
        }
        t->point_count--;
        r->next = NULL;
        tree__free_points(r);
        break;
    case J_EDGE_POINT:
        ((sprig_edge_t *)e->where)->points = r->next;
        r->next = NULL;
        tree__free_points(r);
        break;
    case J_POINT:
        if (r->p.text != tree__empty_text) {
            sprig_free((char *)r->p.text);
        }
        r->p = e->old.p;
        r->ph = e->old.ph;
        r->local = e->old.local;
        r->journaled = false;
        break;
    case J_NODE_HASH:
        n->own = e->a;
        n->sub = e->b;
        n->journaled = false;
        break;
    case J_EDGE_HASH:
        ed->exor = e->a;
        ed->contrib = e->b;
        ed->tombstone = e->tombstone;
        ed->journaled = false;
        break;
    }
}

void sprig_tree_rollback(sprig_tree_t *t)
{
    for (size_t i = t->journaling ? t->jlen : 0; i > 0; i--) {
        undo(t, &t->journal[i - 1]);
    }
    jclose(t);
}
