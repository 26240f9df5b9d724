/* The store's history: series, the bulk index, trimming, and queries. A series is one (node, type,
 * key); history rows name it by integer id, and the index (series, time) serves the API's paged
 * reads while appends stay cheap. The map from names to ids lives in memory (loop thread); new
 * series are written in the same batch as their first sample. Queries use a read-only connection of
 * their own, so they never wait for (or disturb) a commit on the worker thread. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/log.h"
#include "store_internal.h"

/* Reads the history's id range and how far it is indexed. 0 or -errno. */
int store__history_range(sprig_store_t *s)
{
    long long indexed = 0;
    int rc = store__query_int(
        s->db, "SELECT ifnull((SELECT seq FROM sqlite_sequence WHERE name = 'history'), 0)",
        &s->hist_max);
    if (rc == 0) {
        rc = store__query_int(s->db, "SELECT ifnull(min(id), 0) FROM history", &s->hist_min);
    }
    if (rc == 0) {
        rc = store__query_int(s->db,
                              "SELECT ifnull((SELECT CAST(value AS INTEGER) FROM meta"
                              " WHERE key = 'history_indexed'), 0)",
                              &indexed);
    }
    if (rc != 0) {
        return rc; /* the range stays as it was */
    }
    if (s->hist_min == 0) {
        s->hist_min = s->hist_max + 1; /* empty */
    }
    s->hist_indexed = indexed;
    return 0;
}

/* Adds the rows appended since the last pass to history_idx, sorted by series so each
 * index page is written once per pass, when enough rows or time have gathered; now and
 * then sweeps index entries of trimmed rows. Worker thread, inside the transaction. */
int store__history_index(sprig_store_t *s, int64_t now)
{
    char sql[200];
    int rc = SQLITE_OK;
    if (s->hist_max > s->hist_indexed && (s->hist_max - s->hist_indexed >= HIST_INDEX_ROWS ||
                                          now - s->last_index >= HIST_INDEX_NS)) {
        snprintf(sql, sizeof(sql),
                 "INSERT OR IGNORE INTO history_idx(series, time, id) SELECT series, time, id"
                 " FROM history WHERE id > %lld ORDER BY series, time, id",
                 s->hist_indexed);
        rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            snprintf(sql, sizeof(sql),
                     "INSERT OR REPLACE INTO meta(key, value) VALUES('history_indexed', '%lld')",
                     s->hist_max);
            rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        }
        if (rc == SQLITE_OK) {
            s->hist_indexed = s->hist_max;
            s->last_index = now;
        }
    }
    if (rc == SQLITE_OK && s->hist_swept < s->hist_min && now - s->last_sweep >= HIST_SWEEP_NS) {
        snprintf(sql, sizeof(sql), "DELETE FROM history_idx WHERE id < %lld", s->hist_min);
        rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        s->hist_swept = s->hist_min;
        s->last_sweep = now;
    }
    return rc;
}

/* Drops history beyond the row limit, and (at most once a second) older than the age
 * limit, from the oldest id up. Worker thread, inside the batch's transaction. */
int store__history_trim(sprig_store_t *s, int64_t now)
{
    char sql[160];
    int rc = SQLITE_OK;
    long long max_rows = s->o.history_max_rows;
    long long keep_from = max_rows < 0 ? s->hist_max + 1 : s->hist_max - max_rows + 1;
    if (keep_from > s->hist_min) {
        snprintf(sql, sizeof(sql), "DELETE FROM history WHERE id < %lld", keep_from);
        rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        s->hist_min = keep_from;
    }
    if (rc == SQLITE_OK && now - s->last_age_trim >= 1000000000LL) {
        s->last_age_trim = now;
        long long cutoff = now - s->o.history_max_age_ns;
        for (int round = 0; round < 50 && rc == SQLITE_OK; round++) {
            snprintf(sql, sizeof(sql), "DELETE FROM history WHERE id < %lld AND accepted < %lld",
                     s->hist_min + HIST_TRIM_CHUNK, cutoff);
            rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
            if (rc != SQLITE_OK || sqlite3_changes(s->db) == 0) {
                break;
            }
            long long min;
            if (store__query_int(s->db, "SELECT ifnull(min(id), 0) FROM history", &min) != 0) {
                return SQLITE_ERROR;
            }
            s->hist_min = min != 0 ? min : s->hist_max + 1;
        }
    }
    return rc;
}

/* Builds "node\0type\0key" in buf; returns its length, or 0 when it does not fit. */
static size_t series_name(char *buf, size_t n, const char *node, const char *type, const char *key)
{
    size_t a = strlen(node), b = strlen(type), c = strlen(key);
    if (a + b + c + 3 > n) {
        return 0;
    }
    memcpy(buf, node, a + 1);
    memcpy(buf + a + 1, type, b + 1);
    memcpy(buf + a + b + 2, key, c + 1);
    return a + b + c + 3;
}

typedef struct name_key {
    const char *name;
    size_t len;
} name_key_t;

static bool series_eq(const void *item, const void *key)
{
    const series_t *se = item;
    const name_key_t *k = key;
    return se->len == k->len && memcmp(se->name, k->name, k->len) == 0;
}

static int series_add(sprig_store_t *s, const char *name, size_t len, uint64_t h, int64_t id)
{
    series_t *se = sprig_malloc(sizeof(*se) + len);
    if (se == NULL) {
        return -ENOMEM;
    }
    se->id = id;
    se->len = len;
    memcpy(se->name, name, len);
    if (tree__map_add(&s->series, h, se) != 0) {
        sprig_free(se);
        return -ENOMEM;
    }
    if (id > s->series_max) {
        s->series_max = id;
    }
    return 0;
}

int store__series(sprig_store_t *s, const char *node, const char *type, const char *key,
                  int64_t *id, bool *fresh)
{
    char name[3 * 65 + 8];
    size_t len = series_name(name, sizeof(name), node, type, key);
    if (len == 0) {
        return -EINVAL; /* ids are at most 64 bytes: checked at the write path */
    }
    uint64_t h = tree__hash_bytes(name, len);
    name_key_t k = {name, len};
    series_t *se = tree__map_get(&s->series, h, series_eq, &k);
    if (se != NULL) {
        *id = se->id;
        *fresh = false;
        return 0;
    }
    int rc = series_add(s, name, len, h, s->series_max + 1);
    if (rc == 0) {
        *id = s->series_max;
        *fresh = true;
    }
    return rc;
}

int store__series_put(sprig_store_t *s, const char *node, const char *type, const char *key,
                      int64_t id)
{
    char name[3 * 65 + 8];
    size_t len = series_name(name, sizeof(name), node, type, key);
    return len == 0 ? 0 : series_add(s, name, len, tree__hash_bytes(name, len), id);
}

bool store__series_find(sprig_store_t *s, const char *node, const char *type, const char *key,
                        int64_t *id)
{
    char name[3 * 65 + 8];
    size_t len = series_name(name, sizeof(name), node, type, key);
    if (len == 0) {
        return false;
    }
    name_key_t k = {name, len};
    series_t *se = tree__map_get(&s->series, tree__hash_bytes(name, len), series_eq, &k);
    if (se != NULL) {
        *id = se->id;
    }
    return se != NULL;
}

int store__series_load(sprig_store_t *s)
{
    sqlite3_stmt *st;
    char name[3 * 65 + 8];
    int rc = sqlite3_prepare_v2(s->db, "SELECT id, node, type, key FROM series", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return store__map_sqlite(rc);
    }
    int out = 0;
    while (out == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t len = series_name(name, sizeof(name), (const char *)sqlite3_column_text(st, 1),
                                 (const char *)sqlite3_column_text(st, 2),
                                 (const char *)sqlite3_column_text(st, 3));
        if (len != 0) {
            out =
                series_add(s, name, len, tree__hash_bytes(name, len), sqlite3_column_int64(st, 0));
        }
    }
    sqlite3_finalize(st);
    return out != 0 ? out : (rc == SQLITE_DONE ? 0 : store__map_sqlite(rc));
}

void store__series_free(sprig_store_t *s)
{
    for (size_t i = 0; i < s->series.cap; i++) {
        sprig_free(s->series.items[i]);
    }
    tree__map_free(&s->series);
    sqlite3_close(s->rdb);
    s->rdb = NULL;
}

/* Opens the read-only history reader once; 0 or an SQLite error (logged). */
static int open_reader(sprig_store_t *s)
{
    if (s->rdb != NULL) {
        return 0;
    }
    const char *path = sqlite3_db_filename(s->db, "main");
    int rc = sqlite3_open_v2(path, &s->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        sprig_log_error("database %s: history reader cannot open: %s", path, sqlite3_errstr(rc));
        sqlite3_close(s->rdb);
        s->rdb = NULL;
        return rc;
    }
    sqlite3_busy_timeout(s->rdb, 2000);
    return 0;
}

long store__sqlite_history_after(sprig_store_t *s, int64_t after_id, size_t limit,
                                 sprig_store_history_after_fn fn, void *arg)
{
    if (open_reader(s) != 0) {
        return -EIO;
    }
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->rdb,
                                "SELECT h.id, s.node, s.type, s.key, h.time, h.value, h.text,"
                                " h.tombstone, h.origin FROM history h JOIN series s"
                                " ON s.id = h.series WHERE h.id > ?1 ORDER BY h.id LIMIT ?2",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return store__map_sqlite(rc);
    }
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    long n = 0;
    int stop = 0;
    while (stop == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sprig_point_t p = {
            .type = (const char *)sqlite3_column_text(st, 2),
            .key = (const char *)sqlite3_column_text(st, 3),
            .time = sqlite3_column_int64(st, 4),
            .value = store__col_value(st, 5),
            .text = (const char *)sqlite3_column_text(st, 6),
            .tombstone = sqlite3_column_int(st, 7),
            .origin = (const char *)sqlite3_column_text(st, 8),
        };
        stop = fn((const char *)sqlite3_column_text(st, 1), &p, sqlite3_column_int64(st, 0), arg);
        n++;
    }
    sqlite3_finalize(st);
    if (stop == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return store__map_sqlite(rc);
    }
    return n;
}

long store__sqlite_history(sprig_store_t *s, const sprig_store_history_query_t *q,
                           sprig_store_history_fn fn, void *arg)
{
    /* The indexed part through history_idx, then the tail not yet indexed by a scan of
     * its (short) id range; each ordered and limited, then merged. */
#define HIST_COLS "h.id, h.time, h.value, h.text, h.tombstone, h.origin"
#define HIST_TAIL                                                                                  \
    "(SELECT ifnull((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'history_indexed'), 0))"
    static const char *const sql[2] = {
        "SELECT * FROM (SELECT " HIST_COLS " FROM history_idx i JOIN history h ON h.id = i.id"
        " WHERE i.series = ?1 AND i.time >= ?2 AND i.time < ?3"
        " AND (?5 = 0 OR i.time > ?4 OR (i.time = ?4 AND i.id > ?5))"
        " ORDER BY i.time, i.id LIMIT ?6)"
        " UNION ALL SELECT * FROM (SELECT " HIST_COLS " FROM history h"
        " WHERE h.id > " HIST_TAIL " AND h.series = ?1 AND h.time >= ?2 AND h.time < ?3"
        " AND (?5 = 0 OR h.time > ?4 OR (h.time = ?4 AND h.id > ?5))"
        " ORDER BY h.time, h.id LIMIT ?6)"
        " ORDER BY 2, 1 LIMIT ?6",
        "SELECT * FROM (SELECT " HIST_COLS " FROM history_idx i JOIN history h ON h.id = i.id"
        " WHERE i.series = ?1 AND i.time >= ?2 AND i.time < ?3"
        " AND (?5 = 0 OR i.time < ?4 OR (i.time = ?4 AND i.id < ?5))"
        " ORDER BY i.time DESC, i.id DESC LIMIT ?6)"
        " UNION ALL SELECT * FROM (SELECT " HIST_COLS " FROM history h"
        " WHERE h.id > " HIST_TAIL " AND h.series = ?1 AND h.time >= ?2 AND h.time < ?3"
        " AND (?5 = 0 OR h.time < ?4 OR (h.time = ?4 AND h.id < ?5))"
        " ORDER BY h.time DESC, h.id DESC LIMIT ?6)"
        " ORDER BY 2 DESC, 1 DESC LIMIT ?6",
    };
#undef HIST_COLS
#undef HIST_TAIL
    int64_t series;
    if (!store__series_find(s, q->node, q->type, q->key, &series)) {
        return 0; /* no sample of that series was ever stored */
    }
    if (open_reader(s) != 0) {
        return -EIO;
    }
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->rdb, sql[q->desc ? 1 : 0], -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return store__map_sqlite(rc);
    }
    sqlite3_bind_int64(st, 1, series);
    sqlite3_bind_int64(st, 2, q->from);
    sqlite3_bind_int64(st, 3, q->to > 0 ? q->to : INT64_MAX);
    sqlite3_bind_int64(st, 4, q->after_time);
    sqlite3_bind_int64(st, 5, q->after_id);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)q->limit);
    long n = 0;
    int stop = 0;
    while (stop == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sprig_point_t p = {
            .type = q->type,
            .key = q->key,
            .time = sqlite3_column_int64(st, 1),
            .value = store__col_value(st, 2),
            .text = (const char *)sqlite3_column_text(st, 3),
            .tombstone = sqlite3_column_int(st, 4),
            .origin = (const char *)sqlite3_column_text(st, 5),
        };
        stop = fn(&p, sqlite3_column_int64(st, 0), arg);
        n++;
    }
    sqlite3_finalize(st);
    if (stop == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return store__map_sqlite(rc);
    }
    return n;
}
