/* Unit tests of the Merkle hash functions (hash.h, DESIGN.md section 4): ph() is XXH3-64
 * of the canonical encoding of a point, every field takes part, the encoding is
 * length-prefixed, the streaming path for long texts gives the same bytes, contrib()
 * covers child id, sub and edge hash, and identical sibling subtrees do not cancel. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <xxhash.h>

#include "sprig/hash.h"
#include "sprig/tree.h"

#define T0 (1767225600LL * 1000000000LL)

/* --- The canonical encoding, written out from hash.h ------------------------------ */

typedef struct enc {
    unsigned char *b;
    size_t n, cap;
} enc_t;

static void enc_bytes(enc_t *e, const void *p, size_t n)
{
    if (e->n + n > e->cap) {
        e->cap = (e->n + n) * 2;
        e->b = realloc(e->b, e->cap);
        assert_non_null(e->b);
    }
    if (n > 0) {
        memcpy(e->b + e->n, p, n);
    }
    e->n += n;
}

static void enc_u32(enc_t *e, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    enc_bytes(e, b, 4);
}

static void enc_u64(enc_t *e, uint64_t v)
{
    enc_u32(e, (uint32_t)v);
    enc_u32(e, (uint32_t)(v >> 32));
}

static void enc_str(enc_t *e, const char *s)
{
    enc_u32(e, (uint32_t)strlen(s));
    enc_bytes(e, s, strlen(s));
}

/* XXH3-64 of the encoding of p built by hand in one buffer (the library's one-shot call,
 * not sprig's code path). */
static uint64_t ref_ph(const sprig_point_t *p)
{
    enc_t e = {NULL, 0, 0};
    uint64_t vbits;
    memcpy(&vbits, &p->value, sizeof(vbits));
    enc_str(&e, p->type);
    enc_str(&e, p->key != NULL ? p->key : "0");
    enc_u64(&e, (uint64_t)p->time);
    enc_u64(&e, vbits);
    enc_str(&e, p->text != NULL ? p->text : "");
    unsigned char tomb = (unsigned char)(p->tombstone != 0);
    enc_bytes(&e, &tomb, 1);
    enc_str(&e, p->origin != NULL ? p->origin : "");
    uint64_t h = XXH3_64bits(e.b, e.n);
    free(e.b);
    return h;
}

static uint64_t ref_contrib(const char *id, uint64_t sub, uint64_t exor)
{
    enc_t e = {NULL, 0, 0};
    enc_str(&e, id);
    enc_u64(&e, sub);
    enc_u64(&e, exor);
    uint64_t h = XXH3_64bits(e.b, e.n);
    free(e.b);
    return h;
}

static sprig_point_t base_point(void)
{
    sprig_point_t p = {"value", "0", T0, 21.5, "", "", 0};
    return p;
}

/* --- ph ---------------------------------------------------------------------------- */

static void test_ph_pinned(void **state)
{
    (void)state;
    /* These constants pin the canonical encoding, which is the wire and disk format:
     * replicas compare these hashes to decide what to sync, so a change here breaks sync
     * with every instance already deployed. They were computed with the encoding of
     * hash.h as it stands; change them only together with a format version bump. */
    sprig_point_t a = base_point();
    sprig_point_t b = {"description", "0", 1, -0.0, "pump 1", "drv-1", 1};
    sprig_point_t c = {"baud", "port:2", T0 + 123456789, 9600.0, "\xc3\xa9t\xc3\xa9", "", 0};
    assert_int_equal(sprig_hash_point(&a), 0x93062dd0fc35287dULL);
    assert_int_equal(sprig_hash_point(&b), 0xbfb4e50b6f9809acULL);
    assert_int_equal(sprig_hash_point(&c), 0xb4ff86ed4fbc8555ULL);
    assert_int_equal(sprig_hash_contrib("n1", 0x0123456789abcdefULL, 0xfedcba9876543210ULL),
                     0x40d90e92ad399504ULL);
    assert_int_equal(sprig_hash_contrib("root", 0, 0), 0x59a9416c95fdf331ULL);
}

static void test_ph_is_xxh3_of_encoding(void **state)
{
    (void)state;
    sprig_point_t pts[] = {
        base_point(),
        {"description", "0", 1, -0.0, "pump 1", "drv-1", 1},
        {"value", "17", -5, 1e300, "x", "rule-7", 0},
        {"t", "k", INT64_MAX, -1.0, "", "o", 1},
    };
    for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
        assert_int_equal(sprig_hash_point(&pts[i]), ref_ph(&pts[i]));
        /* Stable: the same input gives the same hash every time. */
        assert_int_equal(sprig_hash_point(&pts[i]), sprig_hash_point(&pts[i]));
    }
}

static void test_ph_every_field_counts(void **state)
{
    (void)state;
    enum { N = 12 };
    sprig_point_t v[N];
    for (int i = 0; i < N; i++) {
        v[i] = base_point();
    }
    v[1].type = "valueSet";
    v[2].key = "1";
    v[3].time = T0 + 1;
    v[4].value = 21.500000000000004; /* one ulp away */
    v[5].text = "x";
    v[6].tombstone = 1;
    v[7].origin = "drv-1";
    v[8].value = 0.0;
    v[9].value = -0.0; /* the sign of zero is a different value */
    v[10].text = " ";
    v[11].origin = "drv-2";
    uint64_t h[N];
    for (int i = 0; i < N; i++) {
        h[i] = sprig_hash_point(&v[i]);
        assert_int_equal(h[i], ref_ph(&v[i]));
    }
    for (int i = 0; i < N; i++) {
        for (int j = i + 1; j < N; j++) {
            if (h[i] == h[j]) {
                fail_msg("points %d and %d hash alike: %016llx", i, j, (unsigned long long)h[i]);
            }
        }
    }
}

static void test_ph_null_defaults(void **state)
{
    (void)state;
    sprig_point_t full = {"value", "0", T0, 1.0, "", "", 0};
    sprig_point_t nulls = {"value", NULL, T0, 1.0, NULL, NULL, 0};
    assert_int_equal(sprig_hash_point(&nulls), sprig_hash_point(&full));

    sprig_point_t k = full, t = full, o = full;
    k.key = NULL;
    t.text = NULL;
    o.origin = NULL;
    assert_int_equal(sprig_hash_point(&k), sprig_hash_point(&full));
    assert_int_equal(sprig_hash_point(&t), sprig_hash_point(&full));
    assert_int_equal(sprig_hash_point(&o), sprig_hash_point(&full));

    /* NULL key means "0", not "". */
    sprig_point_t empty_key = full;
    empty_key.key = "";
    assert_true(sprig_hash_point(&empty_key) != sprig_hash_point(&k));
}

static void test_ph_length_prefixed(void **state)
{
    (void)state;
    /* Without length prefixes these pairs would encode to the same bytes. */
    sprig_point_t a = base_point(), b = base_point();
    a.type = "ab";
    a.key = "c";
    b.type = "a";
    b.key = "bc";
    assert_true(sprig_hash_point(&a) != sprig_hash_point(&b));

    a = base_point(), b = base_point();
    a.type = "value0";
    a.key = "";
    b.type = "value";
    b.key = "0";
    assert_true(sprig_hash_point(&a) != sprig_hash_point(&b));

    a = base_point(), b = base_point();
    a.key = "12";
    b.type = "value1";
    b.key = "2";
    assert_true(sprig_hash_point(&a) != sprig_hash_point(&b));
}

static void long_text_case(size_t len)
{
    char *text = malloc(len + 1);
    assert_non_null(text);
    for (size_t i = 0; i < len; i++) {
        text[i] = (char)('a' + i % 26);
    }
    text[len] = '\0';
    sprig_point_t p = {"value", "0", T0, 3.25, text, "drv-1", 1};
    uint64_t h = sprig_hash_point(&p);
    assert_int_equal(h, ref_ph(&p));
    /* The last byte of a long text still counts. */
    text[len - 1] = 'Z';
    assert_true(sprig_hash_point(&p) != h);
    assert_int_equal(sprig_hash_point(&p), ref_ph(&p));
    free(text);
}

static void test_ph_long_text(void **state)
{
    (void)state;
    /* Encoding size is 33 bytes + the four strings; with "value", "0", "drv-1" that is
     * 44 + text. hash.c encodes up to 512 bytes on the stack and streams beyond, so
     * cover both sides of that edge and well past it. */
    long_text_case(467); /* 511 bytes */
    long_text_case(468); /* 512 */
    long_text_case(469); /* 513: the streaming path */
    long_text_case(600);
    long_text_case(SPRIG_TEXT_MAX_DEFAULT);
}

/* --- contrib ------------------------------------------------------------------------ */

static void test_contrib(void **state)
{
    (void)state;
    uint64_t sub = 0x1111222233334444ULL, ex = 0x5555666677778888ULL;
    uint64_t h = sprig_hash_contrib("n1", sub, ex);
    assert_int_equal(h, ref_contrib("n1", sub, ex));
    assert_int_equal(sprig_hash_contrib("n1", sub, ex), h);
    /* Each input changes it. */
    assert_true(sprig_hash_contrib("n2", sub, ex) != h);
    assert_true(sprig_hash_contrib("n1", sub ^ 1, ex) != h);
    assert_true(sprig_hash_contrib("n1", sub, ex ^ 1) != h);
    assert_true(sprig_hash_contrib("n1", sub, 0) != h);
    /* sub and edge xor are separate fields, not combined. */
    assert_true(sprig_hash_contrib("n1", ex, sub) != h);
    assert_true(sprig_hash_contrib("n1", sub ^ ex, 0) != sprig_hash_contrib("n1", 0, sub ^ ex));
    /* Even an empty child with no edge points contributes something. */
    assert_true(sprig_hash_contrib("n1", 0, 0) != 0);
    assert_int_equal(sprig_hash_contrib("n1", 0, 0), ref_contrib("n1", 0, 0));
    /* A 64-byte id, the longest allowed. */
    const char *id64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_int_equal(strlen(id64), SPRIG_ID_MAX);
    assert_int_equal(sprig_hash_contrib(id64, sub, ex), ref_contrib(id64, sub, ex));
}

/* --- In the tree --------------------------------------------------------------------- */

static void add_node(sprig_tree_t *t, const char *id, sprig_node_t **out)
{
    assert_int_equal(sprig_tree_node_add(t, id, "variable", out), 0);
}

static void put(sprig_tree_t *t, sprig_node_t *n, const char *type, double value)
{
    sprig_point_t p = {type, "0", T0, value, "same", "drv-1", 0};
    assert_int_equal(sprig_tree_point_put(t, n, &p), 1);
}

static void test_identical_siblings_do_not_cancel(void **state)
{
    (void)state;
    /* A parent alone, with one point of its own. */
    sprig_tree_t *alone;
    sprig_node_t *r0;
    assert_int_equal(sprig_tree_open(&alone), 0);
    assert_int_equal(sprig_tree_node_add(alone, "root", "device", &r0), 0);
    sprig_tree_set_root(alone, r0);
    put(alone, r0, "description", 1.0);
    uint64_t alone_hash = sprig_tree_root_hash(alone);
    assert_int_equal(alone_hash, sprig_node_own_hash(r0));
    assert_true(alone_hash != 0);

    /* The same parent with two children holding identical points: their subtrees hash
     * alike, and without the child id in contrib they would XOR away to nothing. */
    sprig_tree_t *t;
    sprig_node_t *root, *a, *b;
    assert_int_equal(sprig_tree_open(&t), 0);
    assert_int_equal(sprig_tree_node_add(t, "root", "device", &root), 0);
    sprig_tree_set_root(t, root);
    put(t, root, "description", 1.0);
    add_node(t, "a", &a);
    add_node(t, "b", &b);
    assert_non_null(sprig_tree_edge_add(t, root, a));
    assert_non_null(sprig_tree_edge_add(t, root, b));
    put(t, a, "value", 5.0);
    put(t, b, "value", 5.0);
    put(t, a, "units", 0.0);
    put(t, b, "units", 0.0);

    assert_int_equal(sprig_node_hash(a), sprig_node_hash(b));
    assert_int_equal(sprig_node_own_hash(root), alone_hash);
    uint64_t h = sprig_tree_root_hash(t);
    assert_true(h != alone_hash);
    /* And it is exactly own(root) ^ contrib(a) ^ contrib(b), computed by hand. */
    uint64_t sa = sprig_node_hash(a);
    assert_int_equal(h, alone_hash ^ ref_contrib("a", sa, 0) ^ ref_contrib("b", sa, 0));

    /* Identical grandchildren too: a and b each get a child with the same points. */
    sprig_node_t *a1, *b1;
    add_node(t, "a1", &a1);
    add_node(t, "b1", &b1);
    assert_non_null(sprig_tree_edge_add(t, a, a1));
    assert_non_null(sprig_tree_edge_add(t, b, b1));
    put(t, a1, "value", 7.0);
    put(t, b1, "value", 7.0);
    uint64_t h2 = sprig_tree_root_hash(t);
    assert_true(h2 != h);
    assert_true(h2 != alone_hash);

    /* One node mirrored under both siblings: the same subtree twice does not cancel. */
    sprig_node_t *m;
    add_node(t, "m", &m);
    assert_non_null(sprig_tree_edge_add(t, a, m));
    assert_non_null(sprig_tree_edge_add(t, b, m));
    put(t, m, "value", 9.0);
    uint64_t h3 = sprig_tree_root_hash(t);
    assert_true(h3 != h2);
    assert_true(h3 != alone_hash);
    assert_int_equal(sprig_tree_hash_check(t, NULL, NULL), 0);

    sprig_tree_close(t);
    sprig_tree_close(alone);
}

static void test_tree_keeps_ph(void **state)
{
    (void)state;
    /* The ph kept by the tree is the pure function's, for node and edge points. */
    sprig_tree_t *t;
    sprig_node_t *root, *c;
    assert_int_equal(sprig_tree_open(&t), 0);
    assert_int_equal(sprig_tree_node_add(t, "root", "device", &root), 0);
    sprig_tree_set_root(t, root);
    add_node(t, "c", &c);
    sprig_edge_t *e = sprig_tree_edge_add(t, root, c);
    assert_non_null(e);
    sprig_point_t p = {"value", "3", T0, -0.0, "hi", "drv-1", 0};
    sprig_point_t q = {"tombstone", "0", T0, 0.0, "", "", 0};
    assert_int_equal(sprig_tree_point_put(t, c, &p), 1);
    assert_int_equal(sprig_tree_edge_point_put(t, e, &q), 1);
    const sprig_point_t *sp = sprig_node_point(c, "value", "3");
    const sprig_point_t *sq = sprig_edge_point(e, "tombstone", "0");
    assert_non_null(sp);
    assert_non_null(sq);
    assert_int_equal(sprig_tree_point_hash(sp), sprig_hash_point(&p));
    assert_int_equal(sprig_tree_point_hash(sq), sprig_hash_point(&q));
    assert_int_equal(sprig_node_own_hash(c), sprig_hash_point(&p));
    assert_int_equal(sprig_edge_contrib(e),
                     ref_contrib("c", sprig_hash_point(&p), sprig_hash_point(&q)));
    assert_int_equal(sprig_tree_root_hash(t), sprig_edge_contrib(e));
    sprig_tree_close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ph_pinned),
        cmocka_unit_test(test_ph_is_xxh3_of_encoding),
        cmocka_unit_test(test_ph_every_field_counts),
        cmocka_unit_test(test_ph_null_defaults),
        cmocka_unit_test(test_ph_length_prefixed),
        cmocka_unit_test(test_ph_long_text),
        cmocka_unit_test(test_contrib),
        cmocka_unit_test(test_identical_siblings_do_not_cancel),
        cmocka_unit_test(test_tree_keeps_ph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
