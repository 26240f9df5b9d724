/* Unit tests of the merge rule (merge.h, DESIGN.md section 3): the total order (time,
 * origin bytes, tombstone, value bits as unsigned, text bytes), duplicates as no-ops, and
 * the acceptance item that merge is commutative and idempotent: for randomised sets of
 * colliding points, every permutation of arrival order, through the tree, leaves the same
 * stored points and the same root hash, and applying a point again changes nothing. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "sprig/hash.h"
#include "sprig/merge.h"
#include "sprig/tree.h"

#define T0 (1767225600LL * 1000000000LL)

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

static uint64_t bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static sprig_point_t pt(int64_t time, const char *origin, int tombstone, double value,
                        const char *text)
{
    sprig_point_t p = {"value", "0", time, value, text, origin, tombstone};
    return p;
}

/* Asserts a < b in both directions, and that b wins over a but not the other way. */
static void assert_before(const sprig_point_t *a, const sprig_point_t *b)
{
    assert_true(sprig_merge_cmp(a, b) < 0);
    assert_true(sprig_merge_cmp(b, a) > 0);
    assert_true(sprig_merge_wins(a, b));
    assert_false(sprig_merge_wins(b, a));
}

static void test_order_time_first(void **state)
{
    (void)state;
    /* b is later but smaller in every other field: time decides. */
    sprig_point_t a = pt(T0, "zz", 1, -1.0, "zzz");
    sprig_point_t b = pt(T0 + 1, "", 0, 0.0, "");
    assert_before(&a, &b);
    /* Times compare as signed integers. */
    sprig_point_t c = pt(1, "", 0, 0.0, "");
    sprig_point_t d = pt(INT64_MAX, "", 0, 0.0, "");
    assert_before(&c, &d);
    sprig_point_t e = pt(-1, "", 0, 0.0, "");
    assert_before(&e, &c);
}

static void test_order_origin_bytes(void **state)
{
    (void)state;
    /* Equal times: origin decides, over tombstone, value and text. */
    sprig_point_t a = pt(T0, "drv-1", 1, -1.0, "zzz");
    sprig_point_t b = pt(T0, "drv-2", 0, 0.0, "");
    assert_before(&a, &b);
    /* A person ("") before any driver. */
    sprig_point_t p = pt(T0, "", 1, -1.0, "z");
    assert_before(&p, &a);
    /* A prefix before the longer origin. */
    sprig_point_t c = pt(T0, "drv", 1, -1.0, "z");
    sprig_point_t d = pt(T0, "drv-", 0, 0.0, "");
    assert_before(&c, &d);
    /* Bytes, not locale: 'Z' (0x5a) before 'a' (0x61), '9' before 'A'. */
    sprig_point_t up = pt(T0, "Zed", 0, 0.0, "");
    sprig_point_t lo = pt(T0, "abc", 0, 0.0, "");
    assert_before(&up, &lo);
    sprig_point_t dig = pt(T0, "9", 0, 0.0, "");
    sprig_point_t cap = pt(T0, "A", 0, 0.0, "");
    assert_before(&dig, &cap);
    /* Bytes as unsigned: 0xc3 after 'z'. */
    sprig_point_t hi = pt(T0, "\xc3\xa9", 0, 0.0, "");
    sprig_point_t z = pt(T0, "zzz", 0, 0.0, "");
    assert_before(&z, &hi);
}

static void test_order_tombstone(void **state)
{
    (void)state;
    /* Equal time and origin: a tombstone after a live point, over value and text. */
    sprig_point_t live = pt(T0, "o", 0, -1.0, "zzz");
    sprig_point_t dead = pt(T0, "o", 1, 0.0, "");
    assert_before(&live, &dead);
}

static void test_order_value_bits(void **state)
{
    (void)state;
    /* Equal time, origin, tombstone: value bits as unsigned 64-bit, over text. */
    sprig_point_t a = pt(T0, "o", 0, 0.5, "zzz");
    sprig_point_t b = pt(T0, "o", 0, 1.0, "");
    assert_before(&a, &b);
    /* 0.0 (all zero bits) before -0.0 (sign bit set): they differ and do not tie. */
    sprig_point_t pz = pt(T0, "o", 0, 0.0, "z");
    sprig_point_t nz = pt(T0, "o", 0, -0.0, "");
    assert_true(bits(0.0) != bits(-0.0));
    assert_before(&pz, &nz);
    /* Unsigned bits, not numeric order: every negative sorts after every positive. */
    sprig_point_t big = pt(T0, "o", 0, 1e300, "");
    sprig_point_t neg = pt(T0, "o", 0, -1e-300, "");
    assert_before(&big, &neg);
    sprig_point_t m1 = pt(T0, "o", 0, -1.0, "");
    sprig_point_t m2 = pt(T0, "o", 0, -2.0, "");
    assert_before(&m1, &m2);
    /* Top bit set in the high byte: a signed comparison of the bits would flip this. */
    sprig_point_t one = pt(T0, "o", 0, 1.0, "");
    assert_before(&one, &m1);
}

static void test_order_text_bytes(void **state)
{
    (void)state;
    /* Everything else equal: text decides, as bytes. */
    sprig_point_t e = pt(T0, "o", 0, 1.0, "");
    sprig_point_t a = pt(T0, "o", 0, 1.0, "a");
    sprig_point_t ab = pt(T0, "o", 0, 1.0, "ab");
    sprig_point_t b = pt(T0, "o", 0, 1.0, "b");
    sprig_point_t up = pt(T0, "o", 0, 1.0, "B");
    sprig_point_t acute = pt(T0, "o", 0, 1.0, "\xc3\xa9"); /* U+00E9 */
    assert_before(&e, &a);
    assert_before(&a, &ab);
    assert_before(&ab, &b);
    assert_before(&up, &a);
    /* Unsigned bytes: UTF-8 lead byte 0xc3 sorts after ASCII 'z'. */
    sprig_point_t z = pt(T0, "o", 0, 1.0, "z");
    assert_before(&z, &acute);
}

static void test_equal_points(void **state)
{
    (void)state;
    /* Equal content held in different buffers (and different type/key, which do not take
     * part) compares 0, and a duplicate never wins. */
    char o1[] = "drv-1", o2[] = "drv-1", t1[] = "hello", t2[] = "hello";
    sprig_point_t a = {"value", "0", T0, -0.0, t1, o1, 1};
    sprig_point_t b = {"other", "7", T0, -0.0, t2, o2, 1};
    assert_int_equal(sprig_merge_cmp(&a, &b), 0);
    assert_int_equal(sprig_merge_cmp(&b, &a), 0);
    assert_int_equal(sprig_merge_cmp(&a, &a), 0);
    assert_false(sprig_merge_wins(&a, &a));
    assert_false(sprig_merge_wins(&a, &b));
    assert_false(sprig_merge_wins(&b, &a));
}

static void test_wins_null(void **state)
{
    (void)state;
    /* Nothing stored: anything wins, even the smallest point. */
    sprig_point_t p = pt(1, "", 0, 0.0, "");
    assert_true(sprig_merge_wins(NULL, &p));
    sprig_point_t q = pt(T0, "o", 1, -0.0, "x");
    assert_true(sprig_merge_wins(NULL, &q));
}

/* --- A reference order and a PRNG for the randomised tests ------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* splitmix64: fixed seed, so a failure reproduces. */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int bytes_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c != 0) {
        return sign(c);
    }
    return la < lb ? -1 : (la > lb ? 1 : 0);
}

/* The order written out from DESIGN.md section 3, independently of merge.c. */
static int ref_cmp(const sprig_point_t *a, const sprig_point_t *b)
{
    if (a->time != b->time) {
        return a->time < b->time ? -1 : 1;
    }
    int c = bytes_cmp(a->origin, b->origin);
    if (c != 0) {
        return c;
    }
    if (a->tombstone != b->tombstone) {
        return a->tombstone < b->tombstone ? -1 : 1;
    }
    if (bits(a->value) != bits(b->value)) {
        return bits(a->value) < bits(b->value) ? -1 : 1;
    }
    return bytes_cmp(a->text, b->text);
}

static const char *const origins[] = {"", "drv-1", "drv-2", "Drv-1"};
static const char *const texts[] = {"", "a", "b", "ab", "\xc3\xa9"};
static const double values[] = {0.0, -0.0, 1.0, -1.0, 2.5};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void random_fields(sprig_point_t *p, int field)
{
    switch (field) {
    case 0:
        p->time = T0 + (int64_t)(rnd() % 2);
        break;
    case 1:
        p->origin = origins[rnd() % NELEM(origins)];
        break;
    case 2:
        p->tombstone = (int)(rnd() % 2);
        break;
    case 3:
        p->value = values[rnd() % NELEM(values)];
        break;
    default:
        p->text = texts[rnd() % NELEM(texts)];
        break;
    }
}

static void test_cmp_matches_reference(void **state)
{
    (void)state;
    rng_state = 42;
    for (int i = 0; i < 20000; i++) {
        sprig_point_t a = pt(0, "", 0, 0.0, ""), b = pt(0, "", 0, 0.0, "");
        for (int f = 0; f < 5; f++) {
            random_fields(&a, f);
            random_fields(&b, f);
        }
        if (rnd() % 2) {
            b = a; /* equal, or equal but one field */
            random_fields(&b, (int)(rnd() % 6));
        }
        int c = sprig_merge_cmp(&a, &b);
        assert_int_equal(sign(c), ref_cmp(&a, &b));
        assert_int_equal(sign(sprig_merge_cmp(&b, &a)), -sign(c));
        assert_int_equal(sprig_merge_wins(&a, &b), c < 0);
    }
}

/* --- Every permutation of arrival, through the tree ------------------------------- */

#define NPTS 6
#define NTARGETS 2
#define NPAIRS 2

typedef struct gen_point {
    int target; /* node (or edge) index */
    int pair;   /* (type, key) index */
    sprig_point_t p;
} gen_point_t;

static const char *const node_ids[NTARGETS] = {"n1", "n2"};

typedef struct pair {
    const char *type, *key;
} pair_t;

static const pair_t node_pairs[NPAIRS] = {{"value", "0"}, {"value", "1"}};
/* On edges: the edge's own tombstone point and an ordinary one. */
static const pair_t edge_pairs[NPAIRS] = {{"tombstone", "0"}, {"label", "0"}};

typedef struct snap_point {
    bool present;
    int64_t time;
    uint64_t vbits;
    int tombstone;
    char text[16];
    char origin[16];
    char type[16];
    char key[16];
    uint64_t ph;
} snap_point_t;

typedef struct snapshot {
    uint64_t root_hash;
    uint64_t node_hash[NTARGETS];
    uint64_t contrib[NTARGETS];
    bool edge_tombstone[NTARGETS];
    size_t count[NTARGETS]; /* points listed on the node or edge */
    size_t tree_points;
    snap_point_t pts[NTARGETS][NPAIRS];
} snapshot_t;

typedef struct world {
    sprig_tree_t *t;
    sprig_node_t *root;
    sprig_node_t *nodes[NTARGETS];
    sprig_edge_t *edges[NTARGETS];
} world_t;

static void world_open(world_t *w)
{
    assert_int_equal(sprig_tree_open(&w->t), 0);
    assert_int_equal(sprig_tree_node_add(w->t, "root", "device", &w->root), 0);
    sprig_tree_set_root(w->t, w->root);
    for (int i = 0; i < NTARGETS; i++) {
        assert_int_equal(sprig_tree_node_add(w->t, node_ids[i], "variable", &w->nodes[i]), 0);
        w->edges[i] = sprig_tree_edge_add(w->t, w->root, w->nodes[i]);
        assert_non_null(w->edges[i]);
    }
}

static void snap_copy(char *dst, const char *src)
{
    assert_non_null(src);
    assert_true(strlen(src) < 16);
    strcpy(dst, src);
}

static void snap_fill(snap_point_t *s, const sprig_point_t *p)
{
    memset(s, 0, sizeof(*s));
    if (p == NULL) {
        return;
    }
    s->present = true;
    s->time = p->time;
    s->vbits = bits(p->value);
    s->tombstone = p->tombstone;
    snap_copy(s->text, p->text);
    snap_copy(s->origin, p->origin);
    snap_copy(s->type, p->type);
    snap_copy(s->key, p->key);
    s->ph = sprig_tree_point_hash(p);
}

static void snapshot_take(const world_t *w, bool on_edges, snapshot_t *s)
{
    const pair_t *pairs = on_edges ? edge_pairs : node_pairs;
    memset(s, 0, sizeof(*s));
    s->root_hash = sprig_tree_root_hash(w->t);
    /* Node points only: the tree counts those (edge points are few and listed). */
    s->tree_points = on_edges ? 0 : sprig_tree_point_count(w->t);
    for (int i = 0; i < NTARGETS; i++) {
        s->node_hash[i] = sprig_node_hash(w->nodes[i]);
        s->contrib[i] = sprig_edge_contrib(w->edges[i]);
        s->edge_tombstone[i] = sprig_edge_tombstone(w->edges[i]);
        const sprig_point_t *p =
            on_edges ? sprig_edge_points(w->edges[i]) : sprig_node_points(w->nodes[i]);
        for (; p != NULL; p = sprig_point_next(p)) {
            s->count[i]++;
        }
        for (int k = 0; k < NPAIRS; k++) {
            if (on_edges) {
                p = sprig_edge_point(w->edges[i], pairs[k].type, pairs[k].key);
            }
            else {
                p = sprig_node_point(w->nodes[i], pairs[k].type, pairs[k].key);
                /* The indexed lookup finds the same record as the walk. */
                assert_ptr_equal(sprig_tree_point(w->t, w->nodes[i], pairs[k].type, pairs[k].key),
                                 p);
            }
            snap_fill(&s->pts[i][k], p);
        }
    }
}

static void snapshot_assert_equal(const snapshot_t *a, const snapshot_t *b)
{
    assert_int_equal(a->root_hash, b->root_hash);
    assert_int_equal(a->tree_points, b->tree_points);
    for (int i = 0; i < NTARGETS; i++) {
        assert_int_equal(a->node_hash[i], b->node_hash[i]);
        assert_int_equal(a->contrib[i], b->contrib[i]);
        assert_int_equal(a->edge_tombstone[i], b->edge_tombstone[i]);
        assert_int_equal(a->count[i], b->count[i]);
        for (int k = 0; k < NPAIRS; k++) {
            const snap_point_t *x = &a->pts[i][k], *y = &b->pts[i][k];
            assert_int_equal(x->present, y->present);
            assert_int_equal(x->time, y->time);
            assert_int_equal(x->vbits, y->vbits);
            assert_int_equal(x->tombstone, y->tombstone);
            assert_string_equal(x->text, y->text);
            assert_string_equal(x->origin, y->origin);
            assert_string_equal(x->type, y->type);
            assert_string_equal(x->key, y->key);
            assert_int_equal(x->ph, y->ph);
        }
    }
}

static void gen_set(gen_point_t *g, bool on_edges)
{
    const pair_t *pairs = on_edges ? edge_pairs : node_pairs;
    for (int i = 0; i < NPTS; i++) {
        if (i > 0 && rnd() % 3 == 0) {
            /* A near-copy of an earlier point: a duplicate, or one field changed. */
            g[i] = g[rnd() % (uint64_t)i];
            int f = (int)(rnd() % 6);
            if (f < 5) {
                random_fields(&g[i].p, f);
            }
            continue;
        }
        g[i].target = (int)(rnd() % NTARGETS);
        g[i].pair = (int)(rnd() % NPAIRS);
        g[i].p = pt(0, "", 0, 0.0, "");
        for (int f = 0; f < 5; f++) {
            random_fields(&g[i].p, f);
        }
    }
    for (int i = 0; i < NPTS; i++) {
        g[i].p.type = pairs[g[i].pair].type;
        g[i].p.key = pairs[g[i].pair].key;
    }
}

static int put(world_t *w, bool on_edges, const gen_point_t *g)
{
    return on_edges ? sprig_tree_edge_point_put(w->t, w->edges[g->target], &g->p)
                    : sprig_tree_point_put(w->t, w->nodes[g->target], &g->p);
}

/* Applies the points in the order of perm, checking each put's result against the
 * reference order, and returns with the tree open in w. */
static void apply_perm(world_t *w, bool on_edges, const gen_point_t *g, const int *perm, bool twice)
{
    const sprig_point_t *best[NTARGETS][NPAIRS] = {{NULL}};
    world_open(w);
    for (int i = 0; i < NPTS; i++) {
        const gen_point_t *x = &g[perm[i]];
        const sprig_point_t **b = &best[x->target][x->pair];
        int expect = *b == NULL || ref_cmp(&x->p, *b) > 0;
        assert_int_equal(put(w, on_edges, x), expect);
        if (expect) {
            *b = &x->p;
        }
        if (twice) {
            /* The same point again at once: a no-op that leaves the hash alone. */
            uint64_t h = sprig_tree_root_hash(w->t);
            assert_int_equal(put(w, on_edges, x), 0);
            assert_int_equal(sprig_tree_root_hash(w->t), h);
        }
    }
}

/* The state every permutation must reach, computed from the reference order and the
 * hash functions alone. */
static void expect_state(const gen_point_t *g, bool on_edges, snapshot_t *s)
{
    const pair_t *pairs = on_edges ? edge_pairs : node_pairs;
    const sprig_point_t *best[NTARGETS][NPAIRS] = {{NULL}};
    for (int i = 0; i < NPTS; i++) {
        const sprig_point_t **b = &best[g[i].target][g[i].pair];
        if (*b == NULL || ref_cmp(&g[i].p, *b) > 0) {
            *b = &g[i].p;
        }
    }
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < NTARGETS; i++) {
        uint64_t x = 0;
        for (int k = 0; k < NPAIRS; k++) {
            snap_fill(&s->pts[i][k], NULL);
            if (best[i][k] == NULL) {
                continue;
            }
            snap_point_t *sp = &s->pts[i][k];
            const sprig_point_t *p = best[i][k];
            sp->present = true;
            sp->time = p->time;
            sp->vbits = bits(p->value);
            sp->tombstone = p->tombstone;
            snap_copy(sp->text, p->text);
            snap_copy(sp->origin, p->origin);
            snap_copy(sp->type, pairs[k].type);
            snap_copy(sp->key, pairs[k].key);
            sp->ph = sprig_hash_point(p);
            x ^= sp->ph;
            s->count[i]++;
            s->tree_points += on_edges ? 0 : 1;
        }
        if (on_edges) {
            const sprig_point_t *ts = best[i][0];
            s->edge_tombstone[i] = ts != NULL && ts->tombstone == 0 && ts->value != 0;
            s->node_hash[i] = 0;
            s->contrib[i] = sprig_hash_contrib(node_ids[i], 0, x);
        }
        else {
            s->node_hash[i] = x;
            s->contrib[i] = sprig_hash_contrib(node_ids[i], x, 0);
        }
        s->root_hash ^= s->contrib[i];
    }
}

static bool next_perm(int *a, int n)
{
    int i = n - 2;
    while (i >= 0 && a[i] >= a[i + 1]) {
        i--;
    }
    if (i < 0) {
        return false;
    }
    int j = n - 1;
    while (a[j] <= a[i]) {
        j--;
    }
    int tmp = a[i];
    a[i] = a[j];
    a[j] = tmp;
    for (int l = i + 1, r = n - 1; l < r; l++, r--) {
        tmp = a[l];
        a[l] = a[r];
        a[r] = tmp;
    }
    return true;
}

static void run_permutations(bool on_edges, uint64_t seed, int sets)
{
    rng_state = seed;
    for (int set = 0; set < sets; set++) {
        gen_point_t g[NPTS];
        gen_set(g, on_edges);

        snapshot_t want, first, got;
        expect_state(g, on_edges, &want);
        int perm[NPTS];
        for (int i = 0; i < NPTS; i++) {
            perm[i] = i;
        }
        int count = 0;
        do {
            world_t w;
            apply_perm(&w, on_edges, g, perm, count % 7 == 3);
            snapshot_take(&w, on_edges, &got);
            if (count == 0) {
                first = got;
                snapshot_assert_equal(&first, &want);
            }
            else {
                snapshot_assert_equal(&got, &first);
            }
            /* The kept hashes agree with a from-scratch recomputation. */
            assert_int_equal(sprig_tree_hash_check(w.t, NULL, NULL), 0);

            /* Every point again, in reverse arrival order: nothing is stored, nothing
             * changes. */
            for (int i = NPTS - 1; i >= 0; i--) {
                assert_int_equal(put(&w, on_edges, &g[perm[i]]), 0);
            }
            snapshot_take(&w, on_edges, &got);
            snapshot_assert_equal(&got, &first);
            sprig_tree_close(w.t);
            count++;
        } while (next_perm(perm, NPTS));
        assert_int_equal(count, 720);
    }
}

static void test_permutations_node_points(void **state)
{
    (void)state;
    run_permutations(false, 0x5EED0001ULL, 60);
}

static void test_permutations_edge_points(void **state)
{
    (void)state;
    run_permutations(true, 0x5EED0002ULL, 60);
}

/* A hand-picked set of the hardest ties: one (node, type, key), equal times, and points
 * that differ only in origin, only in tombstone, only in the sign of zero, only in text. */
static void test_permutations_fixed_ties(void **state)
{
    (void)state;
    gen_point_t g[NPTS] = {
        {0, 0, {"value", "0", T0, 0.0, "", "", 0}},
        {0, 0, {"value", "0", T0, -0.0, "", "", 0}},
        {0, 0, {"value", "0", T0, 0.0, "", "drv-1", 0}},
        {0, 0, {"value", "0", T0, 0.0, "a", "", 0}},
        {0, 0, {"value", "0", T0, 0.0, "", "", 1}},
        {0, 0, {"value", "0", T0, -0.0, "", "", 0}}, /* a duplicate of the second */
    };
    snapshot_t want, got;
    expect_state(g, false, &want);
    /* The winner is the driver's point: origin outranks tombstone, value and text. */
    assert_string_equal(want.pts[0][0].origin, "drv-1");
    int perm[NPTS] = {0, 1, 2, 3, 4, 5};
    do {
        world_t w;
        apply_perm(&w, false, g, perm, false);
        snapshot_take(&w, false, &got);
        snapshot_assert_equal(&got, &want);
        sprig_tree_close(w.t);
    } while (next_perm(perm, NPTS));

    /* Without the driver's point the tombstone wins; without that, -0.0 beats text "a"
     * (value bits before text), and -0.0 beats 0.0. */
    g[2].p.origin = "";
    g[2].p.value = 0.0;
    expect_state(g, false, &want);
    assert_int_equal(want.pts[0][0].tombstone, 1);
    g[4].p.tombstone = 0;
    expect_state(g, false, &want);
    assert_int_equal(want.pts[0][0].vbits, bits(-0.0));
    assert_string_equal(want.pts[0][0].text, "");
    int perm2[NPTS] = {0, 1, 2, 3, 4, 5};
    do {
        world_t w;
        apply_perm(&w, false, g, perm2, false);
        snapshot_take(&w, false, &got);
        snapshot_assert_equal(&got, &want);
        sprig_tree_close(w.t);
    } while (next_perm(perm2, NPTS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_time_first),
        cmocka_unit_test(test_order_origin_bytes),
        cmocka_unit_test(test_order_tombstone),
        cmocka_unit_test(test_order_value_bits),
        cmocka_unit_test(test_order_text_bytes),
        cmocka_unit_test(test_equal_points),
        cmocka_unit_test(test_wins_null),
        cmocka_unit_test(test_cmp_matches_reference),
        cmocka_unit_test(test_permutations_fixed_ties),
        cmocka_unit_test(test_permutations_node_points),
        cmocka_unit_test(test_permutations_edge_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
