/* Unit tests of the driver manager (driver.h) with the signalGenerator driver, on a real
 * loop and a core over a temporary database: instances start for live nodes, write through
 * the core with their node's id as origin, restart on a config change, stay down on a bad
 * config while the daemon goes on, and stop when their node is deleted. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "sprig/driver.h"
#include "testutil.h"

#define MAX_VALUES 4096

typedef struct watch {
    char node[72];
    double values[MAX_VALUES];
    int n;
    int bad_origin;
} watch_t;

typedef struct fx {
    char dir[PATH_MAX];
    char path[PATH_MAX];
    uv_loop_t loop;
    sprig_core_t *c;
    sprig_drivers_t *d;
    watch_t w[2];
} fx_t;

static void on_value(const sprig_event_t *ev, void *arg)
{
    watch_t *w = arg;
    if (strcmp(ev->point->origin, w->node) != 0) {
        w->bad_origin++;
    }
    if (w->n < MAX_VALUES) {
        w->values[w->n] = ev->point->value;
    }
    w->n++;
}

/* Follows the `value` points of node into slot k. */
static void watch(fx_t *f, int k, const char *node)
{
    watch_t *w = &f->w[k];
    memset(w, 0, sizeof(*w));
    snprintf(w->node, sizeof(w->node), "%s", node);
    sprig_bus_filter_t flt = {.node = node, .point_type = "value"};
    assert_int_equal(sprig_bus_subscribe(sprig_core_bus(f->c), &flt, on_value, w, NULL), 0);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tu_tmpdir(f->dir), 0);
    tu_path(f->path, f->dir, "drv.db");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    sprig_core_opts_t o = {.db_path = f->path};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_open(&f->loop, &o, &f->c, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    sprig_drivers_stop(f->d);
    assert_int_equal(sprig_core_close(f->c), 0);
    assert_int_equal(tu_loop_finish(&f->loop), 0);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static void start(fx_t *f)
{
    assert_int_equal(sprig_drivers_start(f->c, sprig_drivers, &f->d), 0);
    assert_non_null(f->d);
}

/* Creates a signalGenerator under the root with the given config. */
static void create_sg(fx_t *f, const char *id, const char *kind, double rate, double amplitude,
                      double disabled)
{
    sprig_point_t pts[] = {
        {.type = "signalType", .text = kind}, {.type = "sampleRate", .value = rate},
        {.type = "period", .value = 1},       {.type = "amplitude", .value = amplitude},
        {.type = "offset", .value = 10},      {.type = "disabled", .value = disabled},
    };
    sprig_error_t err = {{0}};
    int rc = sprig_core_create(f->c, id, "signalGenerator", sprig_core_root_id(f->c), pts, 6, NULL,
                               NULL, &err);
    if (rc != 0) {
        fail_msg("create %s: %d %s", id, rc, err.msg);
    }
}

typedef struct want {
    watch_t *w;
    int n;
} want_t;

static bool enough(void *arg)
{
    want_t *x = arg;
    return x->w->n >= x->n;
}

static bool wait_values(fx_t *f, int k, int n)
{
    want_t x = {&f->w[k], n};
    return tu_run_until(&f->loop, enough, &x, 3000);
}

static void t_sine(void **state)
{
    fx_t *f = *state;
    start(f);
    watch(f, 0, "sg-1");
    create_sg(f, "sg-1", "sine", 100, 2, 0);
    assert_true(wait_values(f, 0, 20));
    assert_int_equal(sprig_drivers_running(f->d), 1);
    assert_int_equal(f->w[0].bad_origin, 0); /* origin = the node's id */
    double lo = 1e9, hi = -1e9;
    for (int i = 0; i < f->w[0].n && i < MAX_VALUES; i++) {
        double v = f->w[0].values[i];
        assert_true(v >= 8 - 1e-9 && v <= 12 + 1e-9);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(hi > lo); /* it moves */
    const sprig_point_t *p = sprig_tree_point(
        sprig_core_tree(f->c), sprig_tree_node(sprig_core_tree(f->c), "sg-1"), "value", NULL);
    assert_non_null(p);
    assert_string_equal(p->origin, "sg-1");
}

static void t_square_and_restart(void **state)
{
    fx_t *f = *state;
    start(f);
    watch(f, 0, "sq");
    create_sg(f, "sq", "square", 100, 2, 0);
    assert_true(wait_values(f, 0, 10));
    for (int i = 0; i < f->w[0].n && i < MAX_VALUES; i++) {
        double v = f->w[0].values[i];
        assert_true(v == 12 || v == 8);
    }
    /* A person changes the amplitude: the instance restarts with it. */
    sprig_point_t amp = {.type = "amplitude", .value = 5};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_write(f->c, "sq", &amp, 1, NULL, &err), 0);
    int from = f->w[0].n;
    bool seen_new = false;
    for (int round = 0; round < 300 && !seen_new; round++) {
        tu_run_for(&f->loop, 10);
        for (int i = from; i < f->w[0].n && i < MAX_VALUES; i++) {
            seen_new = seen_new || f->w[0].values[i] == 15 || f->w[0].values[i] == 5;
        }
    }
    assert_true(seen_new);
    from = f->w[0].n;
    assert_true(wait_values(f, 0, from + 10));
    for (int i = from; i < f->w[0].n && i < MAX_VALUES; i++) {
        double v = f->w[0].values[i];
        assert_true(v == 15 || v == 5);
    }
    assert_int_equal(sprig_drivers_running(f->d), 1);
    assert_int_equal(f->w[0].bad_origin, 0);
}

static void t_existing_node_started(void **state)
{
    fx_t *f = *state;
    create_sg(f, "early", "triangle", 100, 1, 0); /* before the manager starts */
    watch(f, 0, "early");
    start(f);
    assert_true(wait_values(f, 0, 5));
    for (int i = 0; i < f->w[0].n && i < MAX_VALUES; i++) {
        assert_true(f->w[0].values[i] >= 9 - 1e-9 && f->w[0].values[i] <= 11 + 1e-9);
    }
}

static void t_bad_config_not_started(void **state)
{
    fx_t *f = *state;
    start(f);
    watch(f, 0, "bad-kind");
    watch(f, 1, "good");
    create_sg(f, "bad-kind", "sawtooth", 100, 2, 0);
    create_sg(f, "bad-rate", "sine", 0, 2, 0);
    create_sg(f, "good", "sine", 100, 2, 0);
    assert_true(wait_values(f, 1, 10)); /* the daemon goes on */
    assert_int_equal(sprig_drivers_running(f->d), 1);
    assert_int_equal(f->w[0].n, 0);
    sprig_tree_t *t = sprig_core_tree(f->c);
    assert_null(sprig_tree_point(t, sprig_tree_node(t, "bad-kind"), "value", NULL));
    assert_null(sprig_tree_point(t, sprig_tree_node(t, "bad-rate"), "value", NULL));
    /* And writes from elsewhere still go through. */
    sprig_point_t p = {.type = "note", .text = "still here"};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_write(f->c, "bad-rate", &p, 1, NULL, &err), 0);
}

/* A node whose config was refused starts once a person fixes the config. */
static void t_fixed_config_starts(void **state)
{
    fx_t *f = *state;
    start(f);
    watch(f, 0, "late");
    create_sg(f, "late", "sine", 0, 2, 0);
    tu_run_for(&f->loop, 50);
    assert_int_equal(sprig_drivers_running(f->d), 0);
    sprig_point_t rate = {.type = "sampleRate", .value = 100};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_write(f->c, "late", &rate, 1, NULL, &err), 0);
    bool ok = wait_values(f, 0, 5);
    if (!ok) {
        fail_msg("node late: sampleRate fixed from 0 to 100, but the driver stayed down "
                 "(running %zu, values %d)",
                 sprig_drivers_running(f->d), f->w[0].n);
    }
}

static bool none_running(void *arg)
{
    return sprig_drivers_running(arg) == 0;
}

static void t_delete_stops(void **state)
{
    fx_t *f = *state;
    start(f);
    watch(f, 0, "gone");
    create_sg(f, "gone", "sine", 100, 2, 0);
    assert_true(wait_values(f, 0, 5));
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_delete(f->c, "gone", sprig_core_root_id(f->c), NULL, &err), 0);
    assert_true(tu_run_until(&f->loop, none_running, f->d, 2000));
    int n = f->w[0].n;
    tu_run_for(&f->loop, 200);
    assert_int_equal(f->w[0].n, n); /* no value after it stopped */

    /* Restored under its parent, it runs again. */
    sprig_point_t alive = {.type = "tombstone", .value = 0};
    assert_int_equal(
        sprig_core_write_edge(f->c, sprig_core_root_id(f->c), "gone", &alive, 1, NULL, &err), 0);
    assert_true(wait_values(f, 0, n + 5));
    assert_int_equal(sprig_drivers_running(f->d), 1);
}

static void t_disabled_writes_nothing(void **state)
{
    fx_t *f = *state;
    start(f);
    watch(f, 0, "off");
    create_sg(f, "off", "sine", 100, 2, 1);
    tu_run_for(&f->loop, 300);
    assert_int_equal(f->w[0].n, 0);
    sprig_tree_t *t = sprig_core_tree(f->c);
    assert_null(sprig_tree_point(t, sprig_tree_node(t, "off"), "value", NULL));
    /* Enabled again, it writes. */
    sprig_point_t on = {.type = "disabled", .value = 0};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_write(f->c, "off", &on, 1, NULL, &err), 0);
    assert_true(wait_values(f, 0, 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_sine, setup, teardown),
        cmocka_unit_test_setup_teardown(t_square_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(t_existing_node_started, setup, teardown),
        cmocka_unit_test_setup_teardown(t_bad_config_not_started, setup, teardown),
        cmocka_unit_test_setup_teardown(t_fixed_config_starts, setup, teardown),
        cmocka_unit_test_setup_teardown(t_delete_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(t_disabled_writes_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
