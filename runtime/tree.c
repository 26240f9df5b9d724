/* The in-memory tree with incremental Merkle hashes: see tree.h.
 *
 * Nodes are found by id in one hash map, node points by (node, type, key) in another, with
 * type, key and origin interned so that keys compare by pointer. Edges keep their few
 * points in a list.
 *
 * Hashes follow live edges only: a tombstoned edge contributes contrib(c.id, 0, edge
 * points), not its child's subtree (a departure from DESIGN.md section 4, which hashes
 * sub(c) through every edge). Live edges are kept acyclic by the core, so the hash graph
 * is a DAG even when a node is moved under its former child; through tombstoned edges it
 * would not be. A point change moves own(n) by old XOR new ph, then every ancestor of n
 * through live edges is recomputed exactly once, children before parents (Kahn's order
 * over the ancestor set), so a change costs O(ancestors), O(depth) in a tree, however
 * many paths mirrors make. */
#include <errno.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/hash.h"
#include "sprig/merge.h"
#include "sprig/tree.h"
#include "map.h"
#include "tree_internal.h"

const char tree__empty_text[] = "";

int sprig_tree_open(sprig_tree_t **out)
{
    *out = sprig_calloc(1, sizeof(**out));
    return *out != NULL ? 0 : -ENOMEM;
}

void tree__free_points(prec_t *r)
{
    while (r != NULL) {
        prec_t *next = r->next;
        if (r->p.text != tree__empty_text) {
            sprig_free((char *)r->p.text);
        }
        sprig_free(r);
        r = next;
    }
}

void sprig_tree_close(sprig_tree_t *t)
{
    if (t == NULL) {
        return;
    }
    sprig_tree_commit(t); /* frees the old texts an open journal holds */
    sprig_node_t *n = t->first;
    while (n != NULL) {
        sprig_node_t *next = n->next_all;
        sprig_edge_t *e = n->children;
        while (e != NULL) {
            sprig_edge_t *en = e->next_child;
            tree__free_points(e->points);
            sprig_free(e);
            e = en;
        }
        tree__free_points(n->points);
        sprig_free(n);
        n = next;
    }
    for (size_t i = 0; i < t->strings.cap; i++) {
        sprig_free(t->strings.items[i]);
    }
    tree__map_free(&t->nodes);
    tree__map_free(&t->points);
    tree__map_free(&t->strings);
    sprig_free(t->journal);
    sprig_free(t->work);
    sprig_free(t->ready);
    sprig_free(t);
}

void sprig_tree_set_local_fn(sprig_tree_t *t, sprig_tree_local_fn fn, void *arg)
{
    t->local_fn = fn;
    t->local_arg = arg;
}

/* --- the undo journal ----------------------------------------------------------------- */

/* Makes room for k more journal steps, so the change that follows can be journaled
 * without a failure halfway. 0, or -ENOMEM. A no-op without a journal. */
static int jreserve(sprig_tree_t *t, size_t k)
{
    return t->journaling
               ? sprig_grow((void **)&t->journal, &t->jcap, t->jlen + k, sizeof(*t->journal))
               : 0;
}

/* Adds a step reserved by jreserve. */
static void jadd(sprig_tree_t *t, const jent_t *e)
{
    if (t->journaling) {
        t->journal[t->jlen++] = *e;
    }
}

/* Journals n's hashes before their first change under the journal. */
static int jsave_node(sprig_tree_t *t, sprig_node_t *n)
{
    if (!t->journaling || n->journaled) {
        return 0;
    }
    if (jreserve(t, 1) != 0) {
        return -ENOMEM;
    }
    jadd(t, &(jent_t){.kind = J_NODE_HASH, .item = n, .a = n->own, .b = n->sub});
    n->journaled = true;
    return 0;
}

/* Journals e's hashes and tombstone state before their first change. */
static int jsave_edge(sprig_tree_t *t, sprig_edge_t *e)
{
    if (!t->journaling || e->journaled) {
        return 0;
    }
    if (jreserve(t, 1) != 0) {
        return -ENOMEM;
    }
    jadd(t, &(jent_t){.kind = J_EDGE_HASH,
                      .item = e,
                      .a = e->exor,
                      .b = e->contrib,
                      .tombstone = e->tombstone});
    e->journaled = true;
    return 0;
}

/* Journals the fields of point r before its first change, taking its text: r is left
 * with the empty text until it is filled again. */
static int jsave_point(sprig_tree_t *t, prec_t *r)
{
    if (!t->journaling || r->journaled) {
        return 0;
    }
    if (jreserve(t, 1) != 0) {
        return -ENOMEM;
    }
    jadd(t, &(jent_t){.kind = J_POINT, .item = r, .old = *r});
    r->journaled = true;
    r->p.text = tree__empty_text;
    return 0;
}

static bool str_eq(const void *item, const void *key)
{
    return strcmp(item, key) == 0;
}

const char *sprig_tree_intern(sprig_tree_t *t, const char *s)
{
    uint64_t h = tree__hash_bytes(s, strlen(s));
    char *found = tree__map_get(&t->strings, h, str_eq, s);
    if (found != NULL) {
        return found;
    }
    if (jreserve(t, 1) != 0) {
        return NULL;
    }
    char *copy = sprig_strdup(s);
    if (copy == NULL || tree__map_add(&t->strings, h, copy) != 0) {
        sprig_free(copy);
        return NULL;
    }
    jadd(t, &(jent_t){.kind = J_STRING, .item = copy, .a = h});
    return copy;
}

static bool node_eq(const void *item, const void *key)
{
    return strcmp(((const sprig_node_t *)item)->id, key) == 0;
}

sprig_node_t *sprig_tree_node(const sprig_tree_t *t, const char *id)
{
    return tree__map_get(&t->nodes, tree__hash_bytes(id, strlen(id)), node_eq, id);
}

int sprig_tree_node_add(sprig_tree_t *t, const char *id, const char *type, sprig_node_t **out)
{
    size_t len = strlen(id);
    uint64_t h = tree__hash_bytes(id, len);
    sprig_node_t *n = tree__map_get(&t->nodes, h, node_eq, id);
    if (n != NULL) {
        if (out != NULL) {
            *out = n;
        }
        return -EEXIST;
    }
    n = sprig_calloc(1, sizeof(*n) + len + 1);
    if (n == NULL) {
        return -ENOMEM;
    }
    memcpy(n->id, id, len + 1);
    n->type = sprig_tree_intern(t, type);
    if (n->type == NULL || jreserve(t, 1) != 0 || tree__map_add(&t->nodes, h, n) != 0) {
        sprig_free(n);
        return -ENOMEM;
    }
    jadd(t, &(jent_t){.kind = J_NODE, .item = n, .where = t->last});
    n->journaled = t->journaling;
    n->index = t->node_count++;
    if (t->last != NULL) {
        t->last->next_all = n;
    }
    else {
        t->first = n;
    }
    t->last = n;
    if (out != NULL) {
        *out = n;
    }
    return 0;
}

void sprig_tree_set_root(sprig_tree_t *t, sprig_node_t *root)
{
    t->root = root;
}

sprig_node_t *sprig_tree_root(const sprig_tree_t *t)
{
    return t->root;
}

uint64_t sprig_tree_root_hash(const sprig_tree_t *t)
{
    return t->root != NULL ? t->root->sub : 0;
}

size_t sprig_tree_node_count(const sprig_tree_t *t)
{
    return t->node_count;
}

size_t sprig_tree_point_count(const sprig_tree_t *t)
{
    return t->point_count;
}

int sprig_tree_each_node(const sprig_tree_t *t, int (*fn)(sprig_node_t *, void *), void *arg)
{
    for (sprig_node_t *n = t->first; n != NULL; n = n->next_all) {
        int rc = fn(n, arg);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

sprig_edge_t *sprig_tree_edge(const sprig_tree_t *t, const sprig_node_t *up,
                              const sprig_node_t *down)
{
    (void)t;
    /* Parents per node are few (mirrors), so search the child's parent list. */
    for (sprig_edge_t *e = down->parents; e != NULL; e = e->next_parent) {
        if (e->up == up) {
            return e;
        }
    }
    return NULL;
}

int sprig_tree_edge_remove(sprig_tree_t *t, sprig_edge_t *e)
{
    if (!t->deferred || t->journaling) {
        return -EBUSY;
    }
    sprig_edge_t **pp = &e->up->children;
    while (*pp != e) {
        pp = &(*pp)->next_child;
    }
    *pp = e->next_child;
    for (pp = &e->down->parents; *pp != e; pp = &(*pp)->next_parent) {
    }
    *pp = e->next_parent;
    tree__free_points(e->points);
    sprig_free(e);
    return 0;
}

/* contrib of an edge: a tombstoned edge leaves its child's subtree out. */
static uint64_t edge_contrib(const sprig_edge_t *e)
{
    return sprig_hash_contrib(e->down->id, e->tombstone ? 0 : e->down->sub, e->exor);
}

static int ready_push(sprig_tree_t *t, sprig_node_t *n)
{
    if (t->ready_len == t->ready_cap) {
        size_t cap = t->ready_cap != 0 ? t->ready_cap * 2 : 64;
        sprig_node_t **r = sprig_realloc(t->ready, cap * sizeof(*r));
        if (r == NULL) {
            return -ENOMEM;
        }
        t->ready = r;
        t->ready_cap = cap;
    }
    t->ready[t->ready_len++] = n;
    return 0;
}

/* Recomputes the hashes of every ancestor of `from` (whose own sub has changed), each
 * once and after all of its children in the set. A live cycle (which the core refuses)
 * would leave its nodes pending: they are skipped, never looped over. */
static int propagate(sprig_tree_t *t, sprig_node_t *from)
{
    if (t->deferred) {
        return 0;
    }
    unsigned mark = ++t->mark;
    t->work_len = 0;
    t->ready_len = 0;
    from->mark = mark;
    from->pending = 0;
    if (tree__work_push(t, from) != 0) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < t->work_len; i++) {
        for (sprig_edge_t *e = t->work[i]->parents; e != NULL; e = e->next_parent) {
            if (e->tombstone) {
                continue;
            }
            if (e->up->mark != mark) {
                e->up->mark = mark;
                e->up->pending = 0;
                if (tree__work_push(t, e->up) != 0) {
                    return -ENOMEM;
                }
            }
            e->up->pending++;
        }
    }
    if (ready_push(t, from) != 0) {
        return -ENOMEM;
    }
    while (t->ready_len > 0) {
        sprig_node_t *n = t->ready[--t->ready_len];
        for (sprig_edge_t *e = n->parents; e != NULL; e = e->next_parent) {
            if (e->tombstone) {
                continue;
            }
            if (jsave_node(t, e->up) != 0 || jsave_edge(t, e) != 0) {
                return -ENOMEM;
            }
            uint64_t c = edge_contrib(e);
            e->up->sub ^= e->contrib ^ c;
            e->contrib = c;
            if (--e->up->pending == 0 && ready_push(t, e->up) != 0) {
                return -ENOMEM;
            }
        }
    }
    return 0;
}

sprig_edge_t *sprig_tree_edge_add(sprig_tree_t *t, sprig_node_t *up, sprig_node_t *down)
{
    sprig_edge_t *e = sprig_tree_edge(t, up, down);
    if (e != NULL) {
        return e;
    }
    if (jsave_node(t, up) != 0 || jreserve(t, 1) != 0) {
        return NULL;
    }
    e = sprig_calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    jadd(t, &(jent_t){.kind = J_EDGE, .item = e});
    e->journaled = t->journaling;
    e->up = up;
    e->down = down;
    e->next_child = up->children;
    up->children = e;
    e->next_parent = down->parents;
    down->parents = e;
    if (!t->deferred) {
        e->contrib = edge_contrib(e);
        up->sub ^= e->contrib;
        /* Under a journal a failure is reported, so the caller rolls the change back;
         * without one the edge stays, as it always has. */
        if (propagate(t, up) != 0 && t->journaling) {
            return NULL;
        }
    }
    return e;
}

typedef struct pkey {
    const void *owner;
    const char *type, *key; /* interned */
} pkey_t;

static uint64_t pkey_hash(const pkey_t *k)
{
    return tree__hash_bytes(k, sizeof(*k));
}

static bool prec_eq(const void *item, const void *key)
{
    const prec_t *r = item;
    const pkey_t *k = key;
    return r->owner == k->owner && r->p.type == k->type && r->p.key == k->key;
}

/* Copies p's fields into r (interning strings); the old text is freed on success. */
static int prec_fill(sprig_tree_t *t, prec_t *r, const sprig_point_t *p)
{
    const char *origin = sprig_tree_intern(t, p->origin != NULL ? p->origin : "");
    const char *text = tree__empty_text;
    if (origin == NULL) {
        return -ENOMEM;
    }
    if (p->text != NULL && p->text[0] != '\0') {
        text = sprig_strdup(p->text);
        if (text == NULL) {
            return -ENOMEM;
        }
    }
    if (r->p.text != NULL && r->p.text != tree__empty_text) {
        sprig_free((char *)r->p.text);
    }
    r->p.time = p->time;
    r->p.value = p->value;
    r->p.tombstone = p->tombstone != 0;
    r->p.origin = origin;
    r->p.text = text;
    return 0;
}

/* Looks up the record of (owner, type, key): in the map for node points, in list for edge
 * points. Fills k with the interned key; *err is -ENOMEM when interning failed. */
static prec_t *prec_find(sprig_tree_t *t, const void *owner, bool in_map, prec_t *list,
                         const sprig_point_t *p, pkey_t *k, int *err)
{
    k->owner = owner;
    k->type = sprig_tree_intern(t, p->type);
    k->key = sprig_tree_intern(t, p->key != NULL ? p->key : "0");
    if (k->type == NULL || k->key == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    *err = 0;
    if (in_map) { /* node points */
        return tree__map_get(&t->points, pkey_hash(k), prec_eq, k);
    }
    for (prec_t *r = list; r != NULL; r = r->next) {
        if (prec_eq(r, k)) {
            return r;
        }
    }
    return NULL;
}

uint64_t tree__prec_hash(const prec_t *r)
{
    pkey_t k = {r->owner, r->p.type, r->p.key};
    return pkey_hash(&k);
}

static prec_t *prec_new(const pkey_t *k)
{
    prec_t *r = sprig_calloc(1, sizeof(*r));
    if (r != NULL) {
        r->owner = k->owner;
        r->p.type = k->type;
        r->p.key = k->key;
    }
    return r;
}

int sprig_tree_point_merge(sprig_tree_t *t, sprig_node_t *n, const sprig_point_t *p,
                           const sprig_point_t **held)
{
    pkey_t k;
    int rc;
    prec_t *r = prec_find(t, n, true, NULL, p, &k, &rc);
    if (rc != 0) {
        return rc;
    }
    bool fresh = r == NULL;
    if (!fresh && !sprig_merge_wins(&r->p, p)) {
        if (held != NULL) {
            *held = &r->p;
        }
        return 0;
    }
    if ((rc = jsave_node(t, n)) != 0 || (!fresh && (rc = jsave_point(t, r)) != 0)) {
        return rc;
    }
    if (fresh) {
        r = prec_new(&k);
        if (r == NULL) {
            return -ENOMEM;
        }
        /* prec_fill may intern (a journal step of its own): reserve after it. */
        if ((rc = prec_fill(t, r, p)) != 0 || (rc = jreserve(t, 1)) != 0 ||
            (rc = tree__map_add(&t->points, pkey_hash(&k), r)) != 0) {
            tree__free_points(r);
            return rc;
        }
        jadd(t, &(jent_t){.kind = J_NODE_POINT, .item = r, .where = n, .tail = n->points_tail});
        r->journaled = t->journaling;
        if (n->points_tail != NULL) {
            n->points_tail->next = r;
        }
        else {
            n->points = r;
        }
        n->points_tail = r;
        t->point_count++;
    }
    else if ((rc = prec_fill(t, r, p)) != 0) {
        return rc;
    }
    uint64_t old = r->local ? 0 : r->ph;
    r->local = t->local_fn != NULL && t->local_fn(n->type, r->p.type, t->local_arg);
    r->ph = sprig_hash_point(&r->p);
    uint64_t now = r->local ? 0 : r->ph;
    if (!t->deferred && old != now) {
        n->own ^= old ^ now;
        n->sub ^= old ^ now;
        if ((rc = propagate(t, n)) != 0) {
            return rc;
        }
    }
    if (held != NULL) {
        *held = &r->p;
    }
    return 1;
}

int sprig_tree_point_put(sprig_tree_t *t, sprig_node_t *n, const sprig_point_t *p)
{
    return sprig_tree_point_merge(t, n, p, NULL);
}

int sprig_tree_edge_point_merge(sprig_tree_t *t, sprig_edge_t *e, const sprig_point_t *p,
                                const sprig_point_t **held)
{
    pkey_t k;
    int rc;
    prec_t *r = prec_find(t, e, false, e->points, p, &k, &rc);
    if (rc != 0) {
        return rc;
    }
    if (r != NULL && !sprig_merge_wins(&r->p, p)) {
        if (held != NULL) {
            *held = &r->p;
        }
        return 0;
    }
    if ((rc = jsave_edge(t, e)) != 0 || (rc = jsave_node(t, e->up)) != 0 ||
        (r != NULL && (rc = jsave_point(t, r)) != 0)) {
        return rc;
    }
    if (r == NULL) {
        r = prec_new(&k);
        if (r == NULL) {
            return -ENOMEM;
        }
        if ((rc = prec_fill(t, r, p)) != 0 || (rc = jreserve(t, 1)) != 0) {
            tree__free_points(r);
            return rc;
        }
        jadd(t, &(jent_t){.kind = J_EDGE_POINT, .item = r, .where = e});
        r->journaled = t->journaling;
        r->next = e->points;
        e->points = r;
    }
    else if ((rc = prec_fill(t, r, p)) != 0) {
        return rc;
    }
    uint64_t old = r->ph;
    r->ph = sprig_hash_point(&r->p);
    if (strcmp(r->p.type, "tombstone") == 0 && strcmp(r->p.key, "0") == 0) {
        e->tombstone = r->p.tombstone == 0 && r->p.value != 0;
    }
    e->exor ^= old ^ r->ph;
    if (!t->deferred) {
        uint64_t c = edge_contrib(e);
        e->up->sub ^= e->contrib ^ c;
        e->contrib = c;
        if ((rc = propagate(t, e->up)) != 0) {
            return rc;
        }
    }
    if (held != NULL) {
        *held = &r->p;
    }
    return 1;
}

int sprig_tree_edge_point_put(sprig_tree_t *t, sprig_edge_t *e, const sprig_point_t *p)
{
    return sprig_tree_edge_point_merge(t, e, p, NULL);
}

/* The interned copy of s, or NULL when s was never interned (so no point uses it). */
static const char *intern_find(const sprig_tree_t *t, const char *s)
{
    return tree__map_get(&t->strings, tree__hash_bytes(s, strlen(s)), str_eq, s);
}

const sprig_point_t *sprig_tree_point(const sprig_tree_t *t, const sprig_node_t *n,
                                      const char *type, const char *key)
{
    pkey_t k = {n, intern_find(t, type), intern_find(t, key != NULL ? key : "0")};
    if (k.type == NULL || k.key == NULL) {
        return NULL;
    }
    const prec_t *r = tree__map_get(&t->points, pkey_hash(&k), prec_eq, &k);
    return r != NULL ? &r->p : NULL;
}

static const sprig_point_t *list_find(const prec_t *r, const char *type, const char *key)
{
    for (key = key != NULL ? key : "0"; r != NULL; r = r->next) {
        if (strcmp(r->p.type, type) == 0 && strcmp(r->p.key, key) == 0) {
            return &r->p;
        }
    }
    return NULL;
}

const sprig_point_t *sprig_node_point(const sprig_node_t *n, const char *type, const char *key)
{
    return list_find(n->points, type, key);
}

const sprig_point_t *sprig_edge_point(const sprig_edge_t *e, const char *type, const char *key)
{
    return list_find(e->points, type, key);
}

uint64_t sprig_tree_point_hash(const sprig_point_t *p)
{
    return ((const prec_t *)p)->ph;
}

bool sprig_tree_point_local(const sprig_point_t *p)
{
    return ((const prec_t *)p)->local;
}

const char *sprig_node_id(const sprig_node_t *n)
{
    return n->id;
}

const char *sprig_node_type(const sprig_node_t *n)
{
    return n->type;
}

uint64_t sprig_node_own_hash(const sprig_node_t *n)
{
    return n->own;
}

uint64_t sprig_node_hash(const sprig_node_t *n)
{
    return n->sub;
}

const sprig_point_t *sprig_node_points(const sprig_node_t *n)
{
    return n->points != NULL ? &n->points->p : NULL;
}

const sprig_point_t *sprig_point_next(const sprig_point_t *p)
{
    const prec_t *r = ((const prec_t *)p)->next;
    return r != NULL ? &r->p : NULL;
}

sprig_edge_t *sprig_node_children(const sprig_node_t *n)
{
    return n->children;
}

sprig_edge_t *sprig_node_parents(const sprig_node_t *n)
{
    return n->parents;
}

sprig_node_t *sprig_edge_up(const sprig_edge_t *e)
{
    return e->up;
}

sprig_node_t *sprig_edge_down(const sprig_edge_t *e)
{
    return e->down;
}

bool sprig_edge_tombstone(const sprig_edge_t *e)
{
    return e->tombstone;
}

uint64_t sprig_edge_contrib(const sprig_edge_t *e)
{
    return e->contrib;
}

const sprig_point_t *sprig_edge_points(const sprig_edge_t *e)
{
    return e->points != NULL ? &e->points->p : NULL;
}

sprig_edge_t *sprig_edge_next_child(const sprig_edge_t *e)
{
    return e->next_child;
}

sprig_edge_t *sprig_edge_next_parent(const sprig_edge_t *e)
{
    return e->next_parent;
}
