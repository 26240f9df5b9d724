/* The store's contract, the same cases run against each backend: SQLite (a file in a
 * temporary folder) and PostgreSQL (a throwaway server whose URI is in SPRIG_TEST_PG_URI;
 * ctest starts one with tests/integration/pg.py --run). Through the public API only:
 *   - a row written is read back exactly: ids, types, texts with tabs, newlines,
 *     backslashes and non-ASCII, times to the nanosecond up to 2262, doubles bit for bit
 *     (-0, the smallest subnormal, the largest finite), tombstones, stored hashes;
 *   - meta, history pages (range, cursor, newest first) and history in append order;
 *   - a batch is all or nothing: a commit refused half-way (a trigger on history) leaves
 *     none of its rows, is kept, and is written exactly once when the refusal ends;
 *   - a crash loses no acknowledged batch: a child acknowledged batch by batch is killed
 *     with SIGKILL, and every batch it was told was durable is there;
 *   - PostgreSQL only: history older than the age limit goes a whole day's partition at
 *     a time.
 * usage: test_store_contract [pg]   (pg: the PostgreSQL cases only, and they must run) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <string.h>

#include "sprig/err.h"
#include "sprig/store.h"
#include "testutil.h"

typedef struct fx {
    bool pg;
    char dir[PATH_MAX];
    char target[PATH_MAX]; /* a file, or the server's URI */
    uv_loop_t loop;
} fx_t;

/* --- the side door: SQL a person would run, on a connection of the test's own -------- */

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs of DROP ... IF EXISTS */
}

static void side_exec(fx_t *f, const char *sql)
{
    if (f->pg) {
        PGconn *c = PQconnectdb(f->target);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PQsetNoticeProcessor(c, quiet, NULL);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            fail_msg("%s: %s", sql, PQerrorMessage(c));
        }
        PQclear(r);
        PQfinish(c);
        return;
    }
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->target, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("%s: %s", sql, msg);
    }
    sqlite3_close(db);
}

static long long side_int(fx_t *f, const char *sql)
{
    long long v = -1;
    if (f->pg) {
        PGconn *c = PQconnectdb(f->target);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fail_msg("%s: %s", sql, PQerrorMessage(c));
        }
        v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
        PQclear(r);
        PQfinish(c);
        return v;
    }
    assert_int_equal(tu_sql_int(f->target, sql, &v), SQLITE_OK);
    return v;
}

/* --- fixture ------------------------------------------------------------------------- */

static int setup_common(void **state, bool pg)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->pg = pg;
    assert_int_equal(tu_tmpdir(f->dir), 0);
    if (pg) {
        const char *uri = getenv("SPRIG_TEST_PG_URI");
        assert_non_null(uri);
        snprintf(f->target, sizeof(f->target), "%s", uri);
        /* every case starts from an empty database */
        side_exec(f, "DROP TABLE IF EXISTS sprig_layout, sprig_commits, meta, nodes, edges, points,"
                     " edge_points, series, history CASCADE; DROP FUNCTION IF EXISTS no_history()"
                     " CASCADE");
    }
    else {
        tu_path(f->target, f->dir, "contract.db");
    }
    assert_int_equal(uv_loop_init(&f->loop), 0);
    *state = f;
    return 0;
}

static int setup_sqlite(void **state)
{
    return setup_common(state, false);
}

static int setup_pg(void **state)
{
    return setup_common(state, true);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tu_loop_finish(&f->loop), 0);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static sprig_store_t *open_opts(fx_t *f, const sprig_store_opts_t *o, bool with_loop)
{
    sprig_store_t *s = NULL;
    sprig_error_t err = {{0}};
    int rc = sprig_store_open(f->target, o, with_loop ? &f->loop : NULL, &s, &err);
    if (rc != 0) {
        fail_msg("open: %d %s", rc, err.msg);
    }
    return s;
}

static sprig_store_t *open_ok(fx_t *f, bool with_loop)
{
    return open_opts(f, NULL, with_loop);
}

static void close_ok(fx_t *f, sprig_store_t *s)
{
    assert_int_equal(sprig_store_close(s), 0);
    for (int i = 0; i < 100 && uv_loop_alive(&f->loop); i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
}

/* --- rows read back exactly ---------------------------------------------------------- */

static const char *const texts[] = {
    "", "plain", "tab\there", "line\nbreak", "cr\r\nlf", "back\\slash", "\\N", "ünïcødé ✓ 温度",
};
static const double values[] = {
    0.0, -0.0, 0.1, -1e-300, 5e-324, 1.7976931348623157e308, -2.5, 123456789.125,
};
static const int64_t times[] = {
    1, 1700000000123456789LL, INT64_MAX, 999999999LL, 2, 3, 4, 5,
};

typedef struct seen {
    int nodes, edges, points, edge_points;
    bool bad;
    char why[256];
} seen_t;

static int v_node(const char *id, const char *type, void *arg)
{
    seen_t *s = arg;
    if (strcmp(id, "tank-1") == 0 && strcmp(type, "tank") == 0) {
        s->nodes++;
    }
    else if (strcmp(id, "root") == 0 && strcmp(type, "device") == 0) {
        s->nodes++;
    }
    else {
        s->bad = true;
        snprintf(s->why, sizeof(s->why), "node %s %s", id, type);
    }
    return 0;
}

static int v_edge(const char *up, const char *down, void *arg)
{
    seen_t *s = arg;
    s->edges += strcmp(up, "root") == 0 && strcmp(down, "tank-1") == 0;
    return 0;
}

static bool same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof(a)) == 0;
}

static bool point_ok(const sprig_point_t *p, uint64_t hash, seen_t *s)
{
    int i = atoi(p->key);
    if (i < 0 || i >= 8 || strcmp(p->type, "level") != 0) {
        snprintf(s->why, sizeof(s->why), "point %s/%s", p->type, p->key);
        return false;
    }
    if (p->time != times[i] || !same_bits(p->value, values[i]) ||
        strcmp(p->text, texts[i]) != 0 || p->tombstone != (i == 3) ||
        strcmp(p->origin, i == 2 ? "gw-2" : "") != 0 || hash != 0xfedcba9876543210ULL + (uint64_t)i) {
        snprintf(s->why, sizeof(s->why),
                 "point %d read back as time %lld value %.17g (bits differ: %d) text \"%s\" "
                 "tombstone %d origin \"%s\" hash %llx",
                 i, (long long)p->time, p->value, !same_bits(p->value, values[i]), p->text,
                 p->tombstone, p->origin, (unsigned long long)hash);
        return false;
    }
    return true;
}

static int v_point(const char *node, const sprig_point_t *p, uint64_t hash, void *arg)
{
    seen_t *s = arg;
    if (strcmp(node, "tank-1") != 0 || !point_ok(p, hash, s)) {
        s->bad = true;
    }
    s->points++;
    return 0;
}

static int v_edge_point(const char *up, const char *down, const sprig_point_t *p, uint64_t hash,
                        void *arg)
{
    seen_t *s = arg;
    if (strcmp(up, "root") != 0 || strcmp(down, "tank-1") != 0 || !point_ok(p, hash, s)) {
        s->bad = true;
    }
    s->edge_points++;
    return 0;
}

static sprig_point_t point_i(int i, char *key)
{
    snprintf(key, 4, "%d", i);
    sprig_point_t p = {.type = "level", .key = key, .time = times[i], .value = values[i],
                       .text = texts[i], .origin = i == 2 ? "gw-2" : "", .tombstone = i == 3};
    return p;
}

static void t_rows_read_back_exactly(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, true);
    assert_int_equal(sprig_store_put_node(s, "root", "device"), 0);
    assert_int_equal(sprig_store_put_node(s, "tank-1", "tank"), 0);
    assert_int_equal(sprig_store_put_edge(s, "root", "tank-1"), 0);
    for (int i = 0; i < 8; i++) {
        char key[4];
        sprig_point_t p = point_i(i, key);
        uint64_t h = 0xfedcba9876543210ULL + (uint64_t)i;
        assert_int_equal(sprig_store_put_point(s, "tank-1", &p, h), 0);
        assert_int_equal(sprig_store_put_edge_point(s, "root", "tank-1", &p, h), 0);
    }
    /* a node, edge and point written twice in the batch: the later write stays */
    assert_int_equal(sprig_store_put_node(s, "root", "device"), 0);
    assert_int_equal(sprig_store_put_edge(s, "root", "tank-1"), 0);
    char key[4];
    sprig_point_t p0 = point_i(0, key);
    p0.value = 99;
    assert_int_equal(sprig_store_put_point(s, "tank-1", &p0, 1), 0);
    p0 = point_i(0, key);
    assert_int_equal(sprig_store_put_point(s, "tank-1", &p0, 0xfedcba9876543210ULL), 0);
    assert_int_equal(sprig_store_meta_set(s, "root", "root"), 0);
    assert_int_equal(sprig_store_meta_set(s, "root", "root-2"), 0);
    close_ok(f, s);

    s = open_ok(f, true);
    seen_t seen = {0};
    sprig_store_visitor_t v = {v_node, v_edge, v_point, v_edge_point, &seen};
    assert_int_equal(sprig_store_load(s, &v), 0);
    if (seen.bad) {
        fail_msg("%s", seen.why);
    }
    assert_int_equal(seen.nodes, 2);
    assert_int_equal(seen.edges, 1);
    assert_int_equal(seen.points, 8);
    assert_int_equal(seen.edge_points, 8);
    char out[64];
    assert_int_equal(sprig_store_meta_get(s, "root", out, sizeof(out)), 0);
    assert_string_equal(out, "root-2");
    assert_int_equal(sprig_store_meta_get(s, "nosuch", out, sizeof(out)), -ENOENT);
    close_ok(f, s);
}

/* --- history ------------------------------------------------------------------------- */

typedef struct page {
    int n;
    int64_t times[64];
    int64_t last_id;
    char nodes[64][16];
} page_t;

static int on_sample(const sprig_point_t *p, int64_t id, void *arg)
{
    page_t *pg = arg;
    pg->times[pg->n++] = p->time;
    pg->last_id = id;
    return 0;
}

static int on_after(const char *node, const sprig_point_t *p, int64_t id, void *arg)
{
    page_t *pg = arg;
    snprintf(pg->nodes[pg->n], sizeof(pg->nodes[0]), "%s", node);
    pg->times[pg->n++] = p->time;
    pg->last_id = id;
    return 0;
}

static void t_history_pages(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, true);
    for (int i = 0; i < 40; i++) {
        sprig_point_t p = {.type = "temp", .key = "0", .time = 1000 + i, .value = i,
                           .text = "", .origin = ""};
        assert_int_equal(sprig_store_put_point(s, i % 2 ? "b" : "a", &p, (uint64_t)i), 0);
    }
    assert_int_equal(sprig_store_flush(s), 0);
    /* node a's samples at 1000, 1002, ... 1038; a page of 5 from 1010, then the next */
    sprig_store_history_query_t q = {.node = "a", .type = "temp", .key = "0", .from = 1010,
                                     .to = 1030, .limit = 5};
    page_t pg = {0};
    assert_int_equal(sprig_store_history(s, &q, on_sample, &pg), 5);
    assert_int_equal(pg.times[0], 1010);
    assert_int_equal(pg.times[4], 1018);
    q.after_time = pg.times[4];
    q.after_id = pg.last_id;
    memset(&pg, 0, sizeof(pg));
    assert_int_equal(sprig_store_history(s, &q, on_sample, &pg), 5);
    assert_int_equal(pg.times[0], 1020);
    assert_int_equal(pg.times[4], 1028);
    /* newest first */
    sprig_store_history_query_t d = {.node = "a", .type = "temp", .key = "0", .desc = true,
                                     .limit = 3};
    memset(&pg, 0, sizeof(pg));
    assert_int_equal(sprig_store_history(s, &d, on_sample, &pg), 3);
    assert_int_equal(pg.times[0], 1038);
    assert_int_equal(pg.times[2], 1034);
    /* a series never written */
    sprig_store_history_query_t none = {.node = "c", .type = "temp", .key = "0", .limit = 3};
    assert_int_equal(sprig_store_history(s, &none, on_sample, &pg), 0);
    /* everything in append order, in two pages */
    memset(&pg, 0, sizeof(pg));
    assert_int_equal(sprig_store_history_after(s, 0, 25, on_after, &pg), 25);
    int64_t cursor = pg.last_id;
    for (int i = 0; i < 25; i++) {
        assert_int_equal(pg.times[i], 1000 + i);
        assert_string_equal(pg.nodes[i], i % 2 ? "b" : "a");
    }
    memset(&pg, 0, sizeof(pg));
    assert_int_equal(sprig_store_history_after(s, cursor, 25, on_after, &pg), 15);
    assert_int_equal(pg.times[0], 1025);
    assert_int_equal(pg.times[14], 1039);
    close_ok(f, s);
}

/* --- all or nothing ------------------------------------------------------------------ */

static void refuse_history(fx_t *f, bool on)
{
    if (f->pg) {
        side_exec(f, on ? "CREATE FUNCTION no_history() RETURNS trigger LANGUAGE plpgsql AS"
                          " $$BEGIN RAISE EXCEPTION 'history refused by the test'; END$$;"
                          " CREATE TRIGGER no_history BEFORE INSERT ON history FOR EACH ROW"
                          " EXECUTE FUNCTION no_history()"
                        : "DROP FUNCTION no_history() CASCADE");
    }
    else {
        side_exec(f, on ? "CREATE TRIGGER no_history BEFORE INSERT ON history BEGIN"
                          " SELECT RAISE(ABORT, 'history refused by the test'); END"
                        : "DROP TRIGGER no_history");
    }
}

static void t_batch_all_or_nothing(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, true);
    assert_int_equal(sprig_store_put_node(s, "root", "device"), 0);
    assert_int_equal(sprig_store_flush(s), 0);
    refuse_history(f, true);
    assert_int_equal(sprig_store_put_node(s, "pump", "pump"), 0);
    assert_int_equal(sprig_store_put_edge(s, "root", "pump"), 0);
    for (int i = 0; i < 50; i++) {
        sprig_point_t p = {.type = "speed", .key = "0", .time = 5000 + i, .value = i,
                           .text = "", .origin = ""};
        assert_int_equal(sprig_store_put_point(s, "pump", &p, (uint64_t)i), 0);
    }
    assert_int_not_equal(sprig_store_flush(s), 0);
    sprig_store_health_t h;
    sprig_store_health(s, &h);
    assert_int_equal(h.state, SPRIG_STORE_FAILING);
    assert_non_null(strstr(h.error, "history refused by the test"));
    /* nothing of the refused batch is in the database */
    assert_int_equal(side_int(f, "SELECT count(*) FROM nodes"), 1);
    assert_int_equal(side_int(f, "SELECT count(*) FROM edges"), 0);
    assert_int_equal(side_int(f, "SELECT count(*) FROM points"), 0);
    assert_int_equal(side_int(f, "SELECT count(*) FROM history"), 0);
    refuse_history(f, false);
    assert_int_equal(sprig_store_flush(s), 0);
    sprig_store_health(s, &h);
    assert_int_equal(h.state, SPRIG_STORE_OK);
    assert_int_equal(side_int(f, "SELECT count(*) FROM nodes"), 2);
    assert_int_equal(side_int(f, "SELECT count(*) FROM edges"), 1);
    assert_int_equal(side_int(f, "SELECT count(*) FROM points"), 1);
    assert_int_equal(side_int(f, "SELECT max(value) FROM points"), 49);
    assert_int_equal(side_int(f, "SELECT count(*) FROM history"), 50); /* exactly once */
    assert_int_equal(side_int(f, "SELECT count(DISTINCT time) FROM history"), 50);
    close_ok(f, s);
}

/* --- a crash loses no acknowledged batch --------------------------------------------- */

typedef struct crash {
    fx_t *f;
    int fd; /* the child writes each acknowledged batch's number here */
} crash_t;

typedef struct acked {
    int fd;
    int i;
} acked_t;

static void on_acked(uint64_t batch, int status, void *arg)
{
    (void)batch;
    acked_t *a = arg;
    if (status == 0) {
        int n = a->i;
        if (write(a->fd, &n, sizeof(n)) != sizeof(n)) {
            _exit(3);
        }
    }
    free(a);
}

/* The child: one point per batch, each acknowledged through the pipe once durable, until
 * it is killed (or 20 s pass). */
static int crash_child(void *arg)
{
    crash_t *c = arg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sprig_store_t *s = NULL;
    sprig_error_t err = {{0}};
    if (sprig_store_open(c->f->target, NULL, &loop, &s, &err) != 0) {
        fprintf(stderr, "child: open: %s\n", err.msg);
        return 2;
    }
    uint64_t end = uv_hrtime() + 20000000000ULL;
    for (int i = 0; i < 1000000 && uv_hrtime() < end; i++) {
        char id[32];
        snprintf(id, sizeof(id), "n%d", i);
        sprig_point_t p = {.type = "count", .key = "0", .time = 1000 + i, .value = i,
                           .text = "", .origin = ""};
        sprig_store_put_node(s, id, "counter");
        sprig_store_put_point(s, id, &p, (uint64_t)i);
        acked_t *a = malloc(sizeof(*a));
        a->fd = c->fd;
        a->i = i;
        sprig_store_when_durable(s, sprig_store_last_batch(s), on_acked, a);
        uv_run(&loop, UV_RUN_NOWAIT);
        if (i % 16 == 0) {
            usleep(1000);
        }
    }
    return 4;
}

static int count_node(const char *id, const char *type, void *arg)
{
    (void)type;
    int *have = arg;
    int i = atoi(id + 1);
    if (i >= 0 && i < 1000000) {
        have[i] = 1;
    }
    return 0;
}

static void t_crash_loses_no_acknowledged_batch(void **state)
{
    fx_t *f = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_t c = {f, fds[1]};
        _exit(crash_child(&c));
    }
    close(fds[1]);
    int last = -1, acks = 0;
    uint64_t end = uv_hrtime() + 15000000000ULL;
    while (acks < 200 && uv_hrtime() < end) {
        int n;
        if (read(fds[0], &n, sizeof(n)) != sizeof(n)) {
            break;
        }
        last = n > last ? n : last;
        acks++;
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    close(fds[0]);
    assert_true(acks >= 200);

    int *have = calloc(1000000, sizeof(int));
    assert_non_null(have);
    sprig_store_t *s = open_ok(f, false);
    sprig_store_visitor_t v = {.node = count_node, .arg = have};
    assert_int_equal(sprig_store_load(s, &v), 0);
    int missing = 0;
    for (int i = 0; i <= last; i++) {
        missing += have[i] == 0;
    }
    free(have);
    assert_int_equal(sprig_store_close(s), 0);
    printf("crash: %d batches acknowledged (last n%d), %d of them missing after SIGKILL\n", acks,
           last, missing);
    assert_int_equal(missing, 0);
}

/* --- PostgreSQL only: retention drops whole days ------------------------------------ */

/* A day's partition older than the age limit (made by hand, with a row in it) goes at
 * the next commit; today's stays. */
static void t_pg_retention_drops_old_days(void **state)
{
    fx_t *f = *state;
    sprig_store_opts_t o = {.history_max_age_ns = 7LL * 86400 * 1000000000};
    sprig_store_t *s = open_opts(f, &o, true);
    close_ok(f, s);
    const int64_t day = 18262; /* 2020-01-01 */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE history_20200101 PARTITION OF history FOR VALUES FROM (%lld) TO "
             "(%lld); INSERT INTO history(device, series, time, value, text, tombstone, origin,"
             " accepted) VALUES('', 1, 1, 1, '', 0, '', %lld)",
             (long long)(day * 86400 * 1000000000LL), (long long)((day + 1) * 86400 * 1000000000LL),
             (long long)(day * 86400 * 1000000000LL + 5));
    side_exec(f, sql);
    assert_int_equal(side_int(f, "SELECT count(*) FROM history"), 1);
    s = open_opts(f, &o, true);
    sprig_point_t p = {.type = "level", .key = "0", .time = 100, .value = 1, .text = "",
                       .origin = ""};
    assert_int_equal(sprig_store_put_point(s, "tank", &p, 1), 0);
    assert_int_equal(sprig_store_flush(s), 0);
    assert_int_equal(side_int(f, "SELECT count(*) FROM pg_class WHERE relname = "
                                 "'history_20200101'"),
                     0);
    assert_int_equal(side_int(f, "SELECT count(*) FROM history"), 1); /* today's sample */
    assert_int_equal(side_int(f, "SELECT count(*) FROM pg_inherits WHERE inhparent = "
                                 "'history'::regclass"),
                     1);
    close_ok(f, s);
}

#define CASES(setup)                                                                         \
    cmocka_unit_test_setup_teardown(t_rows_read_back_exactly, setup, teardown),              \
        cmocka_unit_test_setup_teardown(t_history_pages, setup, teardown),                   \
        cmocka_unit_test_setup_teardown(t_batch_all_or_nothing, setup, teardown),            \
        cmocka_unit_test_setup_teardown(t_crash_loses_no_acknowledged_batch, setup, teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest sqlite_cases[] = {CASES(setup_sqlite)};
    const struct CMUnitTest pg_cases[] = {
        CASES(setup_pg),
        cmocka_unit_test_setup_teardown(t_pg_retention_drops_old_days, setup_pg, teardown),
    };
    bool pg_only = argc > 1 && strcmp(argv[1], "pg") == 0;
    if (pg_only) {
        if (getenv("SPRIG_TEST_PG_URI") == NULL) {
            fprintf(stderr, "test_store_contract pg: SPRIG_TEST_PG_URI is not set (run it "
                            "through tests/integration/pg.py --run)\n");
            return 1;
        }
        return cmocka_run_group_tests_name("store contract: postgresql", pg_cases, NULL, NULL);
    }
    return cmocka_run_group_tests_name("store contract: sqlite", sqlite_cases, NULL, NULL);
}
