/* Unit tests of the in-memory tree (tree.h): nodes, edges and their walks, cycle detection,
 * the merge rule of point_put, and the incremental Merkle hashes of DESIGN.md section 4,
 * checked against from-scratch recomputation after long random sequences of changes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/hash.h"
#include "sprig/merge.h"
#include "sprig/tree.h"
#include "testutil.h"

static sprig_point_t pt(const char *type, const char *key, int64_t time, double value,
                        const char *text, const char *origin, int tombstone)
{
    sprig_point_t p = {type, key, time, value, text, origin, tombstone};
    return p;
}

static sprig_point_t simple(const char *type, int64_t time, double value)
{
    return pt(type, "0", time, value, "", "", 0);
}

static sprig_point_t edge_tomb(int64_t time, double value)
{
    return pt("tombstone", "0", time, value, "", "", 0);
}

static sprig_tree_t *open_tree(void)
{
    sprig_tree_t *t = NULL;
    assert_int_equal(sprig_tree_open(&t), 0);
    assert_non_null(t);
    return t;
}

static sprig_node_t *add(sprig_tree_t *t, const char *id, const char *type)
{
    sprig_node_t *n = NULL;
    assert_int_equal(sprig_tree_node_add(t, id, type, &n), 0);
    assert_non_null(n);
    return n;
}

static sprig_edge_t *edge_link(sprig_tree_t *t, sprig_node_t *up, sprig_node_t *down)
{
    sprig_edge_t *e = sprig_tree_edge_add(t, up, down);
    assert_non_null(e);
    return e;
}

/* --- nodes, edges, walks ------------------------------------------------------------ */

static void t_node_add_lookup(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    assert_null(sprig_tree_root(t));
    assert_true(sprig_tree_root_hash(t) == 0);
    sprig_node_t *a = add(t, "pump-1", "modbusIo");
    assert_ptr_equal(sprig_tree_node(t, "pump-1"), a);
    assert_string_equal(sprig_node_id(a), "pump-1");
    assert_string_equal(sprig_node_type(a), "modbusIo");
    assert_null(sprig_tree_node(t, "pump-2"));
    assert_null(sprig_tree_node(t, "pump-"));
    assert_int_equal(sprig_tree_node_count(t), 1);

    sprig_node_t *again = NULL;
    assert_int_equal(sprig_tree_node_add(t, "pump-1", "other", &again), -EEXIST);
    assert_ptr_equal(again, a);
    assert_string_equal(sprig_node_type(a), "modbusIo");
    assert_int_equal(sprig_tree_node_count(t), 1);
    assert_int_equal(sprig_tree_node_add(t, "pump-1", "other", NULL), -EEXIST);

    sprig_node_t *b = add(t, "pump-2", "modbusIo");
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(sprig_node_type(a), sprig_node_type(b)); /* interned */
    assert_int_equal(sprig_tree_node_count(t), 2);
    sprig_tree_set_root(t, a);
    assert_ptr_equal(sprig_tree_root(t), a);
    assert_null(sprig_node_points(a));
    assert_null(sprig_node_children(a));
    assert_null(sprig_node_parents(a));
    sprig_tree_close(t);
    sprig_tree_close(NULL);
}

static void t_intern(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    char buf[16];
    snprintf(buf, sizeof(buf), "%s", "value");
    const char *a = sprig_tree_intern(t, "value");
    const char *b = sprig_tree_intern(t, buf);
    const char *c = sprig_tree_intern(t, "valu");
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, buf);
    assert_ptr_not_equal(a, c);
    assert_string_equal(c, "valu");
    sprig_tree_close(t);
}

typedef struct order {
    const char *ids[8];
    int n;
} order_t;

static int collect(sprig_node_t *n, void *arg)
{
    order_t *o = arg;
    o->ids[o->n++] = sprig_node_id(n);
    return o->n == 3 ? 77 : 0;
}

/* True when the list of child (or parent) edges holds exactly the nodes in want. */
static bool edge_set(sprig_edge_t *e, bool children, sprig_node_t *const *want, int n)
{
    int seen = 0;
    for (int guard = 0; e != NULL && guard < 100; guard++) {
        sprig_node_t *other = children ? sprig_edge_down(e) : sprig_edge_up(e);
        bool found = false;
        for (int i = 0; i < n; i++) {
            found = found || want[i] == other;
        }
        if (!found) {
            return false;
        }
        seen++;
        e = children ? sprig_edge_next_child(e) : sprig_edge_next_parent(e);
    }
    return seen == n;
}

static void t_edges_walk(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    sprig_node_t *r = add(t, "root", "device");
    sprig_node_t *a = add(t, "a", "group");
    sprig_node_t *b = add(t, "b", "group");
    sprig_node_t *c = add(t, "c", "sensor");
    sprig_node_t *x = add(t, "x", "sensor");
    sprig_tree_set_root(t, r);
    assert_null(sprig_tree_edge(t, r, a));
    sprig_edge_t *ra = edge_link(t, r, a);
    edge_link(t, r, b);
    sprig_edge_t *ac = edge_link(t, a, c);
    sprig_edge_t *bc = edge_link(t, b, c); /* c is mirrored under a and b */
    assert_ptr_equal(sprig_tree_edge_add(t, r, a), ra);
    assert_ptr_equal(sprig_tree_edge(t, r, a), ra);
    assert_null(sprig_tree_edge(t, a, r));
    assert_null(sprig_tree_edge(t, r, c));
    assert_ptr_equal(sprig_edge_up(ac), a);
    assert_ptr_equal(sprig_edge_down(ac), c);
    assert_false(sprig_edge_tombstone(ra));
    assert_null(sprig_edge_points(ra));

    sprig_node_t *rk[] = {a, b};
    assert_true(edge_set(sprig_node_children(r), true, rk, 2));
    sprig_node_t *cp[] = {a, b};
    assert_true(edge_set(sprig_node_parents(c), false, cp, 2));
    sprig_node_t *ak[] = {c};
    assert_true(edge_set(sprig_node_children(a), true, ak, 1));
    sprig_node_t *ap[] = {r};
    assert_true(edge_set(sprig_node_parents(a), false, ap, 1));
    assert_null(sprig_node_parents(r));
    assert_null(sprig_node_children(c));
    assert_null(sprig_node_parents(x));

    /* A tombstoned edge is still listed, marked. */
    assert_int_equal(
        sprig_tree_edge_point_put(t, bc, &(sprig_point_t){"tombstone", "0", 5, 1, "", "", 0}), 1);
    assert_true(sprig_edge_tombstone(bc));
    assert_true(edge_set(sprig_node_parents(c), false, cp, 2));

    order_t o = {.n = 0};
    assert_int_equal(sprig_tree_each_node(t, collect, &o), 77);
    assert_int_equal(o.n, 3);
    assert_string_equal(o.ids[0], "root");
    assert_string_equal(o.ids[1], "a");
    assert_string_equal(o.ids[2], "b");
    sprig_tree_close(t);
}

static void t_would_cycle(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    sprig_node_t *r = add(t, "r", "device");
    sprig_node_t *a = add(t, "a", "group");
    sprig_node_t *b = add(t, "b", "group");
    sprig_node_t *m = add(t, "m", "group");
    sprig_node_t *x = add(t, "x", "group");
    edge_link(t, r, a);
    sprig_edge_t *ab = edge_link(t, a, b);
    edge_link(t, r, m);
    sprig_edge_t *mb = edge_link(t, m, b); /* b under a and under m */

    assert_true(sprig_tree_would_cycle(t, a, a));
    assert_true(sprig_tree_would_cycle(t, x, x));
    assert_true(sprig_tree_would_cycle(t, b, a)); /* a is b's parent */
    assert_true(sprig_tree_would_cycle(t, b, r)); /* r is b's grandparent */
    assert_true(sprig_tree_would_cycle(t, b, m)); /* through the mirror */
    assert_true(sprig_tree_would_cycle(t, a, r));
    assert_false(sprig_tree_would_cycle(t, r, b)); /* a shortcut is no cycle */
    assert_false(sprig_tree_would_cycle(t, a, m)); /* a sibling */
    assert_false(sprig_tree_would_cycle(t, b, x)); /* unrelated */
    assert_false(sprig_tree_would_cycle(t, x, r));

    /* Tombstoned edges do not count: b's only live parent is then m. */
    assert_int_equal(
        sprig_tree_edge_point_put(t, ab, &(sprig_point_t){"tombstone", "0", 10, 1, "", "", 0}), 1);
    assert_false(sprig_tree_would_cycle(t, b, a));
    assert_true(sprig_tree_would_cycle(t, b, m));
    assert_true(sprig_tree_would_cycle(t, b, r));
    assert_int_equal(
        sprig_tree_edge_point_put(t, mb, &(sprig_point_t){"tombstone", "0", 11, 1, "", "", 0}), 1);
    assert_false(sprig_tree_would_cycle(t, b, a));
    assert_false(sprig_tree_would_cycle(t, b, m));
    assert_false(sprig_tree_would_cycle(t, b, r));
    /* Restored: the cycle is back. */
    assert_int_equal(
        sprig_tree_edge_point_put(t, ab, &(sprig_point_t){"tombstone", "0", 12, 0, "", "", 0}), 1);
    assert_true(sprig_tree_would_cycle(t, b, r));
    sprig_tree_close(t);
}

/* A damaged store's cycle: found as a path of edges, removed (only while hashes are
 * deferred), after which the hashes build. */
static void t_find_cycle_and_remove(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    sprig_tree_hash_defer(t);
    sprig_node_t *r = add(t, "r", "device");
    sprig_node_t *a = add(t, "a", "group");
    sprig_node_t *b = add(t, "b", "group");
    sprig_node_t *c = add(t, "c", "group");
    edge_link(t, r, a);
    edge_link(t, a, b);
    sprig_edge_t *bc = edge_link(t, b, c);
    sprig_edge_t *ca = edge_link(t, c, a);
    assert_int_equal(
        sprig_tree_edge_point_put(t, bc, &(sprig_point_t){"tombstone", "0", 5, 0, "", "", 0}), 1);
    sprig_edge_t **cyc;
    size_t n;
    assert_int_equal(sprig_tree_find_cycle(t, &cyc, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) { /* a path: each edge's down is the next one's up */
        assert_ptr_equal(sprig_edge_down(cyc[i]), sprig_edge_up(cyc[(i + 1) % n]));
    }
    sprig_free(cyc);
    assert_int_equal(sprig_tree_hash_rebuild(t), SPRIG_ECYCLE);
    /* With hashes live, an edge cannot be removed. */
    assert_int_equal(sprig_tree_edge_remove(t, ca), -EBUSY);
    sprig_tree_hash_defer(t);
    assert_int_equal(sprig_tree_edge_remove(t, bc), 0); /* not the head of b's children */
    assert_null(sprig_tree_edge(t, b, c));
    assert_non_null(sprig_tree_edge(t, c, a));
    assert_int_equal(sprig_tree_find_cycle(t, &cyc, &n), 0);
    assert_int_equal(n, 0);
    assert_null(cyc);
    assert_int_equal(sprig_tree_hash_rebuild(t), 0);
    /* A tombstoned edge to itself is no cycle; a live one is. */
    sprig_edge_t *rr = edge_link(t, r, r);
    assert_int_equal(
        sprig_tree_edge_point_put(t, rr, &(sprig_point_t){"tombstone", "0", 6, 1, "", "", 0}), 1);
    assert_int_equal(sprig_tree_find_cycle(t, &cyc, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(
        sprig_tree_edge_point_put(t, rr, &(sprig_point_t){"tombstone", "0", 7, 0, "", "", 0}), 1);
    assert_int_equal(sprig_tree_find_cycle(t, &cyc, &n), 0);
    assert_int_equal(n, 1);
    assert_ptr_equal(cyc[0], rr);
    sprig_free(cyc);
    sprig_tree_close(t);
}

/* --- points and the merge rule ------------------------------------------------------ */

static void t_point_put_merge(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    sprig_node_t *n = add(t, "n", "sensor");
    sprig_tree_set_root(t, n);
    char text[16];
    snprintf(text, sizeof(text), "hello");
    sprig_point_t p = pt("value", "0", 100, 1.5, text, "", 0);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    snprintf(text, sizeof(text), "HELLO"); /* the tree holds its own copy */
    const sprig_point_t *held = sprig_tree_point(t, n, "value", NULL);
    assert_non_null(held);
    assert_ptr_equal(held, sprig_tree_point(t, n, "value", "0"));
    assert_ptr_equal(held, sprig_node_point(n, "value", NULL));
    assert_ptr_equal(held, sprig_node_points(n));
    assert_string_equal(held->text, "hello");
    assert_string_equal(held->key, "0");
    assert_true(held->time == 100);
    assert_true(held->value == 1.5);
    assert_int_equal(sprig_tree_point_count(t), 1);
    assert_true(sprig_tree_point_hash(held) == sprig_hash_point(held));
    uint64_t h1 = sprig_tree_root_hash(t);
    assert_true(h1 != 0);

    /* An equal point is a duplicate; an older one loses. Neither changes anything. */
    p = pt("value", "0", 100, 1.5, "hello", "", 0);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 0);
    p = pt("value", "0", 99, 7, "newer?", "", 0);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 0);
    assert_true(held->value == 1.5);
    assert_true(sprig_tree_root_hash(t) == h1);

    /* Later time wins; at equal time origin, then tombstone, value bits, text decide. */
    p = pt("value", "0", 101, 2, "", "", 0);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    assert_true(held->value == 2);
    assert_string_equal(held->text, "");
    p = pt("value", "0", 101, 1, "", "drv-1", 0);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    assert_string_equal(held->origin, "drv-1");
    p = pt("value", "0", 101, 1, "", "drv-0", 0); /* smaller origin loses */
    assert_int_equal(sprig_tree_point_put(t, n, &p), 0);
    p = pt("value", "0", 101, 1, "", "drv-1", 1);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    assert_int_equal(held->tombstone, 1);
    p = pt("value", "0", 101, 3, "", "drv-1", 1);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    assert_true(held->value == 3);
    p = pt("value", "0", 101, 3, "b", "drv-1", 1);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    p = pt("value", "0", 101, 3, "a", "drv-1", 1);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 0);
    assert_string_equal(held->text, "b");
    assert_int_equal(sprig_tree_point_count(t), 1);

    /* Another key, another point; listed in the order first stored. */
    p = pt("value", "1", 5, 9, "", "", 0);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    p = pt("name", "0", 5, 0, "pump", "", 0);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    assert_int_equal(sprig_tree_point_count(t), 3);
    const sprig_point_t *q = sprig_node_points(n);
    assert_string_equal(q->key, "0");
    q = sprig_point_next(q);
    assert_string_equal(q->key, "1");
    q = sprig_point_next(q);
    assert_string_equal(q->type, "name");
    assert_null(sprig_point_next(q));
    assert_null(sprig_tree_point(t, n, "value", "2"));
    assert_null(sprig_tree_point(t, n, "nosuch", NULL));
    assert_null(sprig_node_point(n, "nosuch", NULL));
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);
    sprig_tree_close(t);
}

/* The device a node's rows belong to: the device root above it (a node of type device
 * with a parent), followed through a deleted edge too; none for the instance's own. */
static void t_node_device(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    sprig_node_t *root = add(t, "root", "device");
    sprig_node_t *own = add(t, "own", "group");
    sprig_node_t *gw = add(t, "gw", "device");
    sprig_node_t *a = add(t, "a", "group");
    sprig_node_t *b = add(t, "b", "sensor");
    sprig_tree_set_root(t, root);
    edge_link(t, root, own);
    edge_link(t, root, gw);
    edge_link(t, gw, a);
    sprig_edge_t *ab = edge_link(t, a, b);
    assert_null(sprig_node_device(t, root));
    assert_null(sprig_node_device(t, own));
    assert_ptr_equal(sprig_node_device(t, gw), gw);
    assert_ptr_equal(sprig_node_device(t, a), gw);
    assert_ptr_equal(sprig_node_device(t, b), gw);
    sprig_point_t tomb = edge_tomb(10, 1);
    assert_int_equal(sprig_tree_edge_point_put(t, ab, &tomb), 1);
    assert_false(sprig_node_live(t, b));
    assert_ptr_equal(sprig_node_device(t, b), gw); /* deleted, still gw's */
    sprig_node_t *lone = add(t, "lone", "device"); /* no parent: a root of its own */
    assert_null(sprig_node_device(t, lone));
    sprig_tree_close(t);
}

static void t_edge_points(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    sprig_node_t *r = add(t, "r", "device");
    sprig_node_t *a = add(t, "a", "group");
    sprig_tree_set_root(t, r);
    sprig_edge_t *e = edge_link(t, r, a);
    sprig_point_t p = edge_tomb(10, 1);
    assert_int_equal(sprig_tree_edge_point_put(t, e, &p), 1);
    assert_true(sprig_edge_tombstone(e));
    p = edge_tomb(9, 0); /* older: loses, still deleted */
    assert_int_equal(sprig_tree_edge_point_put(t, e, &p), 0);
    assert_true(sprig_edge_tombstone(e));
    p = edge_tomb(10, 1); /* duplicate */
    assert_int_equal(sprig_tree_edge_point_put(t, e, &p), 0);
    p = edge_tomb(11, 0);
    assert_int_equal(sprig_tree_edge_point_put(t, e, &p), 1);
    assert_false(sprig_edge_tombstone(e));
    /* A tombstone point whose own tombstone is set no longer deletes the edge. */
    p = pt("tombstone", "0", 12, 1, "", "", 1);
    assert_int_equal(sprig_tree_edge_point_put(t, e, &p), 1);
    assert_false(sprig_edge_tombstone(e));
    /* Only key "0" of type tombstone decides. */
    p = pt("tombstone", "1", 13, 1, "", "", 0);
    assert_int_equal(sprig_tree_edge_point_put(t, e, &p), 1);
    assert_false(sprig_edge_tombstone(e));
    p = pt("order", "0", 13, 4, "", "", 0);
    assert_int_equal(sprig_tree_edge_point_put(t, e, &p), 1);
    assert_false(sprig_edge_tombstone(e));
    const sprig_point_t *o = sprig_edge_point(e, "order", NULL);
    assert_non_null(o);
    assert_true(o->value == 4);
    assert_null(sprig_edge_point(e, "order", "1"));
    /* Edge points are not node points. */
    assert_int_equal(sprig_tree_point_count(t), 0);
    assert_null(sprig_tree_point(t, a, "order", NULL));
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);
    sprig_tree_close(t);
}

/* --- hashes ------------------------------------------------------------------------- */

static bool is_local(const char *node_type, const char *point_type, void *arg)
{
    (void)node_type;
    (void)arg;
    return strcmp(point_type, "lastSync") == 0;
}

static void t_hash_basics(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    sprig_node_t *r = add(t, "r", "device");
    sprig_tree_set_root(t, r);
    assert_true(sprig_tree_root_hash(t) == 0);
    sprig_point_t p = simple("value", 1, 1);
    assert_int_equal(sprig_tree_point_put(t, r, &p), 1);
    uint64_t ph = sprig_hash_point(&p);
    assert_true(sprig_node_own_hash(r) == ph);
    assert_true(sprig_tree_root_hash(t) == ph);

    /* Two children with identical points do not cancel: the child id is in contrib. */
    sprig_node_t *a = add(t, "a", "x");
    sprig_node_t *b = add(t, "b", "x");
    sprig_edge_t *ra = edge_link(t, r, a);
    sprig_edge_t *rb = edge_link(t, r, b);
    p = simple("v", 5, 5);
    assert_int_equal(sprig_tree_point_put(t, a, &p), 1);
    assert_int_equal(sprig_tree_point_put(t, b, &p), 1);
    assert_true(sprig_node_hash(a) == sprig_node_hash(b));
    assert_true(sprig_edge_contrib(ra) != sprig_edge_contrib(rb));
    assert_true(sprig_edge_contrib(ra) == sprig_hash_contrib("a", sprig_node_hash(a), 0));
    assert_true(sprig_tree_root_hash(t) == (ph ^ sprig_hash_contrib("a", sprig_node_hash(a), 0) ^
                                            sprig_hash_contrib("b", sprig_node_hash(b), 0)));
    assert_true(sprig_tree_root_hash(t) != ph);

    /* An edge point enters contrib through the XOR of the edge's points. */
    sprig_point_t ep = edge_tomb(7, 0);
    assert_int_equal(sprig_tree_edge_point_put(t, ra, &ep), 1);
    assert_true(sprig_edge_contrib(ra) ==
                sprig_hash_contrib("a", sprig_node_hash(a), sprig_hash_point(&ep)));
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);
    sprig_tree_close(t);
}

static void t_hash_mirror_propagates(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    sprig_node_t *r = add(t, "r", "device");
    sprig_node_t *a = add(t, "a", "group");
    sprig_node_t *b = add(t, "b", "group");
    sprig_node_t *n = add(t, "n", "sensor");
    sprig_tree_set_root(t, r);
    edge_link(t, r, a);
    edge_link(t, r, b);
    sprig_edge_t *an = edge_link(t, a, n);
    sprig_edge_t *bn = edge_link(t, b, n);
    uint64_t ha = sprig_node_hash(a), hb = sprig_node_hash(b), hr = sprig_tree_root_hash(t);
    uint64_t ca = sprig_edge_contrib(an), cb = sprig_edge_contrib(bn);
    sprig_point_t p = simple("value", 1, 42);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    assert_true(sprig_node_hash(a) != ha);
    assert_true(sprig_node_hash(b) != hb);
    assert_true(sprig_edge_contrib(an) != ca);
    assert_true(sprig_edge_contrib(bn) != cb);
    assert_true(sprig_tree_root_hash(t) != hr);
    /* Both paths carry the same child: a and b hash alike, and the check agrees. */
    assert_true(sprig_node_hash(a) == sprig_node_hash(b));
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);

    /* Deleting n from b changes b and the root, not a. */
    ha = sprig_node_hash(a);
    hb = sprig_node_hash(b);
    sprig_point_t d = edge_tomb(2, 1);
    assert_int_equal(sprig_tree_edge_point_put(t, bn, &d), 1);
    assert_true(sprig_node_hash(a) == ha);
    assert_true(sprig_node_hash(b) != hb);
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);
    sprig_tree_close(t);
}

static void t_hash_local_point(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    sprig_tree_set_local_fn(t, is_local, NULL);
    sprig_node_t *r = add(t, "r", "device");
    sprig_node_t *s = add(t, "sync-1", "sync");
    sprig_tree_set_root(t, r);
    edge_link(t, r, s);
    sprig_point_t p = simple("value", 1, 1);
    assert_int_equal(sprig_tree_point_put(t, s, &p), 1);
    uint64_t hr = sprig_tree_root_hash(t), own = sprig_node_own_hash(s);
    p = pt("lastSync", "0", 2, 123, "ok", "", 0);
    assert_int_equal(sprig_tree_point_put(t, s, &p), 1);
    assert_non_null(sprig_tree_point(t, s, "lastSync", NULL)); /* stored all the same */
    assert_int_equal(sprig_tree_point_count(t), 2);
    assert_true(sprig_tree_root_hash(t) == hr);
    assert_true(sprig_node_own_hash(s) == own);
    p = pt("lastSync", "0", 3, 124, "later", "", 0);
    assert_int_equal(sprig_tree_point_put(t, s, &p), 1);
    assert_true(sprig_tree_root_hash(t) == hr);
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);
    /* A rebuild agrees that it is not hashed. */
    assert_int_equal(sprig_tree_hash_rebuild(t), 0);
    assert_true(sprig_tree_root_hash(t) == hr);
    /* A hashed point does move the hash. */
    p = simple("value", 4, 2);
    assert_int_equal(sprig_tree_point_put(t, s, &p), 1);
    assert_true(sprig_tree_root_hash(t) != hr);
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);
    sprig_tree_close(t);
}

typedef struct reports {
    int n;
    bool saw_n, saw_root;
} reports_t;

static void on_report(const sprig_node_t *n, uint64_t kept, uint64_t fresh, void *arg)
{
    reports_t *r = arg;
    r->n++;
    r->saw_n = r->saw_n || strcmp(sprig_node_id(n), "n") == 0;
    r->saw_root = r->saw_root || strcmp(sprig_node_id(n), "r") == 0;
    (void)kept;
    (void)fresh;
}

static void t_hash_check_stale(void **state)
{
    (void)state;
    sprig_tree_t *t = open_tree();
    sprig_node_t *r = add(t, "r", "device");
    sprig_node_t *a = add(t, "a", "group");
    sprig_node_t *n = add(t, "n", "sensor");
    sprig_node_t *other = add(t, "other", "sensor");
    sprig_tree_set_root(t, r);
    edge_link(t, r, a);
    edge_link(t, a, n);
    edge_link(t, r, other);
    sprig_point_t p = simple("value", 1, 1);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    reports_t rep = {0};
    assert_int_equal(sprig_tree_hash_check(t, on_report, &rep), 0);
    assert_int_equal(rep.n, 0);
    uint64_t before = sprig_tree_root_hash(t);

    /* Deferred: a put changes points but not the kept hashes, so they are stale. */
    sprig_tree_hash_defer(t);
    p = simple("value", 2, 2);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    assert_true(sprig_tree_root_hash(t) == before);
    long bad = sprig_tree_hash_check(t, on_report, &rep);
    assert_int_equal(bad, 3); /* n, a and r; not other */
    assert_int_equal(rep.n, 3);
    assert_true(rep.saw_n);
    assert_true(rep.saw_root);
    assert_true(sprig_tree_root_hash(t) == before); /* check changes nothing */

    assert_int_equal(sprig_tree_hash_rebuild(t), 0);
    assert_true(sprig_tree_root_hash(t) != before);
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);
    /* And incremental again after the rebuild. */
    p = simple("value", 3, 3);
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);
    sprig_tree_close(t);
}

/* A chain far deeper than any stack-recursive walk could take. */
static void t_deep_chain(void **state)
{
    (void)state;
    enum { DEPTH = 20000 };
    sprig_tree_t *t = open_tree();
    sprig_tree_hash_defer(t);
    sprig_node_t *prev = NULL, *first = NULL;
    for (int i = 0; i < DEPTH; i++) {
        char id[16];
        snprintf(id, sizeof(id), "d%d", i);
        sprig_node_t *n = add(t, id, "x");
        if (prev != NULL) {
            edge_link(t, prev, n);
        }
        else {
            first = n;
        }
        prev = n;
    }
    sprig_tree_set_root(t, first);
    assert_int_equal(sprig_tree_hash_rebuild(t), 0);
    uint64_t h = sprig_tree_root_hash(t);
    sprig_point_t p = simple("value", 1, 1);
    assert_int_equal(sprig_tree_point_put(t, prev, &p), 1);
    assert_true(sprig_tree_root_hash(t) != h);
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);
    sprig_tree_close(t);
}

/* --- random sequences --------------------------------------------------------------- */

/* The model code also runs in forked children (tu_child), where cmocka's asserts must not
 * be used: MUST fails the test in this process and exits with status 3 in a child. */
static bool in_child;

#define MUST(x)                                                                                    \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            if (in_child) {                                                                        \
                fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);              \
                _exit(3);                                                                          \
            }                                                                                      \
            fail_msg("%s:%d: check failed: %s", __FILE__, __LINE__, #x);                           \
        }                                                                                          \
    } while (0)

#define MAXN 1024

typedef struct model {
    sprig_tree_t *t;
    sprig_node_t *nodes[MAXN];
    size_t n;
    int64_t clock;
    uint64_t rng;
    bool acyclic; /* refuse cycles through tombstoned edges too */
    long ops[8];
    long step;
} model_t;

static uint64_t rnd(model_t *m)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return m->rng;
}

static size_t pick(model_t *m, size_t n)
{
    return (size_t)(rnd(m) % n);
}

static size_t node_index(const sprig_node_t *n)
{
    return (size_t)strtoul(sprig_node_id(n) + 1, NULL, 10); /* ids are "n<index>" */
}

static bool live(model_t *m, sprig_node_t *n)
{
    if (n == m->nodes[0]) {
        return true;
    }
    for (sprig_edge_t *e = sprig_node_parents(n); e != NULL; e = sprig_edge_next_parent(e)) {
        if (!sprig_edge_tombstone(e)) {
            return true;
        }
    }
    return false;
}

/* A random live parent edge of n, or NULL. */
static sprig_edge_t *live_parent(model_t *m, sprig_node_t *n)
{
    sprig_edge_t *found[MAXN];
    size_t k = 0;
    for (sprig_edge_t *e = sprig_node_parents(n); e != NULL && k < MAXN;
         e = sprig_edge_next_parent(e)) {
        if (!sprig_edge_tombstone(e)) {
            found[k++] = e;
        }
    }
    return k != 0 ? found[pick(m, k)] : NULL;
}

/* Whether target is from or below it through any edge, tombstoned or not. */
static bool reaches_any(model_t *m, sprig_node_t *from, sprig_node_t *target)
{
    static sprig_node_t *stack[MAXN * 4];
    static bool seen[MAXN];
    size_t len = 0;
    memset(seen, 0, sizeof(seen));
    stack[len++] = from;
    seen[node_index(from)] = true;
    while (len > 0) {
        sprig_node_t *n = stack[--len];
        if (n == target) {
            return true;
        }
        for (sprig_edge_t *e = sprig_node_children(n); e != NULL; e = sprig_edge_next_child(e)) {
            size_t i = node_index(sprig_edge_down(e));
            if (!seen[i] && len < MAXN * 4) {
                seen[i] = true;
                stack[len++] = sprig_edge_down(e);
            }
        }
    }
    (void)m;
    return false;
}

/* Number of paths from n up to the root through live parent edges, capped. The model
 * keeps it small so that the reference recomputation stays cheap; t_mirror_ladder checks
 * that propagation itself does not depend on it. */
static unsigned long paths_up(model_t *m, sprig_node_t *n, unsigned long *memo, int depth)
{
    size_t i = node_index(n);
    MUST(depth < MAXN);
    if (memo[i] != 0) {
        return memo[i];
    }
    unsigned long p = sprig_node_parents(n) == NULL ? 1 : 0;
    for (sprig_edge_t *e = sprig_node_parents(n); e != NULL && p < 1000000;
         e = sprig_edge_next_parent(e)) {
        if (!sprig_edge_tombstone(e)) { /* hashes follow live edges only */
            p += paths_up(m, sprig_edge_up(e), memo, depth + 1);
        }
    }
    memo[i] = p;
    return p;
}

static unsigned long paths_of(model_t *m, sprig_node_t *n)
{
    static unsigned long memo[MAXN];
    memset(memo, 0, sizeof(memo));
    return paths_up(m, n, memo, 0);
}

static void set_edge(model_t *m, sprig_edge_t *e, double dead)
{
    sprig_point_t p = edge_tomb(++m->clock, dead);
    MUST(sprig_tree_edge_point_put(m->t, e, &p) == 1);
    MUST(sprig_edge_tombstone(e) == (dead != 0));
}

/* A node different from avoid that may become a live parent of n: the core's rule
 * (sprig_tree_would_cycle), and in acyclic mode no cycle through dead edges either. */
static sprig_node_t *pick_new_parent(model_t *m, sprig_node_t *n, sprig_node_t *avoid)
{
    for (int tries = 0; tries < 20; tries++) {
        sprig_node_t *up = m->nodes[pick(m, m->n)];
        sprig_edge_t *e = sprig_tree_edge(m->t, up, n);
        if (up == avoid || (e != NULL && !sprig_edge_tombstone(e)) || paths_of(m, up) > 2) {
            continue;
        }
        bool cyc = sprig_tree_would_cycle(m->t, up, n);
        MUST(!cyc || reaches_any(m, n, up)); /* would_cycle only says so for real cycles */
        bool dead_cycle = !cyc && reaches_any(m, n, up);
        if (!cyc && !(m->acyclic && dead_cycle)) {
            return up;
        }
    }
    return NULL;
}

static sprig_edge_t *model_link(model_t *m, sprig_node_t *up, sprig_node_t *down)
{
    sprig_edge_t *e = sprig_tree_edge_add(m->t, up, down);
    MUST(e != NULL);
    return e;
}

static bool op_add(model_t *m)
{
    if (m->n == MAXN) {
        return false;
    }
    sprig_node_t *up = m->nodes[0];
    for (int tries = 0; tries < 10; tries++) {
        sprig_node_t *c = m->nodes[pick(m, m->n)];
        if (live(m, c) && paths_of(m, c) <= 2) {
            up = c;
            break;
        }
    }
    static const char *const types[] = {"group", "sensor", "modbusIo"};
    char id[16];
    snprintf(id, sizeof(id), "n%zu", m->n);
    sprig_node_t *n = NULL;
    MUST(sprig_tree_node_add(m->t, id, types[pick(m, 3)], &n) == 0);
    m->nodes[m->n++] = n;
    sprig_edge_t *e = model_link(m, up, n);
    if (rnd(m) % 2 == 0) {
        set_edge(m, e, 0);
    }
    return true;
}

static bool op_delete(model_t *m)
{
    sprig_node_t *n = m->nodes[1 + pick(m, m->n - 1)];
    sprig_edge_t *e = live_parent(m, n);
    if (e != NULL) {
        set_edge(m, e, 1);
    }
    return e != NULL;
}

static bool op_move(model_t *m)
{
    sprig_node_t *n = m->nodes[1 + pick(m, m->n - 1)];
    sprig_edge_t *from = live_parent(m, n);
    if (from == NULL) {
        return false;
    }
    sprig_node_t *to = pick_new_parent(m, n, sprig_edge_up(from));
    if (to == NULL) {
        return false;
    }
    set_edge(m, model_link(m, to, n), 0);
    set_edge(m, from, 1);
    return true;
}

/* A further live parent: a new one (mirror) or a tombstoned one (restore). */
static bool op_mirror(model_t *m)
{
    sprig_node_t *n = m->nodes[1 + pick(m, m->n - 1)];
    if (sprig_node_children(n) != NULL) {
        return false; /* mirrors of leaves only, so paths to the root stay few */
    }
    sprig_node_t *to = pick_new_parent(m, n, NULL);
    if (to != NULL) {
        set_edge(m, model_link(m, to, n), 0);
    }
    return true;
}

static bool op_node_point(model_t *m)
{
    static const char *const types[] = {"value", "text", "cfg", "lastSync"};
    static const char *const keys[] = {"0", "1", "max"};
    static const char *const origins[] = {"", "drv-1", "rule:2"};
    static char long_text[700];
    if (long_text[0] == '\0') {
        memset(long_text, 'L', sizeof(long_text) - 1); /* hashed by the streaming path */
    }
    const char *texts[] = {"", "a", "b", "h\xc3\xa9llo", long_text};
    sprig_node_t *n = m->nodes[pick(m, m->n)];
    const char *type = types[pick(m, 4)];
    const char *key = keys[pick(m, 3)];
    const sprig_point_t *old = sprig_tree_point(m->t, n, type, key);
    sprig_point_t p;
    uint64_t how = rnd(m) % 10;
    if (old != NULL && how == 0) {
        p = *old; /* an exact duplicate */
    }
    else {
        int64_t time = how <= 2 ? m->clock - (int64_t)pick(m, 20) : ++m->clock;
        p = pt(type, key, time, (double)(int64_t)pick(m, 5) - 2, texts[pick(m, 5)],
               origins[pick(m, 3)], rnd(m) % 10 == 0);
    }
    int want = sprig_merge_wins(old, &p) ? 1 : 0;
    MUST(sprig_tree_point_put(m->t, n, &p) == want);
    const sprig_point_t *held = sprig_tree_point(m->t, n, type, key);
    MUST(held != NULL);
    if (want == 1) {
        MUST(sprig_merge_cmp(held, &p) == 0);
    }
    return true;
}

static bool op_edge_point(model_t *m)
{
    static const char *const types[] = {"order", "label"};
    sprig_node_t *n = m->nodes[1 + pick(m, m->n - 1)];
    sprig_edge_t *e = sprig_node_parents(n);
    if (e == NULL) {
        return false;
    }
    for (size_t k = pick(m, 3); k > 0 && sprig_edge_next_parent(e) != NULL; k--) {
        e = sprig_edge_next_parent(e);
    }
    int64_t time = rnd(m) % 4 == 0 ? m->clock - (int64_t)pick(m, 10) : ++m->clock;
    sprig_point_t p = pt(types[pick(m, 2)], "0", time, (double)pick(m, 3), "", "", 0);
    const sprig_point_t *old = sprig_edge_point(e, p.type, p.key);
    int want = sprig_merge_wins(old, &p) ? 1 : 0;
    MUST(sprig_tree_edge_point_put(m->t, e, &p) == want);
    return true;
}

static void model_init(model_t *m, uint64_t seed, bool defer, bool acyclic)
{
    memset(m, 0, sizeof(*m));
    MUST(sprig_tree_open(&m->t) == 0);
    m->rng = seed;
    m->clock = 1000;
    m->acyclic = acyclic;
    sprig_tree_set_local_fn(m->t, is_local, NULL);
    if (defer) {
        sprig_tree_hash_defer(m->t);
    }
    MUST(sprig_tree_node_add(m->t, "n0", "device", &m->nodes[0]) == 0);
    m->n = 1;
    sprig_tree_set_root(m->t, m->nodes[0]);
}

static void model_step(model_t *m)
{
    static bool (*const ops[8])(model_t *) = {
        op_add, op_add, op_delete, op_move, op_mirror, op_node_point, op_node_point, op_edge_point};
    size_t kind = m->n < 4 ? 0 : pick(m, 8);
    m->step++;
    if (ops[kind](m)) {
        m->ops[kind]++; /* counts the ops that changed something */
    }
}

/* sub(n) recomputed here from DESIGN.md section 4 and the public accessors alone,
 * memoised by node index. */
static uint64_t ref_sub(const sprig_node_t *n, uint64_t *memo, bool *done, int depth)
{
    size_t i = node_index(n);
    MUST(i < MAXN);
    MUST(depth < MAXN); /* no cycle */
    if (done[i]) {
        return memo[i];
    }
    uint64_t s = 0;
    for (const sprig_point_t *p = sprig_node_points(n); p != NULL; p = sprig_point_next(p)) {
        if (!is_local(sprig_node_type(n), p->type, NULL)) {
            s ^= sprig_hash_point(p);
        }
    }
    for (sprig_edge_t *e = sprig_node_children(n); e != NULL; e = sprig_edge_next_child(e)) {
        uint64_t x = 0;
        for (const sprig_point_t *p = sprig_edge_points(e); p != NULL; p = sprig_point_next(p)) {
            x ^= sprig_hash_point(p);
        }
        const sprig_node_t *c = sprig_edge_down(e);
        /* A tombstoned edge leaves the child's subtree out (tree.c's rule). */
        uint64_t cs = sprig_edge_tombstone(e) ? 0 : ref_sub(c, memo, done, depth + 1);
        s ^= sprig_hash_contrib(sprig_node_id(c), cs, x);
    }
    memo[i] = s;
    done[i] = true;
    return s;
}

static void ref_check(model_t *m)
{
    static uint64_t memo[MAXN];
    static bool done[MAXN];
    memset(done, 0, sizeof(done));
    MUST(ref_sub(m->nodes[0], memo, done, 0) == sprig_tree_root_hash(m->t));
    for (size_t i = 0; i < m->n; i++) {
        MUST(ref_sub(m->nodes[i], memo, done, 0) == sprig_node_hash(m->nodes[i]));
    }
}

/* The acceptance run: thousands of random creates, moves, mirrors, deletes and point
 * writes; after every one the kept hashes equal the recomputed ones. */
static int random_run(void *arg)
{
    enum { STEPS = 4000 };
    static model_t m;
    model_init(&m, 0x9E3779B97F4A7C15ULL, false, *(const bool *)arg);
    for (int i = 0; i < STEPS; i++) {
        model_step(&m);
        long bad = sprig_tree_hash_check(m.t, NULL, NULL);
        if (bad != 0) {
            fprintf(stderr, "after op %d: %ld nodes with stale hashes\n", i, bad);
            MUST(bad == 0);
        }
        if (i % 100 == 99) {
            ref_check(&m);
        }
    }
    ref_check(&m);
    /* The sequence did what it says: many of each kind, a sizeable tree. */
    MUST(m.n > 300);
    for (int k = 0; k < 8; k++) {
        MUST(m.ops[k] > 100);
    }
    MUST(sprig_tree_point_count(m.t) > 500);
    MUST(sprig_tree_hash_rebuild(m.t) == 0); /* no cycle was let in */
    sprig_tree_close(m.t);
    return 0;
}

static int run_child(int (*fn)(void *), void *arg, unsigned timeout_ms)
{
    in_child = true;
    int rc = tu_child(fn, arg, timeout_ms);
    in_child = false;
    return rc;
}

/* Live edges chosen by the core's own rule (sprig_tree_would_cycle, which ignores
 * tombstoned edges), as sprig_core_move and sprig_core_mirror choose them. */
static void t_hash_random_ops(void **state)
{
    (void)state;
    bool acyclic = false;
    int rc = run_child(random_run, &acyclic, 20000);
    if (rc != 0) {
        fail_msg("random sequence with the core's cycle rule: %s (status %d)",
                 rc == TU_CHILD_TIMEOUT ? "did not finish in 20 s (hash propagation loops)"
                                        : "failed",
                 rc);
    }
}

/* The same, with every live edge that would close a cycle through a tombstoned edge left
 * out, so that the hashing itself is checked whatever the cycle rule. */
static void t_hash_random_ops_acyclic(void **state)
{
    (void)state;
    bool acyclic = true;
    assert_int_equal(run_child(random_run, &acyclic, 60000), 0);
}

/* Two moves that sprig_tree_would_cycle allows: c moves from a to b, then a moves under c.
 * The edge a -> c is tombstoned but still hashed, so a is in c's subtree hash and c in
 * a's. Either the second live edge must be refused as a cycle, or the hashes must stay
 * consistent; they must not loop. */
static int dead_edge_cycle(void *arg)
{
    (void)arg;
    sprig_tree_t *t = NULL;
    sprig_node_t *r, *a, *b, *c;
    MUST(sprig_tree_open(&t) == 0);
    MUST(sprig_tree_node_add(t, "r", "device", &r) == 0);
    MUST(sprig_tree_node_add(t, "a", "group", &a) == 0);
    MUST(sprig_tree_node_add(t, "b", "group", &b) == 0);
    MUST(sprig_tree_node_add(t, "c", "group", &c) == 0);
    sprig_tree_set_root(t, r);
    MUST(sprig_tree_edge_add(t, r, a) != NULL);
    MUST(sprig_tree_edge_add(t, r, b) != NULL);
    sprig_edge_t *ac = sprig_tree_edge_add(t, a, c);
    MUST(ac != NULL);
    sprig_point_t dead = edge_tomb(10, 1), alive = edge_tomb(10, 0);
    MUST(sprig_tree_edge_add(t, b, c) != NULL);
    MUST(sprig_tree_edge_point_put(t, ac, &dead) == 1); /* c moved from a to b */
    if (sprig_tree_would_cycle(t, c, a)) {
        sprig_tree_close(t);
        return 0; /* refused: fine */
    }
    sprig_edge_t *ca = sprig_tree_edge_add(t, c, a); /* a moves under c */
    MUST(ca != NULL);
    MUST(sprig_tree_edge_point_put(t, ca, &alive) == 1);
    MUST(sprig_tree_hash_check(t, NULL, NULL) == 0);
    sprig_tree_close(t);
    return 0;
}

static void t_cycle_through_tombstoned_edge(void **state)
{
    (void)state;
    int rc = run_child(dead_edge_cycle, NULL, 5000);
    if (rc == TU_CHILD_TIMEOUT) {
        fail_msg("adding live edge c -> a while a -> c is tombstoned: would_cycle allowed it "
                 "and sprig_tree_edge_add did not return within 5 s");
    }
    assert_int_equal(rc, 0);
}

/* A ladder of mirrors: level i has two nodes, each a child of both nodes of level i - 1,
 * so a node at level k has 2^k paths to the root but the ladder only 2k nodes. DESIGN.md
 * section 4 promises O(depth) hashes per point change; a point written at the bottom must
 * not cost one step per path. */
static int ladder_run(void *arg)
{
    int levels = *(const int *)arg;
    sprig_tree_t *t = NULL;
    sprig_node_t *prev[2] = {NULL, NULL}, *root = NULL;
    MUST(sprig_tree_open(&t) == 0);
    MUST(sprig_tree_node_add(t, "root", "device", &root) == 0);
    sprig_tree_set_root(t, root);
    prev[0] = prev[1] = root;
    for (int i = 0; i < levels; i++) {
        sprig_node_t *cur[2];
        for (int k = 0; k < 2; k++) {
            char id[32];
            snprintf(id, sizeof(id), "l%d-%d", i, k);
            MUST(sprig_tree_node_add(t, id, "group", &cur[k]) == 0);
            MUST(sprig_tree_edge_add(t, prev[0], cur[k]) != NULL);
            if (prev[1] != prev[0]) {
                MUST(sprig_tree_edge_add(t, prev[1], cur[k]) != NULL);
            }
        }
        prev[0] = cur[0];
        prev[1] = cur[1];
    }
    sprig_point_t p = simple("value", 1, 1);
    MUST(sprig_tree_point_put(t, prev[0], &p) == 1);
    MUST(sprig_tree_hash_check(t, NULL, NULL) == 0);
    sprig_tree_close(t);
    return 0;
}

static void t_mirror_ladder(void **state)
{
    (void)state;
    int small = 8;
    assert_int_equal(run_child(ladder_run, &small, 20000), 0); /* correct when it finishes */
    int levels = 40;
    int rc = run_child(ladder_run, &levels, 10000);
    if (rc == TU_CHILD_TIMEOUT) {
        fail_msg("a ladder of %d mirrored levels (%d nodes): building it and writing one point "
                 "did not finish in 10 s (hash propagation walks every path, 2^%d)",
                 levels, 2 * levels, levels);
    }
    assert_int_equal(rc, 0);
}

static void t_hash_defer_rebuild_matches(void **state)
{
    (void)state;
    enum { STEPS = 3000 };
    static model_t inc, def;
    model_init(&inc, 12345, false, true);
    model_init(&def, 12345, true, true);
    for (int i = 0; i < STEPS; i++) {
        model_step(&inc);
        model_step(&def);
    }
    assert_int_equal(inc.n, def.n);
    assert_true(inc.n > 200);
    assert_true(sprig_tree_root_hash(inc.t) != 0);
    assert_true(sprig_tree_hash_check(def.t, NULL, NULL) > 0); /* stale while deferred */
    assert_int_equal(sprig_tree_hash_rebuild(def.t), 0);
    assert_int_equal(sprig_tree_hash_check(def.t, NULL, NULL), 0);
    assert_true(sprig_tree_root_hash(def.t) == sprig_tree_root_hash(inc.t));
    for (size_t i = 0; i < inc.n; i++) {
        sprig_node_t *a = inc.nodes[i], *b = def.nodes[i];
        assert_string_equal(sprig_node_id(a), sprig_node_id(b));
        assert_true(sprig_node_hash(a) == sprig_node_hash(b));
        assert_true(sprig_node_own_hash(a) == sprig_node_own_hash(b));
        sprig_edge_t *ea = sprig_node_parents(a), *eb = sprig_node_parents(b);
        for (int g = 0; ea != NULL && eb != NULL && g < MAXN; g++) {
            assert_true(sprig_edge_contrib(ea) == sprig_edge_contrib(eb));
            ea = sprig_edge_next_parent(ea);
            eb = sprig_edge_next_parent(eb);
        }
        assert_true(ea == NULL && eb == NULL);
    }
    /* Both keep going incrementally and stay equal. */
    for (int i = 0; i < 200; i++) {
        model_step(&inc);
        model_step(&def);
    }
    assert_true(sprig_tree_root_hash(def.t) == sprig_tree_root_hash(inc.t));
    assert_int_equal(sprig_tree_hash_check(def.t, NULL, NULL), 0);
    sprig_tree_close(inc.t);
    sprig_tree_close(def.t);
}

/* --- the undo journal ------------------------------------------------------------- */

/* Everything the public accessors show of a tree, in a canonical text: every node in
 * creation order with its type, hashes and points (in list order, with their kept ph and
 * local flag), its child edges and its parent edges in list order with their state,
 * contrib and points, and the counts. Two trees print the same iff they look the same. */
typedef struct dump {
    char *buf;
    size_t len, cap;
} dump_t;

static void dump_add(dump_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void dump_add(dump_t *d, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    MUST(n >= 0 && (size_t)n < sizeof(line));
    if (d->len + (size_t)n + 1 > d->cap) {
        size_t cap = d->cap != 0 ? d->cap : 4096;
        while (cap < d->len + (size_t)n + 1) {
            cap *= 2;
        }
        d->buf = realloc(d->buf, cap);
        MUST(d->buf != NULL);
        d->cap = cap;
    }
    memcpy(d->buf + d->len, line, (size_t)n + 1);
    d->len += (size_t)n;
}

static void dump_points(dump_t *d, const sprig_point_t *p)
{
    for (; p != NULL; p = sprig_point_next(p)) {
        uint64_t bits;
        memcpy(&bits, &p->value, sizeof(bits));
        dump_add(d,
                 "  pt %s/%s t=%lld v=%016llx tomb=%d o=%s ph=%016llx local=%d text=%.40s(%zu)\n",
                 p->type, p->key, (long long)p->time, (unsigned long long)bits, p->tombstone,
                 p->origin, (unsigned long long)sprig_tree_point_hash(p),
                 (int)sprig_tree_point_local(p), p->text, strlen(p->text));
    }
}

static int dump_node(sprig_node_t *n, void *arg)
{
    dump_t *d = arg;
    dump_add(d, "node %s %s own=%016llx sub=%016llx\n", sprig_node_id(n), sprig_node_type(n),
             (unsigned long long)sprig_node_own_hash(n), (unsigned long long)sprig_node_hash(n));
    dump_points(d, sprig_node_points(n));
    for (sprig_edge_t *e = sprig_node_children(n); e != NULL; e = sprig_edge_next_child(e)) {
        dump_add(d, " child %s dead=%d contrib=%016llx\n", sprig_node_id(sprig_edge_down(e)),
                 (int)sprig_edge_tombstone(e), (unsigned long long)sprig_edge_contrib(e));
        dump_points(d, sprig_edge_points(e));
    }
    for (sprig_edge_t *e = sprig_node_parents(n); e != NULL; e = sprig_edge_next_parent(e)) {
        dump_add(d, " parent %s\n", sprig_node_id(sprig_edge_up(e)));
    }
    return 0;
}

static char *dump_tree(sprig_tree_t *t)
{
    dump_t d = {0};
    dump_add(&d, "nodes=%zu points=%zu root=%016llx\n", sprig_tree_node_count(t),
             sprig_tree_point_count(t), (unsigned long long)sprig_tree_root_hash(t));
    sprig_tree_each_node(t, dump_node, &d);
    return d.buf;
}

/* Rounds of random changes under a journal, each rolled back or committed at random: a
 * rolled-back round leaves the tree exactly as it was (the dump, the ids it added no
 * longer found), a committed one keeps its changes with consistent hashes, and the tree
 * goes on working either way. */
static int journal_run(void *arg)
{
    (void)arg;
    enum { ROUNDS = 600 };
    static model_t m;
    long rolled = 0, committed = 0;
    model_init(&m, 0xC0FFEE1234ULL, false, true);
    for (int i = 0; i < 200; i++) {
        model_step(&m);
    }
    for (int round = 0; round < ROUNDS; round++) {
        char *before = dump_tree(m.t);
        size_t n = m.n;
        MUST(sprig_tree_begin(m.t) == 0);
        MUST(sprig_tree_begin(m.t) == -EBUSY);
        int steps = 1 + (int)pick(&m, 25);
        for (int i = 0; i < steps; i++) {
            model_step(&m);
        }
        /* Strings only an undone change used are forgotten too (ASan sees any use). */
        char fresh[32];
        snprintf(fresh, sizeof(fresh), "fresh-%d", round);
        MUST(sprig_tree_intern(m.t, fresh) != NULL);
        if (rnd(&m) % 2 == 0) {
            sprig_tree_rollback(m.t);
            char *after = dump_tree(m.t);
            if (strcmp(before, after) != 0) {
                fprintf(stderr,
                        "round %d: rollback left a different tree\n--- before\n%s\n"
                        "--- after\n%s\n",
                        round, before, after);
                MUST(false);
            }
            free(after);
            for (size_t k = n; k < m.n; k++) {
                char id[32];
                snprintf(id, sizeof(id), "n%zu", k);
                MUST(sprig_tree_node(m.t, id) == NULL);
            }
            m.n = n;
            rolled++;
        }
        else {
            sprig_tree_commit(m.t);
            committed++;
        }
        free(before);
        MUST(sprig_tree_hash_check(m.t, NULL, NULL) == 0);
        if (round % 50 == 49) {
            ref_check(&m);
        }
    }
    MUST(rolled > 200 && committed > 200);
    MUST(m.n > 300);
    sprig_tree_close(m.t);
    return 0;
}

static void t_journal_random_rounds(void **state)
{
    (void)state;
    assert_int_equal(run_child(journal_run, NULL, 60000), 0);
}

/* Every change under a journal that runs out of memory at its k-th allocation, for each
 * k until it succeeds: the rollback after the failure restores the tree exactly. */
static void t_journal_rollback_after_enomem(void **state)
{
    (void)state;
    static model_t m;
    model_init(&m, 77, false, true);
    for (int i = 0; i < 300; i++) {
        model_step(&m);
    }
    sprig_node_t *deep = m.nodes[m.n - 1], *root = m.nodes[0];
    char text[100];
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    for (int what = 0; what < 4; what++) {
        int done = 0;
        for (long k = 0; k < 200 && !done; k++) {
            char *before = dump_tree(m.t);
            assert_int_equal(sprig_tree_begin(m.t), 0);
            sprig_alloc_fail_after(k);
            int rc = 0;
            sprig_node_t *fresh = NULL;
            sprig_point_t p =
                pt("brand-new-type", "brand-new-key", ++m.clock, 1, text, "brand-new-origin", 0);
            switch (what) {
            case 0: /* a new node with an edge and points */
                rc = sprig_tree_node_add(m.t, "nomem-node", "nomem-type", &fresh);
                if (rc == 0) {
                    sprig_edge_t *e = sprig_tree_edge_add(m.t, deep, fresh);
                    rc = e == NULL ? -ENOMEM : sprig_tree_edge_point_put(m.t, e, &p);
                }
                if (rc >= 0) {
                    rc = sprig_tree_point_put(m.t, fresh, &p);
                }
                break;
            case 1: /* a new point deep down */
                rc = sprig_tree_point_put(m.t, deep, &p);
                break;
            case 2: { /* a changed point of the root, then of a deep node */
                sprig_point_t q = pt("value", "0", ++m.clock, 5, text, "", 0);
                rc = sprig_tree_point_put(m.t, root, &q);
                if (rc >= 0) {
                    rc = sprig_tree_point_put(m.t, deep, &q);
                }
                break;
            }
            default: { /* a deleted edge */
                sprig_edge_t *e = sprig_node_parents(deep);
                sprig_point_t q = edge_tomb(++m.clock, 1);
                rc = sprig_tree_edge_point_put(m.t, e, &q);
                break;
            }
            }
            sprig_alloc_fail_after(-1);
            sprig_tree_rollback(m.t);
            char *after = dump_tree(m.t);
            if (strcmp(before, after) != 0) {
                fail_msg("change %d failing at allocation %ld (rc %d): the rollback left a "
                         "different tree",
                         what, k, rc);
            }
            assert_null(sprig_tree_node(m.t, "nomem-node"));
            assert_int_equal(sprig_tree_hash_check(m.t, NULL, NULL), 0);
            done = rc >= 0;
            free(before);
            free(after);
        }
        assert_true(done);
    }
    sprig_tree_close(m.t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_node_add_lookup),
        cmocka_unit_test(t_intern),
        cmocka_unit_test(t_edges_walk),
        cmocka_unit_test(t_would_cycle),
        cmocka_unit_test(t_find_cycle_and_remove),
        cmocka_unit_test(t_point_put_merge),
        cmocka_unit_test(t_node_device),
        cmocka_unit_test(t_edge_points),
        cmocka_unit_test(t_hash_basics),
        cmocka_unit_test(t_hash_mirror_propagates),
        cmocka_unit_test(t_hash_local_point),
        cmocka_unit_test(t_hash_check_stale),
        cmocka_unit_test(t_deep_chain),
        cmocka_unit_test(t_hash_random_ops_acyclic),
        cmocka_unit_test(t_hash_defer_rebuild_matches),
        cmocka_unit_test(t_cycle_through_tombstoned_edge),
        cmocka_unit_test(t_hash_random_ops),
        cmocka_unit_test(t_mirror_ladder),
        cmocka_unit_test(t_journal_random_rounds),
        cmocka_unit_test(t_journal_rollback_after_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
