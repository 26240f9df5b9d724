/* Unit tests of the load checks (check.h) that the daemon and `sprig store verify` share:
 * rows written into a database as a person with sqlite3 could (through the store, which
 * checks nothing, or through SQL), then loaded: each bad row is reported once, of the
 * right kind, and left out of the tree; the newest edge of each cycle is left out; and
 * thousands of random graphs come out with no cycle, having lost only edges that closed
 * one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/check.h"
#include "sprig/err.h"
#include "sprig/hash.h"
#include "sprig/store.h"
#include "sprig/tree.h"
#include "testutil.h"

typedef struct fx {
    char dir[PATH_MAX], path[PATH_MAX];
    sprig_store_t *s;
    sprig_tree_t *t;
    /* What the callback saw. */
    int kinds[64];
    char what[64][1024];
    char up[64][16], down[64][16]; /* the edges of SPRIG_CHECK_CYCLE, in order */
    int n;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    sprig_error_t err = {{0}};
    assert_non_null(f);
    assert_int_equal(tu_tmpdir(f->dir), 0);
    tu_path(f->path, f->dir, "check.db");
    assert_int_equal(sprig_store_open(f->path, NULL, NULL, &f->s, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    sprig_tree_close(f->t);
    assert_int_equal(sprig_store_close(f->s), 0);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static void seen(const sprig_check_problem_t *pr, void *arg)
{
    fx_t *f = arg;
    assert_true(f->n < 64);
    f->kinds[f->n] = (int)pr->kind;
    snprintf(f->what[f->n], sizeof(f->what[f->n]), "%s", pr->what);
    snprintf(f->up[f->n], sizeof(f->up[f->n]), "%s", pr->up != NULL ? pr->up : "");
    snprintf(f->down[f->n], sizeof(f->down[f->n]), "%s", pr->id);
    f->n++;
}

static void node(fx_t *f, const char *id, const char *type)
{
    assert_int_equal(sprig_store_put_node(f->s, id, type), 0);
}

/* A point row with its right hash. */
static void point(fx_t *f, const char *id, const char *type, int64_t time, double value)
{
    sprig_point_t p = {type, "0", time, value, "", "", 0};
    assert_int_equal(sprig_store_put_point(f->s, id, &p, sprig_hash_point(&p)), 0);
}

/* An edge row with its tombstone point (written at time; deleted when tomb), as sprig
 * writes them; time 0 writes the edge alone. */
static void edge(fx_t *f, const char *up, const char *down, int64_t time, bool tomb)
{
    assert_int_equal(sprig_store_put_edge(f->s, up, down), 0);
    if (time != 0) {
        sprig_point_t p = {"tombstone", "0", time, tomb ? 1 : 0, "", "", 0};
        assert_int_equal(sprig_store_put_edge_point(f->s, up, down, &p, sprig_hash_point(&p)), 0);
    }
}

static void sql(fx_t *f, const char *q)
{
    long long ignored;
    assert_int_equal(tu_sql_int(f->path, q, &ignored), SQLITE_OK);
}

static sprig_check_result_t load(fx_t *f)
{
    sprig_check_result_t res;
    assert_int_equal(sprig_store_flush(f->s), 0);
    sprig_tree_close(f->t);
    assert_int_equal(sprig_tree_open(&f->t), 0);
    f->n = 0;
    assert_int_equal(sprig_check_load(f->s, f->t, seen, f, &res), 0);
    /* What is loaded holds no cycle: the hashes build. */
    assert_int_equal(sprig_tree_hash_rebuild(f->t), 0);
    return res;
}

static void no_problem(const sprig_check_result_t *r)
{
    for (int k = 0; k < SPRIG_CHECK_KINDS; k++) {
        assert_int_equal(r->count[k], 0);
    }
}

static sprig_edge_t *find_edge(fx_t *f, const char *up, const char *down)
{
    sprig_node_t *u = sprig_tree_node(f->t, up), *d = sprig_tree_node(f->t, down);
    return u != NULL && d != NULL ? sprig_tree_edge(f->t, u, d) : NULL;
}

/* root -> a -> b -> c, each with a point. */
static void base(fx_t *f)
{
    node(f, "root", "device");
    node(f, "a", "group");
    node(f, "b", "group");
    node(f, "c", "group");
    edge(f, "root", "a", 100, false);
    edge(f, "a", "b", 200, false);
    edge(f, "b", "c", 300, false);
    point(f, "a", "value", 10, 1);
    point(f, "c", "value", 11, 2);
}

static void t_clean(void **state)
{
    fx_t *f = *state;
    base(f);
    sprig_check_result_t r = load(f);
    no_problem(&r);
    assert_int_equal(f->n, 0);
    assert_int_equal(r.rows, 4 + 3 + 2 + 3);
    assert_int_equal(r.max_time, 300);
    assert_int_equal(sprig_tree_node_count(f->t), 4);
    assert_non_null(find_edge(f, "b", "c"));
    char line[256];
    assert_false(sprig_check_summary(&r, line, sizeof(line)));
}

static void t_bad_values(void **state)
{
    fx_t *f = *state;
    base(f);
    point(f, "a", "inf", 12, INFINITY);
    point(f, "b", "minf", 13, -INFINITY);
    point(f, "c", "nan", 14, 0);
    assert_int_equal(sprig_store_flush(f->s), 0);
    /* SQLite stores no NaN (it binds NULL): a person's 'nan' lands as text. */
    sql(f, "UPDATE points SET value = 'nan' WHERE node = 'c' AND type = 'nan'");
    sprig_point_t bad[] = {
        {"value", "0", 15, 1, "", "bad origin!", 0},
        {"value", "0", 16, 1, "", "", 7},
        {"value", "0", 0, 1, "", "", 0},
        {"bad type", "0", 17, 1, "", "", 0},
    };
    for (int i = 0; i < 4; i++) {
        /* "a" has a valid value point already: the bad ones go on other (node, type). */
        char id[8];
        snprintf(id, sizeof(id), "x%d", i);
        node(f, id, "group");
        assert_int_equal(sprig_store_put_point(f->s, id, &bad[i], sprig_hash_point(&bad[i])), 0);
    }
    /* The store writes a tombstone as 0 or 1: a person's 7 goes in by SQL. */
    assert_int_equal(sprig_store_flush(f->s), 0);
    sql(f, "UPDATE points SET tombstone = 7 WHERE node = 'x1'");
    sprig_check_result_t r = load(f);
    assert_int_equal(r.count[SPRIG_CHECK_POINT], 7);
    assert_int_equal(f->n, 7);
    const char *words[] = {
        "inf is not a finite number", "-inf is not a finite number", "nan is not a finite number",
        "origin \"bad origin!\"",     "tombstone = 7 is not 0 or 1", "time = 0 is not after 1970",
        "type \"bad type\""};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(f->kinds[i], SPRIG_CHECK_POINT);
        bool found = false;
        for (int j = 0; j < f->n; j++) {
            found = found || strstr(f->what[j], words[i]) != NULL;
        }
        if (!found) {
            fail_msg("no problem says \"%s\"", words[i]);
        }
    }
    /* Left out: the nodes fall back to having no such point. */
    assert_null(sprig_tree_point(f->t, sprig_tree_node(f->t, "a"), "inf", NULL));
    assert_null(sprig_tree_point(f->t, sprig_tree_node(f->t, "c"), "nan", NULL));
    assert_null(sprig_node_points(sprig_tree_node(f->t, "x0")));
    assert_non_null(sprig_tree_point(f->t, sprig_tree_node(f->t, "a"), "value", NULL));
    char line[256];
    assert_true(sprig_check_summary(&r, line, sizeof(line)));
    assert_string_equal(line, "7 points that are not valid left out");
}

static void t_bad_nodes(void **state)
{
    fx_t *f = *state;
    base(f);
    node(f, "bad id/\xc3\xa9", "group");
    node(f, "untyped", "");
    edge(f, "a", "bad id/\xc3\xa9", 400, false);
    edge(f, "untyped", "c", 401, false);
    point(f, "bad id/\xc3\xa9", "value", 20, 1);
    point(f, "untyped", "value", 21, 1);
    point(f, "ghost", "value", 22, 1);
    sprig_check_result_t r = load(f);
    assert_int_equal(r.count[SPRIG_CHECK_NODE], 2);
    /* Their 2 edges, the edges' 2 points, their 2 points, and a point of no node at all. */
    assert_int_equal(r.count[SPRIG_CHECK_ORPHAN], 7);
    assert_null(sprig_tree_node(f->t, "bad id/\xc3\xa9"));
    assert_null(sprig_tree_node(f->t, "untyped"));
    assert_int_equal(sprig_tree_node_count(f->t), 4);
    /* Named escaped, with the rule broken. */
    assert_non_null(strstr(f->what[0], "node \"bad id/\\xc3\\xa9\" of type \"group\": its id is "
                                       "not 1-64 bytes"));
    assert_non_null(strstr(f->what[1], "node \"untyped\" of type \"\": its type is not"));
    bool ghost = false, left_out = false;
    for (int i = 0; i < f->n; i++) {
        ghost = ghost || strstr(f->what[i], "\"ghost\", which does not exist") != NULL;
        left_out = left_out || strstr(f->what[i], "\"untyped\", which is not valid") != NULL;
    }
    assert_true(ghost);
    assert_true(left_out);
}

static void t_hash_mismatch_loaded(void **state)
{
    fx_t *f = *state;
    base(f);
    assert_int_equal(sprig_store_flush(f->s), 0);
    sql(f, "UPDATE points SET value = 5 WHERE node = 'c'");
    sprig_check_result_t r = load(f);
    assert_int_equal(r.count[SPRIG_CHECK_HASH], 1);
    assert_int_equal(f->n, 1);
    assert_non_null(strstr(f->what[0], "node \"c\": point value/0 does not match its stored"));
    const sprig_point_t *p = sprig_tree_point(f->t, sprig_tree_node(f->t, "c"), "value", NULL);
    assert_non_null(p);
    assert_true(p->value == 5); /* the row's content is the truth */
    char line[256];
    assert_true(sprig_check_summary(&r, line, sizeof(line)));
    assert_string_equal(line, "1 row changed outside sprig (loaded as they are)");
}

/* The cycles of the brief: of 2, of 3, an edge to itself; the newest edge goes. */
static void t_cycles(void **state)
{
    fx_t *f = *state;
    base(f);
    edge(f, "b", "a", 900, false);      /* a <-> b: newer than a -> b (200) */
    edge(f, "c", "a", 50, false);       /* a -> b -> c -> a: c -> a is the oldest; b -> c goes */
    edge(f, "root", "root", 60, false); /* to itself */
    sprig_check_result_t r = load(f);
    assert_int_equal(r.count[SPRIG_CHECK_CYCLE], 3);
    assert_int_equal(f->n, 3);
    assert_null(find_edge(f, "b", "a"));
    assert_null(find_edge(f, "b", "c"));
    assert_null(find_edge(f, "root", "root"));
    assert_non_null(find_edge(f, "a", "b"));
    assert_non_null(find_edge(f, "c", "a"));
    assert_non_null(find_edge(f, "root", "a"));
    bool two = false, three = false, self = false;
    for (int i = 0; i < f->n; i++) {
        assert_int_equal(f->kinds[i], SPRIG_CHECK_CYCLE);
        two = two || strstr(f->what[i], "edge \"b\" -> \"a\": closes the cycle") != NULL;
        three = three || strstr(f->what[i], "edge \"b\" -> \"c\": closes the cycle") != NULL;
        self = self || strstr(f->what[i], "edge \"root\" -> \"root\": closes the cycle root -> "
                                          "root (an edge to itself)") != NULL;
    }
    assert_true(two);
    assert_true(three);
    assert_true(self);
}

static void t_cycle_edge_without_points_goes(void **state)
{
    fx_t *f = *state;
    base(f);
    edge(f, "c", "b", 0, false); /* no points: written outside sprig */
    load(f);
    assert_null(find_edge(f, "c", "b"));
    assert_non_null(find_edge(f, "b", "c"));
    assert_non_null(strstr(f->what[0], "it is its newest edge (it has no points)"));
}

static void t_tombstoned_edge_is_no_cycle(void **state)
{
    fx_t *f = *state;
    base(f);
    edge(f, "c", "a", 999, true); /* deleted: a -> b -> c -> a is not live */
    sprig_check_result_t r = load(f);
    no_problem(&r);
    assert_non_null(find_edge(f, "c", "a"));
}

/* Random graphs of 6 nodes with up to 12 edges at random times: after the load no live
 * cycle is left, and each edge left out closes one in what was loaded. */
static void t_random_graphs(void **state)
{
    fx_t *f = *state;
    const char *ids[] = {"n0", "n1", "n2", "n3", "n4", "n5"};
    srand(15);
    for (int round = 0; round < 300; round++) {
        sql(f, "DELETE FROM nodes");
        sql(f, "DELETE FROM edges");
        sql(f, "DELETE FROM edge_points");
        for (int i = 0; i < 6; i++) {
            node(f, ids[i], "group");
        }
        bool have[6][6] = {{false}};
        int edges = 0;
        for (int k = rand() % 13; k > 0; k--) {
            int u = rand() % 6, d = rand() % 6;
            if (have[u][d]) {
                continue;
            }
            have[u][d] = true;
            edges++;
            edge(f, ids[u], ids[d], rand() % 4 == 0 ? 0 : 1 + rand() % 50, rand() % 5 == 0);
        }
        sprig_check_result_t r = load(f); /* hash rebuild asserts no cycle is left */
        int kept = 0;
        for (int u = 0; u < 6; u++) {
            for (int d = 0; d < 6; d++) {
                kept += find_edge(f, ids[u], ids[d]) != NULL;
            }
        }
        assert_int_equal((size_t)(edges - kept), r.count[SPRIG_CHECK_CYCLE]);
        assert_int_equal(f->n, edges - kept);
        sprig_edge_t **cyc;
        size_t n;
        assert_int_equal(sprig_tree_find_cycle(f->t, &cyc, &n), 0);
        assert_int_equal(n, 0);
        assert_null(cyc);
        /* Put back in the reverse order they were left out, each closed a cycle then. */
        for (int i = f->n - 1; i >= 0; i--) {
            sprig_node_t *u = sprig_tree_node(f->t, f->up[i]),
                         *d = sprig_tree_node(f->t, f->down[i]);
            assert_true(sprig_tree_would_cycle(f->t, u, d));
            assert_non_null(sprig_tree_edge_add(f->t, u, d));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(t_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(t_bad_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(t_hash_mismatch_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(t_cycles, setup, teardown),
        cmocka_unit_test_setup_teardown(t_cycle_edge_without_points_goes, setup, teardown),
        cmocka_unit_test_setup_teardown(t_tombstoned_edge_is_no_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(t_random_graphs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
