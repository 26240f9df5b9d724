/* Unit tests of the SQLite store (store.h): creating and refusing files (one this process
 * cannot write too), the writer lock, rows that survive a reopen exactly, group commit on a
 * libuv loop with its durable callbacks, commits that fail or hang (health, early waiters,
 * retries, nothing lost), the bounded history, metadata and the repairs of `store verify
 * --fix`. What is on disk is checked through a separate SQLite connection, as a person
 * with sqlite3 would. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "sprig/err.h"
#include "sprig/store.h"
#include "testutil.h"

typedef struct fx {
    char dir[PATH_MAX];
    char path[PATH_MAX];
    uv_loop_t loop;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tu_tmpdir(f->dir), 0);
    tu_path(f->path, f->dir, "test.db");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tu_loop_finish(&f->loop), 0);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static sprig_store_t *open_ok(fx_t *f, const sprig_store_opts_t *o, bool with_loop)
{
    sprig_store_t *s = NULL;
    sprig_error_t err = {{0}};
    int rc = sprig_store_open(f->path, o, with_loop ? &f->loop : NULL, &s, &err);
    if (rc != 0) {
        fail_msg("open %s: %d %s", f->path, rc, err.msg);
    }
    assert_non_null(s);
    return s;
}

static void close_ok(fx_t *f, sprig_store_t *s)
{
    assert_int_equal(sprig_store_close(s), 0);
    for (int i = 0; i < 100 && uv_loop_alive(&f->loop); i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT); /* the commit timer's close callback */
    }
}

static long long sql_int(fx_t *f, const char *sql)
{
    long long v = -1;
    assert_int_equal(tu_sql_int(f->path, sql, &v), SQLITE_OK);
    return v;
}

static sprig_point_t pt(const char *type, const char *key, int64_t time, double value,
                        const char *text, const char *origin, int tombstone)
{
    sprig_point_t p = {type, key, time, value, text, origin, tombstone};
    return p;
}

/* --- opening ------------------------------------------------------------------------ */

static void t_open_creates(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, NULL, false);
    close_ok(f, s);
    assert_int_equal(sql_int(f, "PRAGMA user_version"), SPRIG_STORE_VERSION);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                "name IN ('meta', 'nodes', 'edges', 'points', 'edge_points', "
                                "'history')"),
                     6);
    /* Opening again keeps the layout as it is. */
    s = open_ok(f, NULL, true);
    close_ok(f, s);
    assert_int_equal(sql_int(f, "PRAGMA user_version"), SPRIG_STORE_VERSION);
}

static void t_open_refuses_non_sqlite(void **state)
{
    fx_t *f = *state;
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 64; i++) {
        fputs("this is a text file, not a database of any kind\n", fp);
    }
    fclose(fp);
    sprig_store_t *s = (sprig_store_t *)&s;
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_store_open(f->path, NULL, &f->loop, &s, &err), SPRIG_ECORRUPT);
    assert_null(s);
    assert_non_null(strstr(err.msg, f->path));
}

static void t_open_refuses_foreign_sqlite(void **state)
{
    fx_t *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);"
                                  "INSERT INTO customers(name) VALUES('ada');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    sprig_store_t *s = NULL;
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_store_open(f->path, NULL, &f->loop, &s, &err), SPRIG_ECORRUPT);
    assert_null(s);
    assert_non_null(strstr(err.msg, f->path));
    assert_non_null(strstr(err.msg, "not a sprig database"));
    /* The other application's data is untouched. */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customers"), 1);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM sqlite_master"), 1);
    assert_int_equal(sql_int(f, "PRAGMA user_version"), 0);
}

static void t_open_newer_version_refused(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, NULL, false);
    close_ok(f, s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_store_open(f->path, NULL, NULL, &s, &err), SPRIG_ECORRUPT);
    assert_non_null(strstr(err.msg, f->path));
    assert_non_null(strstr(err.msg, "99"));
}

static void t_second_writer_locked(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, NULL, true);
    sprig_store_t *s2 = NULL;
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_store_open(f->path, NULL, &f->loop, &s2, &err), SPRIG_ELOCKED);
    assert_null(s2);
    assert_non_null(strstr(err.msg, f->path));
    assert_int_equal(sprig_store_open(f->path, NULL, NULL, &s2, &err), SPRIG_ELOCKED);
    close_ok(f, s);
    s2 = open_ok(f, NULL, true); /* free again once the first is closed */
    close_ok(f, s2);
}

/* Opens the 0444 database at arg for writing, as uid/gid 65534 when run as root (mode 0444
 * does not stop root); in a child of tu_child, so no cmocka asserts: exit 0 when the open
 * is refused as it must be (-EACCES, the message naming the file and its mode). */
static int open_unwritable(void *arg)
{
    const char *path = arg;
    if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) {
        return 10;
    }
    sprig_store_t *s = NULL;
    sprig_error_t err = {{0}};
    int rc = sprig_store_open(path, NULL, NULL, &s, &err);
    if (rc == 0) {
        sprig_store_close(s);
        return 11;
    }
    if (rc != -EACCES) {
        return 12;
    }
    return strstr(err.msg, path) != NULL && strstr(err.msg, "0444") != NULL ? 0 : 13;
}

static void t_open_refuses_unwritable(void **state)
{
    fx_t *f = *state;
    char wal[PATH_MAX + 8], shm[PATH_MAX + 8], lock[PATH_MAX + 8];
    struct stat st;
    close_ok(f, open_ok(f, NULL, false));
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    snprintf(shm, sizeof(shm), "%s-shm", f->path);
    snprintf(lock, sizeof(lock), "%s-lock", f->path);
    if (geteuid() == 0) {
        assert_int_equal(chmod(f->dir, 0755), 0);
        assert_int_equal(chown(f->dir, 65534, 65534), 0);
        assert_int_equal(chown(f->path, 65534, 65534), 0);
        assert_int_equal(chown(lock, 65534, 65534), 0);
    }
    assert_int_equal(chmod(f->path, 0444), 0);
    assert_int_equal(stat(f->path, &st), 0);
    off_t size = st.st_size;
    assert_int_equal(tu_child(open_unwritable, f->path, 10000), 0);
    /* Refused before SQLite touched it: the file as it was, no -wal or -shm made. */
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(st.st_size == size);
    assert_int_not_equal(stat(wal, &st), 0);
    assert_int_not_equal(stat(shm, &st), 0);
}

/* --- rows --------------------------------------------------------------------------- */

typedef struct loaded {
    int nodes, edges, points, edge_points;
    char node_ids[4][72], node_types[4][72];
    char edge[2][72];
    sprig_point_t p[8];
    char strs[8][3][128]; /* key, text, origin copies */
    char names[8][72];    /* node of a point, or up->down of an edge point */
    uint64_t hash[8];
    int order[4]; /* kinds in visit order: 0 node, 1 edge, 2 point, 3 edge point */
    int last_kind;
    bool out_of_order;
} loaded_t;

static void note_kind(loaded_t *l, int kind)
{
    l->out_of_order = l->out_of_order || kind < l->last_kind;
    l->last_kind = kind;
}

static int v_node(const char *id, const char *type, void *arg)
{
    loaded_t *l = arg;
    note_kind(l, 0);
    if (l->nodes < 4) {
        snprintf(l->node_ids[l->nodes], 72, "%s", id);
        snprintf(l->node_types[l->nodes], 72, "%s", type);
    }
    l->nodes++;
    return 0;
}

static int v_edge(const char *up, const char *down, void *arg)
{
    loaded_t *l = arg;
    note_kind(l, 1);
    if (l->edges < 2) {
        snprintf(l->edge[l->edges], 72, "%s>%s", up, down);
    }
    l->edges++;
    return 0;
}

static void keep_point(loaded_t *l, const char *name, const sprig_point_t *p, uint64_t hash)
{
    int i = l->points + l->edge_points;
    if (i >= 8) {
        return;
    }
    l->p[i] = *p;
    snprintf(l->strs[i][0], 128, "%s", p->key);
    snprintf(l->strs[i][1], 128, "%s", p->text);
    snprintf(l->strs[i][2], 128, "%s", p->origin);
    snprintf(l->names[i], 72, "%s/%s", name, p->type);
    l->hash[i] = hash;
}

static int v_point(const char *node, const sprig_point_t *p, uint64_t hash, void *arg)
{
    loaded_t *l = arg;
    note_kind(l, 2);
    keep_point(l, node, p, hash);
    l->points++;
    return 0;
}

static int v_edge_point(const char *up, const char *down, const sprig_point_t *p, uint64_t hash,
                        void *arg)
{
    loaded_t *l = arg;
    char name[150];
    note_kind(l, 3);
    snprintf(name, sizeof(name), "%s>%s", up, down);
    keep_point(l, name, p, hash);
    l->edge_points++;
    return 0;
}

static void load(sprig_store_t *s, loaded_t *l)
{
    memset(l, 0, sizeof(*l));
    sprig_store_visitor_t v = {v_node, v_edge, v_point, v_edge_point, l};
    assert_int_equal(sprig_store_load(s, &v), 0);
    assert_false(l->out_of_order);
}

/* Index of the loaded point named name ("node/type"), or fails. */
static int find_loaded(const loaded_t *l, const char *name)
{
    for (int i = 0; i < l->points + l->edge_points && i < 8; i++) {
        if (strcmp(l->names[i], name) == 0) {
            return i;
        }
    }
    fail_msg("no loaded point %s", name);
    return -1;
}

static void t_rows_roundtrip(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, NULL, false);
    const int64_t t1 = 1760000000123456789LL, t2 = -5; /* int64 as is, even odd ones */
    assert_int_equal(sprig_store_put_node(s, "root", "device"), 0);
    assert_int_equal(sprig_store_put_node(s, "pump-1", "modbusIo"), 0);
    assert_int_equal(sprig_store_put_node(s, "pump-1", "modbusIo"), 0); /* twice: one row */
    assert_int_equal(sprig_store_put_edge(s, "root", "pump-1"), 0);
    sprig_point_t p = pt("value", "3", t1, -1234.5678e-3, "h\xc3\xa9llo \xe2\x82\xac", "drv-1", 1);
    assert_int_equal(sprig_store_put_point(s, "pump-1", &p, 0xFEDCBA9876543210ULL), 0);
    sprig_point_t q = pt("name", NULL, t2, 0, NULL, NULL, 0); /* NULL key/text/origin */
    assert_int_equal(sprig_store_put_point(s, "pump-1", &q, 1), 0);
    sprig_point_t e = pt("tombstone", "0", t1 + 1, 1, "", "", 0);
    assert_int_equal(sprig_store_put_edge_point(s, "root", "pump-1", &e, 0x8000000000000000ULL), 0);
    assert_int_equal(sprig_store_flush(s), 0);
    close_ok(f, s);

    s = open_ok(f, NULL, false);
    loaded_t l;
    load(s, &l);
    assert_int_equal(l.nodes, 2);
    assert_int_equal(l.edges, 1);
    assert_string_equal(l.edge[0], "root>pump-1");
    assert_int_equal(l.points, 2);
    assert_int_equal(l.edge_points, 1);
    int i = find_loaded(&l, "pump-1/value");
    assert_string_equal(l.strs[i][0], "3");
    assert_true(l.p[i].time == t1);
    assert_true(l.p[i].value == -1234.5678e-3);
    assert_string_equal(l.strs[i][1], "h\xc3\xa9llo \xe2\x82\xac");
    assert_string_equal(l.strs[i][2], "drv-1");
    assert_int_equal(l.p[i].tombstone, 1);
    assert_true(l.hash[i] == 0xFEDCBA9876543210ULL);
    i = find_loaded(&l, "pump-1/name");
    assert_string_equal(l.strs[i][0], "0");
    assert_string_equal(l.strs[i][1], "");
    assert_string_equal(l.strs[i][2], "");
    assert_true(l.p[i].time == t2);
    assert_true(l.hash[i] == 1);
    i = find_loaded(&l, "root>pump-1/tombstone");
    assert_true(l.p[i].time == t1 + 1);
    assert_true(l.p[i].value == 1);
    assert_true(l.hash[i] == 0x8000000000000000ULL);

    /* A later put of the same point replaces the row (the caller merged already). */
    p = pt("value", "3", t1 + 5, 7, "", "", 0);
    assert_int_equal(sprig_store_put_point(s, "pump-1", &p, 9), 0);
    assert_int_equal(sprig_store_flush(s), 0);
    load(s, &l);
    assert_int_equal(l.points, 2);
    i = find_loaded(&l, "pump-1/value");
    assert_true(l.p[i].time == t1 + 5);
    assert_true(l.p[i].value == 7);
    assert_string_equal(l.strs[i][2], "");
    assert_true(l.hash[i] == 9);
    close_ok(f, s);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM points"), 2);
}

/* --- group commit ------------------------------------------------------------------- */

typedef struct durable {
    fx_t *f;
    sprig_store_t *s;
    int calls;
    uint64_t batch;
    int status;
    uint64_t durable_then; /* sprig_store_durable when called */
    long long rows_on_disk;
} durable_t;

static void on_durable(uint64_t batch, int status, void *arg)
{
    durable_t *d = arg;
    d->calls++;
    d->batch = batch;
    d->status = status;
    d->durable_then = sprig_store_durable(d->s);
    assert_int_equal(tu_sql_int(d->f->path, "SELECT count(*) FROM nodes", &d->rows_on_disk),
                     SQLITE_OK);
}

static bool called(void *arg)
{
    return ((durable_t *)arg)->calls > 0;
}

static void t_group_commit(void **state)
{
    fx_t *f = *state;
    sprig_store_opts_t o = {.commit_ms = 20};
    sprig_store_t *s = open_ok(f, &o, true);
    sprig_store_stats_t st0, st1;
    sprig_store_stats(s, &st0);
    uint64_t b1 = sprig_store_batch(s);
    assert_int_equal(sprig_store_put_node(s, "a", "x"), 0);
    assert_int_equal(sprig_store_put_node(s, "b", "x"), 0);
    assert_int_equal(sprig_store_put_node(s, "c", "x"), 0);
    assert_int_equal(sprig_store_batch(s), b1); /* all three in the open batch */
    assert_int_equal(sprig_store_backlog(s), 3);
    assert_true(sprig_store_durable(s) < b1);
    durable_t d = {.f = f, .s = s};
    assert_int_equal(sprig_store_when_durable(s, b1, on_durable, &d), 0);
    assert_int_equal(d.calls, 0); /* not before the batch is written */
    assert_true(tu_run_until(&f->loop, called, &d, 5000));
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    assert_true(d.batch == b1);
    assert_true(d.durable_then >= b1);
    assert_int_equal(d.rows_on_disk, 3); /* on disk when the callback runs */
    assert_int_equal(sprig_store_backlog(s), 0);
    sprig_store_stats(s, &st1);
    assert_true(st1.batches == st0.batches + 1);
    assert_true(st1.rows == st0.rows + 3);

    /* The next rows go into a later batch. */
    uint64_t b2 = sprig_store_batch(s);
    assert_true(b2 > b1);
    assert_int_equal(sprig_store_put_node(s, "d", "x"), 0);
    durable_t d2 = {.f = f, .s = s};
    assert_int_equal(sprig_store_when_durable(s, b2, on_durable, &d2), 0);
    assert_true(tu_run_until(&f->loop, called, &d2, 5000));
    assert_int_equal(d2.status, 0);
    assert_int_equal(d2.rows_on_disk, 4);
    assert_true(sprig_store_durable(s) >= b2);

    /* An already durable batch calls back at once. */
    durable_t d3 = {.f = f, .s = s};
    assert_int_equal(sprig_store_when_durable(s, b1, on_durable, &d3), 0);
    assert_int_equal(d3.calls, 1);
    assert_int_equal(d3.status, 0);
    assert_true(d3.batch == b1);
    close_ok(f, s);
}

static void t_batch_max_closes_early(void **state)
{
    fx_t *f = *state;
    sprig_store_opts_t o = {.commit_ms = 60000, .batch_max = 3}; /* the timer never fires */
    sprig_store_t *s = open_ok(f, &o, true);
    uint64_t b = sprig_store_batch(s);
    assert_int_equal(sprig_store_put_node(s, "a", "x"), 0);
    assert_int_equal(sprig_store_put_node(s, "b", "x"), 0);
    durable_t d = {.f = f, .s = s};
    assert_int_equal(sprig_store_when_durable(s, b, on_durable, &d), 0);
    /* Two rows of three: the batch stays open (commit_ms is a minute). */
    assert_false(tu_run_until(&f->loop, called, &d, 300));
    assert_int_equal(sprig_store_backlog(s), 2);
    assert_int_equal(sprig_store_put_node(s, "c", "x"), 0); /* the third closes it */
    assert_true(tu_run_until(&f->loop, called, &d, 5000));
    assert_int_equal(d.status, 0);
    assert_int_equal(d.rows_on_disk, 3);
    assert_int_equal(sprig_store_backlog(s), 0);
    assert_true(sprig_store_batch(s) > b);
    close_ok(f, s);
}

static void t_close_commits_queued(void **state)
{
    fx_t *f = *state;
    sprig_store_opts_t o = {.commit_ms = 60000};
    sprig_store_t *s = open_ok(f, &o, true);
    assert_int_equal(sprig_store_put_node(s, "a", "x"), 0);
    sprig_point_t p = pt("value", NULL, 5, 1, NULL, NULL, 0);
    assert_int_equal(sprig_store_put_point(s, "a", &p, 3), 0);
    close_ok(f, s);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM nodes"), 1);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM points"), 1);
}

/* --- commits that fail or hang ------------------------------------------------------- */

typedef struct told {
    int calls, status;
} told_t;

/* An early waiter's callback: only notes the call (the disk may not be readable then). */
static void on_told(uint64_t batch, int status, void *arg)
{
    (void)batch;
    told_t *t = arg;
    t->calls++;
    t->status = status;
}

static bool told(void *arg)
{
    return ((told_t *)arg)->calls > 0;
}

/* A commit that fails (here past a file size limit, as on a full disk: EFBIG) keeps its
 * rows and is tried again; the store is failing meanwhile and says why; early waiters are
 * told at once (and at once when they come later), the others wait; once writes work
 * again, everything queued is written in order and the store is ok. */
static void t_failed_commit_kept_and_retried(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, NULL, true);
    assert_int_equal(sprig_store_put_node(s, "a", "x"), 0);
    assert_int_equal(sprig_store_flush(s), 0);

    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    low = old;
    low.rlim_cur = 1; /* every write past the first byte of a file fails */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
    /* No asserts until the limit is back: a failed one must not leave it low. */
    int put_b = sprig_store_put_node(s, "b", "x");
    uint64_t b = sprig_store_last_batch(s);
    durable_t late = {.f = f, .s = s};
    told_t early = {0}, early2 = {0};
    int reg = sprig_store_when_durable(s, b, on_durable, &late);
    reg |= sprig_store_when_durable_or_failing(s, b, on_told, &early);
    bool early_in_time = tu_run_until(&f->loop, told, &early, 5000);
    sprig_store_health_t h1;
    sprig_store_health(s, &h1);
    char error1[512] = "";
    snprintf(error1, sizeof(error1), "%s", h1.error != NULL ? h1.error : "");
    /* A row queued behind the failed batch; its early waiter is told at once. */
    int put_c = sprig_store_put_node(s, "c", "x");
    uint64_t c = sprig_store_last_batch(s);
    reg |= sprig_store_when_durable_or_failing(s, c, on_told, &early2);
    int early2_calls = early2.calls;
    tu_run_for(&f->loop, 400); /* retries at 100, 200 ms: they fail too */
    sprig_store_health_t h2;
    sprig_store_health(s, &h2);
    size_t backlog = sprig_store_backlog(s);
    int late_calls = late.calls;
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);

    assert_int_equal(put_b, 0);
    assert_int_equal(put_c, 0);
    assert_int_equal(reg, 0);
    assert_true(early_in_time);
    assert_int_equal(early.calls, 1);
    assert_int_not_equal(early.status, 0);
    assert_int_equal(h1.state, SPRIG_STORE_FAILING);
    assert_int_equal(h1.code, early.status);
    assert_true(h1.since > 0);
    assert_non_null(strstr(error1, f->path));
    assert_non_null(strstr(error1, "cannot be written"));
    assert_int_equal(early2_calls, 1);
    assert_int_equal(early2.status, h1.code);
    assert_int_equal(late_calls, 0); /* not durable: it waits */
    assert_int_equal(h2.state, SPRIG_STORE_FAILING);
    assert_true(h2.failures >= 2);
    assert_true(h2.since == h1.since);
    assert_int_equal(backlog, 2);
    assert_true(sprig_store_durable(s) < b);
    sprig_store_stats_t st;
    sprig_store_stats(s, &st);
    assert_true(st.commit_errors >= 2);

    /* Writes work again: the next retry writes b, then c, by itself. */
    durable_t late_c = {.f = f, .s = s};
    assert_int_equal(sprig_store_when_durable(s, c, on_durable, &late_c), 0);
    assert_true(tu_run_until(&f->loop, called, &late_c, 10000));
    assert_int_equal(late.calls, 1);
    assert_int_equal(late.status, 0);
    assert_int_equal(late_c.status, 0);
    assert_int_equal(late_c.rows_on_disk, 3);
    sprig_store_health_t h3;
    sprig_store_health(s, &h3);
    assert_int_equal(h3.state, SPRIG_STORE_OK);
    assert_null(h3.error);
    assert_int_equal(h3.code, 0);
    assert_int_equal(sprig_store_backlog(s), 0);
    close_ok(f, s);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM nodes"), 3);
}

/* A commit that does not come back (another connection holds SQLite's write lock) makes
 * the store stalled after SPRIG_STORE_STALL_MS: early waiters are told then, the others
 * wait, and the rows are written once the lock goes. */
static void t_stalled_commit(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, NULL, true);
    sqlite3 *lock = NULL;
    assert_int_equal(sqlite3_open(f->path, &lock), SQLITE_OK);
    assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sprig_store_put_node(s, "a", "x"), 0);
    uint64_t b = sprig_store_last_batch(s);
    durable_t late = {.f = f, .s = s};
    told_t early = {0};
    assert_int_equal(sprig_store_when_durable(s, b, on_durable, &late), 0);
    assert_int_equal(sprig_store_when_durable_or_failing(s, b, on_told, &early), 0);
    uint64_t t0 = uv_hrtime();
    assert_true(tu_run_until(&f->loop, told, &early, SPRIG_STORE_STALL_MS + 3000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_true(ms >= SPRIG_STORE_STALL_MS - 50);
    assert_int_equal(early.status, -ETIMEDOUT);
    assert_int_equal(late.calls, 0);
    sprig_store_health_t h;
    sprig_store_health(s, &h);
    assert_int_equal(h.state, SPRIG_STORE_STALLED);
    assert_non_null(strstr(h.error, f->path));
    assert_non_null(strstr(h.error, "has not finished"));
    assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
    assert_true(tu_run_until(&f->loop, called, &late, 10000));
    assert_int_equal(late.status, 0);
    assert_int_equal(late.rows_on_disk, 1);
    sprig_store_health(s, &h);
    assert_int_equal(h.state, SPRIG_STORE_OK);
    close_ok(f, s);
}

/* A large batch (an import of a whole site) is given time in proportion before the store
 * calls itself stalled: 1 ms more per SPRIG_STORE_STALL_ROWS_PER_MS rows, so 50,000 rows
 * have 4 s, not 3 s (still below SQLite's 5 s busy timeout, after which the commit waiting
 * on the test's lock would fail instead); its sentence counts the rows. */
static void t_stalled_large_batch(void **state)
{
    fx_t *f = *state;
    enum { ROWS = 50000 };
    sprig_store_opts_t o = {.batch_max = 2 * ROWS}; /* one batch, as an import makes */
    sprig_store_t *s = open_ok(f, &o, true);
    sqlite3 *lock = NULL;
    char id[16];
    assert_int_equal(sqlite3_open(f->path, &lock), SQLITE_OK);
    assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < ROWS; i++) {
        snprintf(id, sizeof(id), "n%d", i);
        assert_int_equal(sprig_store_put_node(s, id, "x"), 0);
    }
    uint64_t b = sprig_store_last_batch(s);
    durable_t late = {.f = f, .s = s};
    told_t early = {0};
    assert_int_equal(sprig_store_when_durable(s, b, on_durable, &late), 0);
    assert_int_equal(sprig_store_when_durable_or_failing(s, b, on_told, &early), 0);
    uint64_t t0 = uv_hrtime();
    assert_true(tu_run_until(&f->loop, told, &early, 10000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    uint64_t allowed = SPRIG_STORE_STALL_MS + ROWS / SPRIG_STORE_STALL_ROWS_PER_MS;
    assert_true(allowed > SPRIG_STORE_STALL_MS && allowed < 5000);
    assert_true(ms >= allowed - 50);
    assert_int_equal(early.status, -ETIMEDOUT);
    sprig_store_health_t h;
    sprig_store_health(s, &h);
    assert_int_equal(h.state, SPRIG_STORE_STALLED);
    assert_non_null(strstr(h.error, "(50000 rows)"));
    assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
    assert_true(tu_run_until(&f->loop, called, &late, 20000));
    assert_int_equal(late.status, 0);
    assert_int_equal(late.rows_on_disk, ROWS);
    close_ok(f, s);
}

/* --- history ------------------------------------------------------------------------ */

static void put_values(sprig_store_t *s, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        sprig_point_t p = pt("value", NULL, 1000 + i, i, NULL, NULL, 0);
        assert_int_equal(sprig_store_put_point(s, "a", &p, (uint64_t)i), 0);
    }
}

static void t_history(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, NULL, true);
    put_values(s, 0, 3);
    assert_int_equal(sprig_store_flush(s), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM history"), 3);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM points"), 1);
    assert_int_equal(sql_int(f, "SELECT max(time) FROM history"), 1002);
    sprig_store_stats_t st;
    sprig_store_stats(s, &st);
    assert_int_equal(st.history_rows, 3);
    close_ok(f, s);
}

/* A batch of many rows: points and history go to the database in groups of rows per
 * statement; the later write of a point wins, and history keeps every sample in order. */
static void t_history_many_in_one_batch(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, NULL, true);
    for (int i = 0; i < 100; i++) {
        sprig_point_t p = pt("value", NULL, 1000 + i, i, NULL, NULL, 0);
        assert_int_equal(sprig_store_put_point(s, "a", &p, (uint64_t)i), 0);
        if (i % 3 == 0) {
            assert_int_equal(sprig_store_put_point(s, "b", &p, (uint64_t)i), 0);
        }
        if (i % 7 == 0) { /* a point whose sample is kept elsewhere: no history row */
            sprig_point_t q = pt("other", NULL, 1000 + i, -i, NULL, NULL, 0);
            assert_int_equal(sprig_store_put_point_ex(s, "a", &q, (uint64_t)i, false), 0);
        }
    }
    assert_int_equal(sprig_store_flush(s), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM points"), 3);
    assert_int_equal(sql_int(f, "SELECT value FROM points WHERE node = 'a' AND type = 'value'"),
                     99);
    assert_int_equal(sql_int(f, "SELECT value FROM points WHERE node = 'b'"), 99);
    assert_int_equal(sql_int(f, "SELECT value FROM points WHERE type = 'other'"), -98);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM history"), 100 + 34);
    /* ids follow the order of the writes, series by series */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM history h1 JOIN history h2"
                                " ON h2.series = h1.series AND h2.id > h1.id"
                                " WHERE h2.time <= h1.time"),
                     0);
    sprig_store_stats_t st;
    sprig_store_stats(s, &st);
    assert_int_equal(st.history_rows, 134);
    assert_int_equal(st.history_last_id, sql_int(f, "SELECT max(id) FROM history"));
    close_ok(f, s);
}

static void t_history_trimmed(void **state)
{
    fx_t *f = *state;
    sprig_store_opts_t o = {.history_max_rows = 5};
    sprig_store_t *s = open_ok(f, &o, true);
    put_values(s, 0, 4);
    assert_int_equal(sprig_store_flush(s), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM history"), 4);
    put_values(s, 4, 4);
    assert_int_equal(sprig_store_flush(s), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM history"), 5);
    assert_int_equal(sql_int(f, "SELECT min(time) FROM history"), 1003); /* oldest went */
    assert_int_equal(sql_int(f, "SELECT max(time) FROM history"), 1007);
    sprig_store_stats_t st;
    sprig_store_stats(s, &st);
    assert_int_equal(st.history_rows, 5);
    put_values(s, 8, 20);
    assert_int_equal(sprig_store_flush(s), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM history"), 5);
    assert_int_equal(sql_int(f, "SELECT min(time) FROM history"), 1023);
    close_ok(f, s);

    /* The limit holds across a reopen too. */
    s = open_ok(f, &o, true);
    put_values(s, 28, 2);
    assert_int_equal(sprig_store_flush(s), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM history"), 5);
    assert_int_equal(sql_int(f, "SELECT min(time) FROM history"), 1025);
    close_ok(f, s);
}

static void t_history_none(void **state)
{
    fx_t *f = *state;
    sprig_store_opts_t o = {.history_max_rows = -1};
    sprig_store_t *s = open_ok(f, &o, true);
    put_values(s, 0, 5);
    assert_int_equal(sprig_store_flush(s), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM history"), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM points"), 1);
    sprig_store_stats_t st;
    sprig_store_stats(s, &st);
    assert_int_equal(st.history_rows, 0);
    close_ok(f, s);
}

/* --- meta and repairs --------------------------------------------------------------- */

static void t_meta(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, NULL, true);
    char out[64] = "unchanged";
    assert_int_equal(sprig_store_meta_get(s, "root", out, sizeof(out)), -ENOENT);
    assert_int_equal(sprig_store_meta_set(s, "root", "abc-123"), 0);
    assert_int_equal(sprig_store_meta_get(s, "root", out, sizeof(out)), 0);
    assert_string_equal(out, "abc-123");
    assert_int_equal(sprig_store_meta_set(s, "root", "def"), 0);
    assert_int_equal(sprig_store_meta_get(s, "root", out, sizeof(out)), 0);
    assert_string_equal(out, "def");
    char small[3];
    assert_int_equal(sprig_store_meta_get(s, "root", small, sizeof(small)), 0);
    assert_string_equal(small, "de"); /* cut to the buffer, terminated */
    close_ok(f, s);
    s = open_ok(f, NULL, false);
    assert_int_equal(sprig_store_meta_get(s, "root", out, sizeof(out)), 0);
    assert_string_equal(out, "def");
    assert_int_equal(sprig_store_meta_get(s, "other", out, sizeof(out)), -ENOENT);
    close_ok(f, s);
}

static void t_fix_hash_and_delete_row(void **state)
{
    fx_t *f = *state;
    sprig_store_t *s = open_ok(f, NULL, true);
    assert_int_equal(sprig_store_put_node(s, "r", "device"), 0);
    assert_int_equal(sprig_store_put_node(s, "a", "x"), 0);
    assert_int_equal(sprig_store_put_edge(s, "r", "a"), 0);
    sprig_point_t p = pt("value", NULL, 5, 1, NULL, NULL, 0);
    assert_int_equal(sprig_store_put_point(s, "a", &p, 111), 0);
    sprig_point_t e = pt("tombstone", NULL, 6, 0, NULL, NULL, 0);
    assert_int_equal(sprig_store_put_edge_point(s, "r", "a", &e, 222), 0);
    assert_int_equal(sprig_store_flush(s), 0);

    assert_int_equal(sprig_store_fix_hash(s, NULL, "a", "value", "0", 0xF000000000000001ULL), 0);
    assert_int_equal(sprig_store_fix_hash(s, "r", "a", "tombstone", "0", 333), 0);
    assert_int_equal(sprig_store_fix_hash(s, NULL, "a", "nosuch", "0", 1), -ENOENT);
    assert_int_equal(sprig_store_fix_hash(s, "a", "r", "tombstone", "0", 1), -ENOENT);
    loaded_t l;
    load(s, &l);
    assert_true(l.hash[find_loaded(&l, "a/value")] == 0xF000000000000001ULL);
    assert_true(l.hash[find_loaded(&l, "r>a/tombstone")] == 333);

    assert_int_equal(sprig_store_delete_row(s, "points", "a", NULL, "value", "0"), 0);
    assert_int_equal(sprig_store_delete_row(s, "points", "a", NULL, "value", "0"), -ENOENT);
    assert_int_equal(sprig_store_delete_row(s, "edge_points", "r", "a", "tombstone", "0"), 0);
    assert_int_equal(sprig_store_delete_row(s, "edges", "r", "a", NULL, NULL), 0);
    assert_int_equal(sprig_store_delete_row(s, "nodes", "a", NULL, NULL, NULL), 0);
    assert_int_equal(sprig_store_delete_row(s, "nodes", "a", NULL, NULL, NULL), -ENOENT);
    assert_int_equal(sprig_store_delete_row(s, "history", "a", NULL, NULL, NULL), -EINVAL);
    load(s, &l);
    assert_int_equal(l.nodes, 1);
    assert_string_equal(l.node_ids[0], "r");
    assert_int_equal(l.edges, 0);
    assert_int_equal(l.points, 0);
    assert_int_equal(l.edge_points, 0);
    close_ok(f, s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_open_creates, setup, teardown),
        cmocka_unit_test_setup_teardown(t_open_refuses_non_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(t_open_refuses_foreign_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(t_open_newer_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(t_second_writer_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(t_open_refuses_unwritable, setup, teardown),
        cmocka_unit_test_setup_teardown(t_rows_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(t_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(t_batch_max_closes_early, setup, teardown),
        cmocka_unit_test_setup_teardown(t_close_commits_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(t_failed_commit_kept_and_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(t_stalled_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(t_stalled_large_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(t_history, setup, teardown),
        cmocka_unit_test_setup_teardown(t_history_many_in_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(t_history_trimmed, setup, teardown),
        cmocka_unit_test_setup_teardown(t_history_none, setup, teardown),
        cmocka_unit_test_setup_teardown(t_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(t_fix_hash_and_delete_row, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
