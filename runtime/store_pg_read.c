/* The PostgreSQL backend's reads and repairs: loading every row at start (in single-row
 * mode, so a large tree is not held twice), meta, the fixes of store verify --fix, and the
 * history pages on a connection of their own. See store_pg.c. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/log.h"
#include "store_pg.h"

/* Runs sql with params on conn; the result, or NULL with the error logged and *rc set. */
static PGresult *run(sprig_store_t *s, PGconn *conn, const char *sql, int n,
                     const char *const *params, int *rc)
{
    PGresult *res = store__pq.execParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = store__pq.resultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char why[512];
        *rc = store__pg_code(conn, res);
        sprig_log_error("database %s: %s", s->path, store__pg_error(conn, why, sizeof(why)));
        store__pq.clear(res);
        return NULL;
    }
    *rc = 0;
    return res;
}

static int64_t col_int(const PGresult *res, int row, int col)
{
    return strtoll(store__pq.getvalue(res, row, col), NULL, 10);
}

static void col_point(const PGresult *res, int row, int first, sprig_point_t *p)
{
    p->type = store__pq.getvalue(res, row, first);
    p->key = store__pq.getvalue(res, row, first + 1);
    p->time = col_int(res, row, first + 2);
    p->value = strtod(store__pq.getvalue(res, row, first + 3), NULL);
    p->text = store__pq.getvalue(res, row, first + 4);
    p->tombstone = (int)col_int(res, row, first + 5);
    p->origin = store__pq.getvalue(res, row, first + 6);
}

int store__pg_series_load(sprig_store_t *s, char *why, size_t n)
{
    PGresult *res = store__pq.execParams(s->pg->w, "SELECT id, node, type, key FROM series", 0, NULL,
                                 NULL, NULL, NULL, 0);
    if (store__pq.resultStatus(res) != PGRES_TUPLES_OK) {
        int rc = store__pg_code(s->pg->w, res);
        store__pg_error(s->pg->w, why, n);
        store__pq.clear(res);
        return rc;
    }
    int rc = 0;
    for (int i = 0; i < store__pq.ntuples(res) && rc == 0; i++) {
        rc = store__series_put(s, store__pq.getvalue(res, i, 1), store__pq.getvalue(res, i, 2),
                               store__pq.getvalue(res, i, 3), col_int(res, i, 0));
    }
    store__pq.clear(res);
    return rc;
}

int store__pg_load(sprig_store_t *s, const sprig_store_visitor_t *v)
{
    static const char *const sql[] = {
        "SELECT id, type FROM nodes",
        "SELECT up, down FROM edges",
        "SELECT node, type, key, time, value, text, tombstone, origin, hash FROM points",
        "SELECT up, down, type, key, time, value, text, tombstone, origin, hash FROM edge_points",
    };
    PGconn *conn = s->pg->w;
    int rc = 0;
    char why[512];
    for (int q = 0; q < 4 && rc == 0; q++) {
        if (!store__pq.sendQueryParams(conn, sql[q], 0, NULL, NULL, NULL, NULL, 0) ||
            !store__pq.setSingleRowMode(conn)) {
            sprig_log_error("database %s: %s", s->path, store__pg_error(conn, why, sizeof(why)));
            return store__pg_code(conn, NULL);
        }
        PGresult *res;
        int failed = 0;
        while ((res = store__pq.getResult(conn)) != NULL) {
            ExecStatusType st = store__pq.resultStatus(res);
            if (st == PGRES_SINGLE_TUPLE && rc == 0) {
                sprig_point_t p;
                switch (q) {
                case 0:
                    rc = v->node != NULL ? v->node(store__pq.getvalue(res, 0, 0), store__pq.getvalue(res, 0, 1),
                                                   v->arg)
                                         : 0;
                    break;
                case 1:
                    rc = v->edge != NULL ? v->edge(store__pq.getvalue(res, 0, 0), store__pq.getvalue(res, 0, 1),
                                                   v->arg)
                                         : 0;
                    break;
                case 2:
                    col_point(res, 0, 1, &p);
                    rc = v->point != NULL ? v->point(store__pq.getvalue(res, 0, 0), &p,
                                                     (uint64_t)col_int(res, 0, 8), v->arg)
                                          : 0;
                    break;
                default:
                    col_point(res, 0, 2, &p);
                    rc = v->edge_point != NULL
                             ? v->edge_point(store__pq.getvalue(res, 0, 0), store__pq.getvalue(res, 0, 1), &p,
                                             (uint64_t)col_int(res, 0, 9), v->arg)
                             : 0;
                    break;
                }
            }
            else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && failed == 0) {
                failed = store__pg_code(conn, res);
                sprig_log_error("database %s: %s", s->path,
                                store__pg_error(conn, why, sizeof(why)));
            }
            store__pq.clear(res); /* read to the end even after a visitor stopped: the next query */
        }
        if (rc == 0 && failed != 0) {
            rc = failed;
        }
    }
    return rc;
}

int store__pg_meta_get(sprig_store_t *s, const char *key, char *out, size_t n)
{
    const char *params[] = {s->pg->device, key};
    int rc;
    PGresult *res =
        run(s, s->pg->w, "SELECT value FROM meta WHERE device = $1 AND key = $2", 2, params, &rc);
    if (res == NULL) {
        return rc;
    }
    rc = store__pq.ntuples(res) > 0 ? 0 : -ENOENT;
    if (rc == 0) {
        snprintf(out, n, "%s", store__pq.getvalue(res, 0, 0));
    }
    store__pq.clear(res);
    return rc;
}

int store__pg_meta_set(sprig_store_t *s, const char *key, const char *value)
{
    const char *params[] = {s->pg->device, key, value};
    int rc;
    PGresult *res = run(s, s->pg->w,
                        "INSERT INTO meta(device, key, value) VALUES($1, $2, $3)"
                        " ON CONFLICT (device, key) DO UPDATE SET value = excluded.value",
                        3, params, &rc);
    store__pq.clear(res);
    return rc;
}

/* Runs a statement that changes rows; 0, -ENOENT when it changed none, or the error. */
static int change(sprig_store_t *s, const char *sql, int n, const char *const *params)
{
    int rc;
    PGresult *res = run(s, s->pg->w, sql, n, params, &rc);
    if (res == NULL) {
        return rc;
    }
    rc = strcmp(store__pq.cmdTuples(res), "0") == 0 ? -ENOENT : 0;
    store__pq.clear(res);
    return rc;
}

int store__pg_fix_hash(sprig_store_t *s, const char *up, const char *node, const char *type,
                       const char *key, uint64_t hash)
{
    char h[24];
    snprintf(h, sizeof(h), "%" PRId64, (int64_t)hash);
    if (up != NULL) {
        const char *params[] = {h, up, node, type, key};
        return change(s,
                      "UPDATE edge_points SET hash = $1 WHERE up = $2 AND down = $3"
                      " AND type = $4 AND key = $5",
                      5, params);
    }
    const char *params[] = {h, node, type, key};
    return change(s, "UPDATE points SET hash = $1 WHERE node = $2 AND type = $3 AND key = $4", 4,
                  params);
}

int store__pg_delete_row(sprig_store_t *s, const char *table, const char *a, const char *b,
                         const char *type, const char *key)
{
    /* Node ids are unique across devices: the rows are found without their device. */
    const char *params[] = {a, b, type, key};
    if (strcmp(table, "nodes") == 0) {
        return change(s, "DELETE FROM nodes WHERE id = $1", 1, params);
    }
    if (strcmp(table, "edges") == 0) {
        return change(s, "DELETE FROM edges WHERE up = $1 AND down = $2", 2, params);
    }
    if (strcmp(table, "points") == 0) {
        const char *p[] = {a, type, key};
        return change(s, "DELETE FROM points WHERE node = $1 AND type = $2 AND key = $3", 3, p);
    }
    if (strcmp(table, "edge_points") == 0) {
        return change(s,
                      "DELETE FROM edge_points WHERE up = $1 AND down = $2 AND type = $3"
                      " AND key = $4",
                      4, params);
    }
    return -EINVAL;
}

/* The history reader's connection, opened once; NULL when it cannot be. */
static PGconn *reader(sprig_store_t *s)
{
    if (s->pg->r != NULL && store__pq.status(s->pg->r) != CONNECTION_OK) {
        store__pq.reset(s->pg->r);
    }
    if (s->pg->r == NULL) {
        char why[512];
        /* Pages are read on the loop thread: a short bound (see the README's note on it). */
        s->pg->r = store__pg_connect(s->pg->uri, 3, why, sizeof(why));
        if (s->pg->r == NULL) {
            sprig_log_error("database %s: history reader cannot connect: %s", s->path, why);
        }
    }
    return s->pg->r != NULL && store__pq.status(s->pg->r) == CONNECTION_OK ? s->pg->r : NULL;
}

long store__pg_history_after(sprig_store_t *s, int64_t after_id, size_t limit,
                             sprig_store_history_after_fn fn, void *arg)
{
    PGconn *conn = reader(s);
    if (conn == NULL) {
        return -EIO;
    }
    char after[24], lim[24];
    snprintf(after, sizeof(after), "%" PRId64, after_id);
    snprintf(lim, sizeof(lim), "%zu", limit);
    const char *params[] = {s->pg->device, after, lim};
    int rc;
    PGresult *res = run(s, conn,
                        "SELECT h.id, s.node, s.type, s.key, h.time, h.value, h.text, h.tombstone,"
                        " h.origin FROM history h JOIN series s ON s.device = h.device"
                        " AND s.id = h.series WHERE h.device = $1 AND h.id > $2"
                        " ORDER BY h.id LIMIT $3",
                        3, params, &rc);
    if (res == NULL) {
        return rc;
    }
    long n = 0;
    int stop = 0;
    for (int i = 0; i < store__pq.ntuples(res) && stop == 0; i++) {
        sprig_point_t p;
        col_point(res, i, 2, &p);
        stop = fn(store__pq.getvalue(res, i, 1), &p, col_int(res, i, 0), arg);
        n++;
    }
    store__pq.clear(res);
    return n;
}

long store__pg_history(sprig_store_t *s, const sprig_store_history_query_t *q,
                       sprig_store_history_fn fn, void *arg)
{
    static const char *const sql[2] = {
        "SELECT id, time, value, text, tombstone, origin FROM history WHERE device = $1"
        " AND series = $2 AND time >= $3 AND time < $4"
        " AND ($6 = 0 OR time > $5 OR (time = $5 AND id > $6)) ORDER BY time, id LIMIT $7",
        "SELECT id, time, value, text, tombstone, origin FROM history WHERE device = $1"
        " AND series = $2 AND time >= $3 AND time < $4"
        " AND ($6 = 0 OR time < $5 OR (time = $5 AND id < $6))"
        " ORDER BY time DESC, id DESC LIMIT $7",
    };
    int64_t series;
    if (!store__series_find(s, q->node, q->type, q->key, &series)) {
        return 0; /* no sample of that series was ever stored */
    }
    PGconn *conn = reader(s);
    if (conn == NULL) {
        return -EIO;
    }
    char v[6][24];
    snprintf(v[0], 24, "%" PRId64, series);
    snprintf(v[1], 24, "%" PRId64, q->from);
    snprintf(v[2], 24, "%" PRId64, q->to > 0 ? q->to : INT64_MAX);
    snprintf(v[3], 24, "%" PRId64, q->after_time);
    snprintf(v[4], 24, "%" PRId64, q->after_id);
    snprintf(v[5], 24, "%zu", q->limit);
    const char *device = s->device_fn != NULL ? s->device_fn(q->node, s->device_arg) : NULL;
    const char *params[] = {device != NULL ? device : "", v[0], v[1], v[2], v[3], v[4], v[5]};
    int rc;
    PGresult *res = run(s, conn, sql[q->desc ? 1 : 0], 7, params, &rc);
    if (res == NULL) {
        return rc;
    }
    long n = 0;
    int stop = 0;
    for (int i = 0; i < store__pq.ntuples(res) && stop == 0; i++) {
        sprig_point_t p = {
            .type = q->type,
            .key = q->key,
            .time = col_int(res, i, 1),
            .value = strtod(store__pq.getvalue(res, i, 2), NULL),
            .text = store__pq.getvalue(res, i, 3),
            .tombstone = (int)col_int(res, i, 4),
            .origin = store__pq.getvalue(res, i, 5),
        };
        stop = fn(&p, col_int(res, i, 0), arg);
        n++;
    }
    store__pq.clear(res);
    return n;
}
