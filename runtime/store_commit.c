/* The store's writing side: its prepared statements and the commit of one batch, on the
 * worker thread (or the loop thread in a flush, when nothing is in flight).
 *
 * Points and history rows, nearly all of a batch, go STORE_MULTI to a statement: SQLite's
 * cost per statement (start, the AUTOINCREMENT bookkeeping of history, the statement
 * journal, halt and reset) is paid once for them, not per row. A point written twice in
 * one statement ends as the later row, as with one statement each. */
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/util.h"
#include "store_internal.h"

#define STORE_MULTI 32 /* rows per multi-row statement */

#define POINT_COLS 9
#define POINT_INSERT                                                                       \
    "INSERT INTO points(node, type, key, time, value, text, tombstone, origin, hash) VALUES"
#define POINT_UPSERT                                                                       \
    " ON CONFLICT(node, type, key) DO UPDATE SET time = excluded.time,"                    \
    " value = excluded.value, text = excluded.text, tombstone = excluded.tombstone,"       \
    " origin = excluded.origin, hash = excluded.hash"
#define HIST_COLS 7
#define HIST_INSERT                                                                        \
    "INSERT INTO history(series, time, value, text, tombstone, origin, accepted) VALUES"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_NODE] = "INSERT OR IGNORE INTO nodes(id, type) VALUES(?1, ?2)",
    [ST_EDGE] = "INSERT OR IGNORE INTO edges(up, down) VALUES(?1, ?2)",
    [ST_POINT] = POINT_INSERT "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)" POINT_UPSERT,
    [ST_EDGE_POINT] =
        "INSERT INTO edge_points(up, down, type, key, time, value, text, tombstone, origin, hash)"
        " VALUES(?1, ?10, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(up, down, type, key)"
        " DO UPDATE SET time = excluded.time, value = excluded.value, text = excluded.text,"
        " tombstone = excluded.tombstone, origin = excluded.origin, hash = excluded.hash",
    [ST_HIST] = HIST_INSERT "(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_SERIES] = "INSERT OR IGNORE INTO series(id, node, type, key) VALUES(?1, ?2, ?3, ?4)",
};

/* head, then STORE_MULTI groups of cols anonymous parameters, then tail. */
static char *multi_sql(const char *head, int cols, const char *tail)
{
    size_t n = strlen(head) + strlen(tail) + (size_t)STORE_MULTI * (cols * 2 + 3) + 1;
    char *sql = sprig_malloc(n), *p = sql;
    p += sprintf(p, "%s", head);
    for (int i = 0; i < STORE_MULTI; i++) {
        *p++ = i == 0 ? '(' : ',';
        if (i > 0) {
            *p++ = '(';
        }
        for (int c = 0; c < cols; c++) {
            *p++ = '?';
            *p++ = c + 1 < cols ? ',' : ')';
        }
    }
    strcpy(p, tail);
    return sql;
}

int store__prepare(sprig_store_t *s)
{
    char *sql[ST_ALL] = {NULL};
    sql[ST_POINT_N] = multi_sql(POINT_INSERT, POINT_COLS, POINT_UPSERT);
    sql[ST_HIST_N] = multi_sql(HIST_INSERT, HIST_COLS, "");
    int rc = SQLITE_OK;
    for (int i = 0; i < ST_ALL && rc == SQLITE_OK; i++) {
        rc = sqlite3_prepare_v3(s->db, i < ST_COUNT ? stmt_sql[i] : sql[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
    }
    sprig_free(sql[ST_POINT_N]);
    sprig_free(sql[ST_HIST_N]);
    return rc;
}

static int step(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    int e = errno; /* the system's reason for a failed write; the reset must not lose it */
    sqlite3_reset(st);
    errno = e;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A value: a double, but -0 as its 8 bytes. SQLite stores an integral REAL as an integer
 * and reads it back as 0, so a -0 would lose its sign, and a point its stored hash (the
 * merge rule orders values by their bits). Loading reads such a blob back (store_load.c). */
static void bind_value(sqlite3_stmt *st, int i, double v)
{
    if (v == 0 && signbit(v)) {
        sqlite3_bind_blob(st, i, &v, sizeof(v), SQLITE_TRANSIENT);
    }
    else {
        sqlite3_bind_double(st, i, v);
    }
}

/* A point's columns, at parameters base + 1 to base + 9. */
static void bind_point(sqlite3_stmt *st, int base, const row_t *r)
{
    sqlite3_bind_text(st, base + 1, r->a, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, base + 2, r->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, base + 3, r->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, base + 4, r->time);
    bind_value(st, base + 5, r->value);
    sqlite3_bind_text(st, base + 6, r->text, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, base + 7, r->tombstone);
    sqlite3_bind_text(st, base + 8, r->origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, base + 9, (sqlite3_int64)r->hash);
}

/* A history row's columns, at parameters base + 1 to base + 7. */
static void bind_hist(sqlite3_stmt *st, int base, const row_t *r)
{
    sqlite3_bind_int64(st, base + 1, r->series);
    sqlite3_bind_int64(st, base + 2, r->time);
    bind_value(st, base + 3, r->value);
    sqlite3_bind_text(st, base + 4, r->text, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, base + 5, r->tombstone);
    sqlite3_bind_text(st, base + 6, r->origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, base + 7, r->accepted);
}

/* Rows of one table waiting for a statement: a full group goes in one multi-row
 * statement, what is left at the end one by one. */
typedef struct pending {
    sqlite3_stmt *one, *many;
    int cols;
    void (*bind)(sqlite3_stmt *st, int base, const row_t *r);
    long long *last_id; /* if set, gets the last rowid after each statement */
    const row_t *rows[STORE_MULTI];
    int n;
} pending_t;

static int pending_flush(pending_t *p)
{
    int rc = SQLITE_OK;
    if (p->n == STORE_MULTI) {
        for (int i = 0; i < p->n; i++) {
            p->bind(p->many, i * p->cols, p->rows[i]);
        }
        rc = step(p->many);
    }
    else {
        for (int i = 0; i < p->n && rc == SQLITE_OK; i++) {
            p->bind(p->one, 0, p->rows[i]);
            rc = step(p->one);
        }
    }
    if (rc == SQLITE_OK && p->n > 0 && p->last_id != NULL) {
        *p->last_id = sqlite3_last_insert_rowid(sqlite3_db_handle(p->one));
    }
    p->n = 0;
    return rc;
}

static int pending_add(pending_t *p, const row_t *r)
{
    p->rows[p->n++] = r;
    return p->n == STORE_MULTI ? pending_flush(p) : SQLITE_OK;
}

static int write_rows(sprig_store_t *s, const batch_t *b)
{
    bool hist = s->o.history_max_rows >= 0;
    pending_t pts = {s->st[ST_POINT], s->st[ST_POINT_N], POINT_COLS, bind_point, NULL, {NULL}, 0};
    /* History ids are given in insertion order; the last one is the store's hist_max,
     * read at once (a series row would change the last rowid). */
    pending_t hst = {s->st[ST_HIST], s->st[ST_HIST_N], HIST_COLS, bind_hist, &s->hist_max,
                     {NULL}, 0};
    int rc = SQLITE_OK;
    for (size_t i = 0; i < b->len && rc == SQLITE_OK; i++) {
        const row_t *r = &b->rows[i];
        sqlite3_stmt *st;
        switch (r->kind) {
        case ROW_NODE:
            st = s->st[ST_NODE];
            sqlite3_bind_text(st, 1, r->a, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, r->type, -1, SQLITE_STATIC);
            rc = step(st);
            break;
        case ROW_EDGE:
            st = s->st[ST_EDGE];
            sqlite3_bind_text(st, 1, r->a, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, r->b, -1, SQLITE_STATIC);
            rc = step(st);
            break;
        case ROW_POINT:
        case ROW_POINT_NOHIST:
        case ROW_HISTORY:
            if (r->kind != ROW_HISTORY) {
                rc = pending_add(&pts, r);
            }
            if (rc == SQLITE_OK && hist && r->kind != ROW_POINT_NOHIST) {
                rc = pending_add(&hst, r);
            }
            break;
        case ROW_SERIES:
            st = s->st[ST_SERIES];
            sqlite3_bind_int64(st, 1, r->series);
            sqlite3_bind_text(st, 2, r->a, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, r->type, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, r->key, -1, SQLITE_STATIC);
            rc = step(st);
            break;
        default:
            st = s->st[ST_EDGE_POINT];
            bind_point(st, 0, r);
            sqlite3_bind_text(st, 10, r->b, -1, SQLITE_STATIC);
            rc = step(st);
            break;
        }
    }
    if (rc == SQLITE_OK) {
        rc = pending_flush(&pts);
    }
    if (rc == SQLITE_OK) {
        rc = pending_flush(&hst);
    }
    return rc;
}

void store__commit_batch(sprig_store_t *s, batch_t *b)
{
    if (b->cache_kib != 0 && b->cache_kib != s->cache_kib) {
        char sql[48];
        snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d", b->cache_kib);
        if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK) {
            s->cache_kib = b->cache_kib;
        }
    }
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        rc = write_rows(s, b);
    }
    if (rc == SQLITE_OK && s->o.history_max_rows >= 0) {
        int64_t now = sprig_wall_ns();
        rc = store__history_trim(s, now);
        if (rc == SQLITE_OK) {
            rc = store__history_index(s, now);
        }
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        b->sys_errno = store__sys_errno(s->db, rc, errno);
        snprintf(b->error, sizeof(b->error), "%s", sqlite3_errmsg(s->db));
        b->status = store__map_sqlite(rc);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        /* Our view of the id range may be off now; read it back. */
        store__history_range(s);
    }
    b->hist_min = s->hist_min;
    b->hist_max = s->hist_max;
}
