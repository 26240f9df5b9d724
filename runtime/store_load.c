/* The store's reads and repairs on the loop thread: loading every row at start, the meta
 * table, and the fixes of `sprig store verify --fix`. Each waits for a batch in flight
 * first, so the connection is never used by two threads at once. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sprig/log.h"
#include "store_internal.h"

/* --- loading, metadata, repairs ----------------------------------------------------- */

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t != NULL ? (const char *)t : "";
}

static void col_point(sqlite3_stmt *st, int first, sprig_point_t *p)
{
    p->type = col_text(st, first);
    p->key = col_text(st, first + 1);
    p->time = sqlite3_column_int64(st, first + 2);
    p->value = store__col_value(st, first + 3);
    p->text = col_text(st, first + 4);
    p->tombstone = sqlite3_column_int(st, first + 5);
    p->origin = col_text(st, first + 6);
}

int store__sqlite_load(sprig_store_t *s, const sprig_store_visitor_t *v)
{
    static const char *const sql[] = {
        "SELECT id, type FROM nodes",
        "SELECT up, down FROM edges",
        "SELECT node, type, key, time, value, text, tombstone, origin, hash FROM points",
        "SELECT up, down, type, key, time, value, text, tombstone, origin, hash FROM edge_points",
    };
    int rc = 0;
    for (int q = 0; q < 4 && rc == 0; q++) {
        sqlite3_stmt *st;
        int src = sqlite3_prepare_v2(s->db, sql[q], -1, &st, NULL);
        if (src != SQLITE_OK) {
            sprig_log_error("database %s: %s", s->path, sqlite3_errmsg(s->db));
            return store__map_sqlite(src);
        }
        while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
            sprig_point_t p;
            switch (q) {
            case 0:
                rc = v->node != NULL ? v->node(col_text(st, 0), col_text(st, 1), v->arg) : 0;
                break;
            case 1:
                rc = v->edge != NULL ? v->edge(col_text(st, 0), col_text(st, 1), v->arg) : 0;
                break;
            case 2:
                col_point(st, 1, &p);
                rc = v->point != NULL ? v->point(col_text(st, 0), &p,
                                                 (uint64_t)sqlite3_column_int64(st, 8), v->arg)
                                      : 0;
                break;
            default:
                col_point(st, 2, &p);
                rc = v->edge_point != NULL
                         ? v->edge_point(col_text(st, 0), col_text(st, 1), &p,
                                         (uint64_t)sqlite3_column_int64(st, 9), v->arg)
                         : 0;
                break;
            }
        }
        if (rc == 0 && src != SQLITE_DONE) {
            sprig_log_error("database %s: %s", s->path, sqlite3_errmsg(s->db));
            rc = store__map_sqlite(src);
        }
        sqlite3_finalize(st);
    }
    return rc;
}

/* Prepares sql, binds the non-NULL texts in order, steps once. */
static int run(sprig_store_t *s, const char *sql, const char *const *texts, int n,
               sqlite3_stmt **keep)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return store__map_sqlite(rc);
    }
    for (int i = 0; i < n; i++) {
        sqlite3_bind_text(st, i + 1, texts[i], -1, SQLITE_STATIC);
    }
    rc = sqlite3_step(st);
    if (keep != NULL && rc == SQLITE_ROW) {
        *keep = st;
        return 0;
    }
    sqlite3_finalize(st);
    if (keep != NULL) {
        return rc == SQLITE_DONE ? -ENOENT : store__map_sqlite(rc);
    }
    return rc == SQLITE_DONE ? 0 : store__map_sqlite(rc);
}

int store__sqlite_meta_get(sprig_store_t *s, const char *key, char *out, size_t n)
{
    sqlite3_stmt *st = NULL;
    const char *args[] = {key};
    int rc = run(s, "SELECT value FROM meta WHERE key = ?1", args, 1, &st);
    if (rc == 0) {
        snprintf(out, n, "%s", col_text(st, 0));
        sqlite3_finalize(st);
    }
    return rc;
}

int store__sqlite_meta_set(sprig_store_t *s, const char *key, const char *value)
{
    const char *args[] = {key, value};
    return run(s, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)", args, 2, NULL);
}

int store__sqlite_fix_hash(sprig_store_t *s, const char *up, const char *node, const char *type,
                         const char *key, uint64_t hash)
{
    char h[24];
    snprintf(h, sizeof(h), "%lld", (long long)hash);
    int rc;
    if (up != NULL) {
        const char *args[] = {h, up, node, type, key};
        rc = run(s,
                 "UPDATE edge_points SET hash = CAST(?1 AS INTEGER) WHERE up = ?2 AND down = ?3"
                 " AND type = ?4 AND key = ?5",
                 args, 5, NULL);
    }
    else {
        const char *args[] = {h, node, type, key};
        rc = run(s,
                 "UPDATE points SET hash = CAST(?1 AS INTEGER) WHERE node = ?2 AND type = ?3"
                 " AND key = ?4",
                 args, 4, NULL);
    }
    return rc != 0 ? rc : (sqlite3_changes(s->db) > 0 ? 0 : -ENOENT);
}

int store__sqlite_delete_row(sprig_store_t *s, const char *table, const char *a, const char *b,
                           const char *type, const char *key)
{
    const char *args[] = {a, b, type, key};
    const char *sql;
    int n;
    if (strcmp(table, "nodes") == 0) {
        sql = "DELETE FROM nodes WHERE id = ?1", n = 1;
    }
    else if (strcmp(table, "edges") == 0) {
        sql = "DELETE FROM edges WHERE up = ?1 AND down = ?2", n = 2;
    }
    else if (strcmp(table, "points") == 0) {
        args[1] = type, args[2] = key;
        sql = "DELETE FROM points WHERE node = ?1 AND type = ?2 AND key = ?3", n = 3;
    }
    else if (strcmp(table, "edge_points") == 0) {
        sql = "DELETE FROM edge_points WHERE up = ?1 AND down = ?2 AND type = ?3 AND key = ?4";
        n = 4;
    }
    else {
        return -EINVAL;
    }
    int rc = run(s, sql, args, n, NULL);
    return rc != 0 ? rc : (sqlite3_changes(s->db) > 0 ? 0 : -ENOENT);
}
