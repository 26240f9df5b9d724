/* The PostgreSQL backend of the store (DESIGN.md section 11): the store of record of a
 * fleet. The tables are the SQLite layout's plus the device each row belongs to; history
 * is partitioned by the day it was stored (`accepted`, a clock that only moves forward,
 * so a batch lands in one partition however old its samples are) and its retention drops
 * whole partitions. sprig creates and migrates the tables (table sprig_layout holds the
 * version), under an advisory lock so that workers starting together do not race.
 *
 * A batch is one transaction: its rows go in by COPY into temporary tables, then one
 * INSERT ... SELECT per table (the later write of a point in the batch wins, as in SQLite);
 * history rows are copied straight into the partitioned table. Commits run on the store's
 * worker thread; reads and repairs on the loop thread when no batch is in flight, on the
 * same connection; history pages on a connection of their own. Every wait is bounded:
 * connect_timeout, tcp_user_timeout and keepalives for a peer that vanished, and
 * statement_timeout for a query that runs too long. A connection that broke is reset
 * before the next commit; the store's retries (store.c) do the rest.
 *
 * Reads are in store_pg_read.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/util.h"
#include "store_internal.h"
#include "store_pg.h"

#define DAY_NS ((int64_t)86400 * 1000000000)
#define RETENTION_EVERY_NS ((int64_t)60 * 1000000000)
#define LAYOUT_LOCK 0x53505247 /* advisory lock key while the layout is made or migrated */

static const char *const layout_v1[] = {
    "CREATE TABLE sprig_layout(version INTEGER NOT NULL)",
    "CREATE TABLE meta(device TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY(device, key))",
    "CREATE TABLE nodes(device TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,"
    " PRIMARY KEY(device, id))",
    "CREATE TABLE edges(device TEXT NOT NULL, up TEXT NOT NULL, down TEXT NOT NULL,"
    " PRIMARY KEY(device, up, down))",
    "CREATE TABLE points(device TEXT NOT NULL, node TEXT NOT NULL, type TEXT NOT NULL,"
    " key TEXT NOT NULL, time BIGINT NOT NULL, value DOUBLE PRECISION NOT NULL,"
    " text TEXT NOT NULL, tombstone SMALLINT NOT NULL, origin TEXT NOT NULL,"
    " hash BIGINT NOT NULL, PRIMARY KEY(device, node, type, key))",
    "CREATE TABLE edge_points(device TEXT NOT NULL, up TEXT NOT NULL, down TEXT NOT NULL,"
    " type TEXT NOT NULL, key TEXT NOT NULL, time BIGINT NOT NULL,"
    " value DOUBLE PRECISION NOT NULL, text TEXT NOT NULL, tombstone SMALLINT NOT NULL,"
    " origin TEXT NOT NULL, hash BIGINT NOT NULL, PRIMARY KEY(device, up, down, type, key))",
    "CREATE TABLE series(device TEXT NOT NULL, id BIGINT NOT NULL, node TEXT NOT NULL,"
    " type TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY(device, id),"
    " UNIQUE(device, node, type, key))",
    "CREATE TABLE history(id BIGSERIAL NOT NULL, device TEXT NOT NULL, series BIGINT NOT NULL,"
    " time BIGINT NOT NULL, value DOUBLE PRECISION NOT NULL, text TEXT NOT NULL,"
    " tombstone SMALLINT NOT NULL, origin TEXT NOT NULL, accepted BIGINT NOT NULL)"
    " PARTITION BY RANGE (accepted)",
    "CREATE INDEX history_series ON history(device, series, time, id)",
    "CREATE INDEX history_id ON history(device, id)",
    /* The last batch each writer committed: a commit whose answer was lost (the server
     * died after it) is found here rather than written twice. */
    "CREATE TABLE sprig_commits(writer TEXT PRIMARY KEY, seq BIGINT NOT NULL)",
    "INSERT INTO sprig_layout(version) VALUES(1)",
    NULL,
};

/* migrations[v] takes a database from layout version v to v + 1. */
static const char *const *const migrations[] = {layout_v1};

/* The staging tables a batch is copied into, on the writer's session. */
static const char *const staging[] = {
    "CREATE TEMP TABLE nodes_in(device TEXT, id TEXT, type TEXT) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE edges_in(device TEXT, up TEXT, down TEXT) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE points_in(seq BIGINT, device TEXT, node TEXT, type TEXT, key TEXT,"
    " time BIGINT, value DOUBLE PRECISION, text TEXT, tombstone SMALLINT, origin TEXT,"
    " hash BIGINT) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE edge_points_in(seq BIGINT, device TEXT, up TEXT, down TEXT, type TEXT,"
    " key TEXT, time BIGINT, value DOUBLE PRECISION, text TEXT, tombstone SMALLINT,"
    " origin TEXT, hash BIGINT) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE series_in(device TEXT, id BIGINT, node TEXT, type TEXT, key TEXT)"
    " ON COMMIT DELETE ROWS",
    NULL,
};

enum { IN_NODES, IN_EDGES, IN_POINTS, IN_EDGE_POINTS, IN_SERIES, IN_HISTORY, IN_COUNT };

static const char *const copy_sql[IN_COUNT] = {
    "COPY nodes_in FROM STDIN",
    "COPY edges_in FROM STDIN",
    "COPY points_in FROM STDIN",
    "COPY edge_points_in FROM STDIN",
    "COPY series_in FROM STDIN",
    "COPY history(device, series, time, value, text, tombstone, origin, accepted) FROM STDIN",
};

/* From the staging tables into the tables, in one transaction with the copies. */
static const char *const merge_sql[IN_HISTORY] = {
    "INSERT INTO nodes SELECT DISTINCT ON (device, id) device, id, type FROM nodes_in"
    " ORDER BY device, id ON CONFLICT DO NOTHING",
    "INSERT INTO edges SELECT DISTINCT device, up, down FROM edges_in ON CONFLICT DO NOTHING",
    "INSERT INTO points SELECT DISTINCT ON (device, node, type, key) device, node, type, key,"
    " time, value, text, tombstone, origin, hash FROM points_in"
    " ORDER BY device, node, type, key, seq DESC"
    " ON CONFLICT (device, node, type, key) DO UPDATE SET time = excluded.time,"
    " value = excluded.value, text = excluded.text, tombstone = excluded.tombstone,"
    " origin = excluded.origin, hash = excluded.hash",
    "INSERT INTO edge_points SELECT DISTINCT ON (device, up, down, type, key) device, up, down,"
    " type, key, time, value, text, tombstone, origin, hash FROM edge_points_in"
    " ORDER BY device, up, down, type, key, seq DESC"
    " ON CONFLICT (device, up, down, type, key) DO UPDATE SET time = excluded.time,"
    " value = excluded.value, text = excluded.text, tombstone = excluded.tombstone,"
    " origin = excluded.origin, hash = excluded.hash",
    "INSERT INTO series SELECT DISTINCT ON (device, id) device, id, node, type, key"
    " FROM series_in ORDER BY device, id ON CONFLICT DO NOTHING",
};

/* --- text for COPY ------------------------------------------------------------------- */

/* Appends s as a COPY text field (backslash, tab, newline and CR escaped) and sep. */
static void buf_text(sbuf_t *b, const char *s, char sep)
{
    size_t n = strlen(s);
    char *o = sb_reserve(b, 2 * n + 1);
    if (o == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        switch (c) {
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        default:
            *o++ = c;
        }
    }
    *o++ = sep;
    b->len = (size_t)(o - b->p);
}

static void buf_int(sbuf_t *b, int64_t v, char sep)
{
    char *o = sb_reserve(b, 24);
    if (o != NULL) {
        b->len += (size_t)snprintf(o, 24, "%" PRId64 "%c", v, sep);
    }
}

/* 17 significant digits: the double read back is the one written. */
static void buf_double(sbuf_t *b, double v, char sep)
{
    char *o = sb_reserve(b, 32);
    if (o != NULL) {
        b->len += (size_t)snprintf(o, 32, "%.17g%c", v, sep);
    }
}

/* The fields of a point row after its leading ones: type, key, time, value, text,
 * tombstone, origin, hash. */
static void buf_point(sbuf_t *b, const row_t *r)
{
    buf_text(b, r->type, '\t');
    buf_text(b, r->key, '\t');
    buf_int(b, r->time, '\t');
    buf_double(b, r->value, '\t');
    buf_text(b, r->text, '\t');
    buf_int(b, r->tombstone, '\t');
    buf_text(b, r->origin, '\t');
    buf_int(b, (int64_t)r->hash, '\n');
}

/* --- connection ---------------------------------------------------------------------- */

/* The last error of conn in one line, in buf. */
const char *store__pg_error(PGconn *conn, char *buf, size_t n)
{
    snprintf(buf, n, "%s", conn != NULL ? store__pq.errorMessage(conn) : "out of memory");
    size_t len = strlen(buf);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) {
        buf[--len] = '\0';
    }
    for (char *p = buf; *p != '\0'; p++) {
        if (*p == '\n') {
            *p = ' ';
        }
    }
    return buf;
}

/* -errno for a failed result or connection: a connection that broke is -ECONNRESET, a
 * full disk -ENOSPC, a query cancelled by statement_timeout -ETIMEDOUT, the rest -EIO. */
int store__pg_code(PGconn *conn, const PGresult *res)
{
    if (conn == NULL || store__pq.status(conn) != CONNECTION_OK) {
        return -ECONNRESET;
    }
    const char *state = res != NULL ? store__pq.resultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strncmp(state, "53100", 5) == 0) {
        return -ENOSPC;
    }
    if (state != NULL && strncmp(state, "57014", 5) == 0) {
        return -ETIMEDOUT;
    }
    return -EIO;
}

/* Opens a connection to uri with sprig's bounds; the URI's own settings win over them.
 * timeout_s bounds each statement on it, and how long sent data may go unacknowledged
 * (a server that vanished without a word). */
PGconn *store__pg_connect(const char *uri, int timeout_s, char *why, size_t n)
{
    char tcp_ms[24];
    snprintf(tcp_ms, sizeof(tcp_ms), "%d", (timeout_s < 15 ? timeout_s : 15) * 1000);
    const char *const keys[] = {"connect_timeout", "keepalives",     "keepalives_idle",
                                "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                                "application_name", "dbname",        NULL};
    const char *const values[] = {"5", "1", "10", "5", "3", tcp_ms, "sprig", uri, NULL};
    PGconn *conn = store__pq.connectdbParams(keys, values, 1);
    if (conn == NULL || store__pq.status(conn) != CONNECTION_OK) {
        store__pg_error(conn, why, n);
        store__pq.finish(conn);
        return NULL;
    }
    char sql[96];
    snprintf(sql, sizeof(sql),
             "SET statement_timeout = %d; SET client_min_messages = warning; "
             "SET TIME ZONE 'UTC'",
             timeout_s * 1000);
    PGresult *res = store__pq.exec(conn, sql);
    bool ok = store__pq.resultStatus(res) == PGRES_COMMAND_OK;
    store__pq.clear(res);
    if (!ok) {
        store__pg_error(conn, why, n);
        store__pq.finish(conn);
        return NULL;
    }
    return conn;
}

/* Runs sql with no result rows; 0 or -errno with the reason in why. */
int store__pg_exec(PGconn *conn, const char *sql, char *why, size_t n)
{
    PGresult *res = store__pq.exec(conn, sql);
    int rc = 0;
    if (store__pq.resultStatus(res) != PGRES_COMMAND_OK && store__pq.resultStatus(res) != PGRES_TUPLES_OK) {
        rc = store__pg_code(conn, res);
        store__pg_error(conn, why, n);
    }
    store__pq.clear(res);
    return rc;
}

/* The first column of the first row of sql as an integer (0 when there is none). */
static int query_int(PGconn *conn, const char *sql, long long *out, char *why, size_t n)
{
    PGresult *res = store__pq.exec(conn, sql);
    int rc = 0;
    if (store__pq.resultStatus(res) != PGRES_TUPLES_OK) {
        rc = store__pg_code(conn, res);
        store__pg_error(conn, why, n);
    }
    else {
        *out = store__pq.ntuples(res) > 0 && !store__pq.getisnull(res, 0, 0) ? strtoll(store__pq.getvalue(res, 0, 0), NULL, 10)
                                                              : 0;
    }
    store__pq.clear(res);
    return rc;
}

/* "postgresql://user@host:port/db": the URI as logs may show it, without a password. */
static void display_uri(const char *uri, char *out, size_t n)
{
    const char *scheme_end = strstr(uri, "://");
    const char *at = scheme_end != NULL ? strchr(scheme_end + 3, '@') : NULL;
    const char *colon = at != NULL ? memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3)) : NULL;
    if (colon == NULL) {
        snprintf(out, n, "%s", uri);
    }
    else {
        snprintf(out, n, "%.*s%s", (int)(colon - uri), uri, at);
    }
    char *q = strchr(out, '?'); /* parameters may hold a password too */
    if (q != NULL) {
        *q = '\0';
    }
}

/* --- layout -------------------------------------------------------------------------- */

/* Creates or migrates the tables to SPRIG_STORE_VERSION, one transaction per step, under
 * the layout lock; refuses a database whose tables are not sprig's, or newer. */
static int layout(sprig_store_t *s, sprig_error_t *err)
{
    store_pg_t *pg = s->pg;
    char why[512], sql[96];
    long long has_layout = 0, tables = 0, version = 0;
    int rc = store__pg_exec(pg->w, "BEGIN", why, sizeof(why));
    if (rc == 0) {
        snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)", LAYOUT_LOCK);
        rc = store__pg_exec(pg->w, sql, why, sizeof(why));
    }
    if (rc == 0) {
        rc = query_int(pg->w, "SELECT count(*) FROM pg_tables WHERE tablename = 'sprig_layout'"
                              " AND schemaname = current_schema()",
                       &has_layout, why, sizeof(why));
    }
    if (rc == 0) {
        rc = query_int(pg->w,
                       "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
                       " AND tablename IN ('meta', 'nodes', 'edges', 'points', 'edge_points',"
                       " 'series', 'history')",
                       &tables, why, sizeof(why));
    }
    if (rc == 0 && has_layout) {
        rc = query_int(pg->w, "SELECT max(version) FROM sprig_layout", &version, why, sizeof(why));
    }
    if (rc != 0) {
        store__pg_exec(pg->w, "ROLLBACK", why + 256, 256);
        return sprig_error_set(err, rc, "database %s: cannot be read: %s", s->path, why);
    }
    if (!has_layout && tables != 0) {
        store__pg_exec(pg->w, "ROLLBACK", why, sizeof(why));
        return sprig_error_set(err, SPRIG_ECORRUPT,
                               "database %s: is not a sprig database (it has tables named like "
                               "sprig's, %lld of them, but no sprig_layout)",
                               s->path, tables);
    }
    if (version > SPRIG_STORE_VERSION) {
        store__pg_exec(pg->w, "ROLLBACK", why, sizeof(why));
        return sprig_error_set(err, SPRIG_ECORRUPT,
                               "database %s: layout version %lld is newer than this sprig reads "
                               "(%d)",
                               s->path, version, SPRIG_STORE_VERSION);
    }
    if (s->o.read_only && version < SPRIG_STORE_VERSION) {
        store__pg_exec(pg->w, "ROLLBACK", why, sizeof(why));
        return sprig_error_set(err, SPRIG_ECORRUPT,
                               "database %s: layout version %lld must be migrated to %d; open it "
                               "for writing once",
                               s->path, version, SPRIG_STORE_VERSION);
    }
    for (; rc == 0 && version < SPRIG_STORE_VERSION; version++) {
        for (const char *const *q = migrations[version]; rc == 0 && *q != NULL; q++) {
            rc = store__pg_exec(pg->w, *q, why, sizeof(why));
        }
        if (rc == 0 && version > 0) {
            snprintf(sql, sizeof(sql), "UPDATE sprig_layout SET version = %lld", version + 1);
            rc = store__pg_exec(pg->w, sql, why, sizeof(why));
        }
    }
    if (rc == 0) {
        rc = store__pg_exec(pg->w, "COMMIT", why, sizeof(why));
    }
    if (rc != 0) {
        char ignored[256];
        store__pg_exec(pg->w, "ROLLBACK", ignored, sizeof(ignored));
        return sprig_error_set(err, rc, "database %s: layout version %d cannot be made: %s",
                               s->path, SPRIG_STORE_VERSION, why);
    }
    return 0;
}

/* --- history partitions -------------------------------------------------------------- */

static void partition_name(int64_t day, char *out, size_t n)
{
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, n, "history_%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static bool day_known(const store_pg_t *pg, int64_t day)
{
    for (size_t i = 0; i < pg->ndays; i++) {
        if (pg->days[i] == day) {
            return true;
        }
    }
    return false;
}

/* Makes the partition of day (days since 1970, UTC) unless it is known to exist; under
 * the layout lock, in a transaction of its own. Worker thread. */
static int partition(store_pg_t *pg, int64_t day, char *why, size_t n)
{
    if (day_known(pg, day)) {
        return 0;
    }
    char name[48], sql[256];
    partition_name(day, name, sizeof(name));
    snprintf(sql, sizeof(sql),
             "BEGIN; SELECT pg_advisory_xact_lock(%d); CREATE TABLE IF NOT EXISTS %s PARTITION OF"
             " history FOR VALUES FROM (%" PRId64 ") TO (%" PRId64 "); COMMIT",
             LAYOUT_LOCK, name, day * DAY_NS, (day + 1) * DAY_NS);
    int rc = store__pg_exec(pg->w, sql, why, n);
    if (rc != 0) {
        char ignored[256];
        store__pg_exec(pg->w, "ROLLBACK", ignored, sizeof(ignored));
        return rc;
    }
    if (pg->ndays == sizeof(pg->days) / sizeof(pg->days[0])) {
        memmove(pg->days, pg->days + 1, (pg->ndays - 1) * sizeof(pg->days[0]));
        pg->ndays--;
    }
    pg->days[pg->ndays++] = day;
    return 0;
}

/* Drops the partitions wholly older than the history's age limit, at most once a minute.
 * Worker thread, outside the batch's transaction. */
static int retention(sprig_store_t *s, int64_t now, char *why, size_t n)
{
    store_pg_t *pg = s->pg;
    if (now - pg->last_retention < RETENTION_EVERY_NS) {
        return 0;
    }
    pg->last_retention = now;
    int64_t keep_from = (now - s->o.history_max_age_ns) / DAY_NS; /* first day kept */
    PGresult *res = store__pq.exec(pg->w, "SELECT c.relname FROM pg_inherits i JOIN pg_class c"
                                  " ON c.oid = i.inhrelid WHERE i.inhparent = 'history'::regclass");
    if (store__pq.resultStatus(res) != PGRES_TUPLES_OK) {
        int rc = store__pg_code(pg->w, res);
        store__pg_error(pg->w, why, n);
        store__pq.clear(res);
        return rc;
    }
    char keep[48];
    partition_name(keep_from, keep, sizeof(keep));
    int rc = 0;
    for (int i = 0; i < store__pq.ntuples(res) && rc == 0; i++) {
        const char *name = store__pq.getvalue(res, i, 0);
        /* history_YYYYMMDD sorts as its day does */
        if (strlen(name) == strlen(keep) && strcmp(name, keep) < 0) {
            char sql[96];
            snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", name);
            rc = store__pg_exec(pg->w, sql, why, n);
            if (rc == 0) {
                sprig_log_info("database %s: history of %s dropped (older than the age limit)",
                               s->path, name + 8);
            }
        }
    }
    store__pq.clear(res);
    pg->ndays = 0; /* partitions may have gone: ask again */
    return rc;
}

/* --- commit -------------------------------------------------------------------------- */

static int copy_in(PGconn *conn, const char *sql, const sbuf_t *b, char *why, size_t n)
{
    PGresult *res = store__pq.exec(conn, sql);
    int rc = 0;
    if (store__pq.resultStatus(res) != PGRES_COPY_IN) {
        rc = store__pg_code(conn, res);
        store__pg_error(conn, why, n);
        store__pq.clear(res);
        return rc;
    }
    store__pq.clear(res);
    if (store__pq.putCopyData(conn, b->p, (int)b->len) != 1) {
        store__pq.putCopyEnd(conn, "sprig could not send the rows");
    }
    else if (store__pq.putCopyEnd(conn, NULL) != 1) {
        rc = -ECONNRESET;
    }
    while ((res = store__pq.getResult(conn)) != NULL) {
        if (store__pq.resultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
            rc = store__pg_code(conn, res);
            store__pg_error(conn, why, n);
        }
        store__pq.clear(res);
    }
    if (rc == -ECONNRESET && why[0] == '\0') {
        store__pg_error(conn, why, n);
    }
    return rc;
}

/* The batch's rows as COPY text, one buffer per staging table. */
static int batch_text(sprig_store_t *s, const batch_t *b, sbuf_t *in, int64_t *days,
                      size_t *ndays, size_t maxdays)
{
    bool hist = s->o.history_max_rows >= 0;
    for (size_t i = 0; i < b->len; i++) {
        const row_t *r = &b->rows[i];
        sbuf_t *t;
        switch (r->kind) {
        case ROW_NODE:
            t = &in[IN_NODES];
            buf_text(t, r->device, '\t');
            buf_text(t, r->a, '\t');
            buf_text(t, r->type, '\n');
            break;
        case ROW_EDGE:
            t = &in[IN_EDGES];
            buf_text(t, r->device, '\t');
            buf_text(t, r->a, '\t');
            buf_text(t, r->b, '\n');
            break;
        case ROW_SERIES:
            t = &in[IN_SERIES];
            buf_text(t, r->device, '\t');
            buf_int(t, r->series, '\t');
            buf_text(t, r->a, '\t');
            buf_text(t, r->type, '\t');
            buf_text(t, r->key, '\n');
            break;
        case ROW_EDGE_POINT:
            t = &in[IN_EDGE_POINTS];
            buf_int(t, (int64_t)i, '\t');
            buf_text(t, r->device, '\t');
            buf_text(t, r->a, '\t');
            buf_text(t, r->b, '\t');
            buf_point(t, r);
            break;
        default: /* ROW_POINT, ROW_POINT_NOHIST, ROW_HISTORY */
            if (r->kind != ROW_HISTORY) {
                t = &in[IN_POINTS];
                buf_int(t, (int64_t)i, '\t');
                buf_text(t, r->device, '\t');
                buf_text(t, r->a, '\t');
                buf_point(t, r);
            }
            if (hist && r->kind != ROW_POINT_NOHIST) {
                t = &in[IN_HISTORY];
                buf_text(t, r->device, '\t');
                buf_int(t, r->series, '\t');
                buf_int(t, r->time, '\t');
                buf_double(t, r->value, '\t');
                buf_text(t, r->text, '\t');
                buf_int(t, r->tombstone, '\t');
                buf_text(t, r->origin, '\t');
                buf_int(t, r->accepted, '\n');
                int64_t day = r->accepted / DAY_NS;
                bool seen = false;
                for (size_t d = 0; d < *ndays && !seen; d++) {
                    seen = days[d] == day;
                }
                if (!seen && *ndays < maxdays) {
                    days[(*ndays)++] = day;
                }
            }
            break;
        }
    }
    for (int i = 0; i < IN_COUNT; i++) {
        if (in[i].oom) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* Whether this writer's batch seq is in sprig_commits (it committed). Worker thread. */
static bool committed_before(store_pg_t *pg, uint64_t seq)
{
    char sql[128], why[256];
    long long last = -1;
    snprintf(sql, sizeof(sql), "SELECT coalesce(max(seq), -1) FROM sprig_commits WHERE writer = '%s'",
             pg->writer);
    return query_int(pg->w, sql, &last, why, sizeof(why)) == 0 && last >= (long long)seq;
}

static void pg_commit(sprig_store_t *s, batch_t *b)
{
    store_pg_t *pg = s->pg;
    char why[512] = "";
    int rc = 0;
    if (store__pq.status(pg->w) != CONNECTION_OK) {
        store__pq.reset(pg->w); /* bounded by connect_timeout; the staging tables went with it */
        pg->staged = false;
        pg->ndays = 0;
        if (store__pq.status(pg->w) != CONNECTION_OK) {
            rc = -ECONNRESET;
            store__pg_error(pg->w, why, sizeof(why));
        }
    }
    if (rc == 0 && !pg->staged) {
        for (const char *const *q = staging; rc == 0 && *q != NULL; q++) {
            rc = store__pg_exec(pg->w, *q, why, sizeof(why));
        }
        pg->staged = rc == 0;
    }
    if (rc == 0 && pg->unsure == b->seq && committed_before(pg, b->seq)) {
        /* The last try did commit; only its answer was lost. */
        long long max = 0;
        if (query_int(pg->w, "SELECT coalesce(max(id), 0) FROM history", &max, why,
                      sizeof(why)) == 0 && max > s->hist_max) {
            s->hist_max = max;
        }
        pg->unsure = 0;
        b->hist_min = s->hist_min;
        b->hist_max = s->hist_max;
        return;
    }
    sbuf_t in[IN_COUNT];
    memset(in, 0, sizeof(in));
    int64_t days[8];
    size_t ndays = 0;
    if (rc == 0) {
        rc = batch_text(s, b, in, days, &ndays, 8);
        if (rc != 0) {
            snprintf(why, sizeof(why), "out of memory for the batch's text");
        }
    }
    int64_t now = sprig_wall_ns();
    if (rc == 0 && s->o.history_max_rows >= 0) {
        rc = retention(s, now, why, sizeof(why));
    }
    for (size_t d = 0; rc == 0 && d < ndays; d++) {
        rc = partition(pg, days[d], why, sizeof(why));
    }
    if (rc == 0) {
        rc = store__pg_exec(pg->w, "BEGIN", why, sizeof(why));
    }
    for (int i = 0; rc == 0 && i < IN_COUNT; i++) {
        if (in[i].len > 0) {
            rc = copy_in(pg->w, copy_sql[i], &in[i], why, sizeof(why));
        }
    }
    for (int i = 0; rc == 0 && i < IN_HISTORY; i++) {
        if (in[i].len > 0) {
            rc = store__pg_exec(pg->w, merge_sql[i], why, sizeof(why));
        }
    }
    long long last = 0;
    if (rc == 0 && in[IN_HISTORY].len > 0) {
        rc = query_int(pg->w, "SELECT currval(pg_get_serial_sequence('history', 'id'))", &last,
                       why, sizeof(why));
    }
    if (rc == 0) {
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO sprig_commits VALUES('%s', %" PRIu64 ") ON CONFLICT (writer) DO "
                 "UPDATE SET seq = excluded.seq",
                 pg->writer, b->seq);
        rc = store__pg_exec(pg->w, sql, why, sizeof(why));
    }
    if (rc == 0) {
        rc = store__pg_exec(pg->w, "COMMIT", why, sizeof(why));
    }
    for (int i = 0; i < IN_COUNT; i++) {
        sb_free(&in[i]);
    }
    if (rc != 0) {
        char ignored[256];
        if (store__pq.status(pg->w) == CONNECTION_OK) {
            store__pg_exec(pg->w, "ROLLBACK", ignored, sizeof(ignored));
        }
        b->status = rc;
        b->sys_errno = 0;
        pg->unsure = b->seq;
        snprintf(b->error, sizeof(b->error), "%.*s", (int)sizeof(b->error) - 1, why);
    }
    else if (last > 0) {
        s->hist_max = last; /* hist_min, read at open (max + 1 when empty), still holds */
    }
    b->hist_min = s->hist_min;
    b->hist_max = s->hist_max;
}

/* --- open and close ------------------------------------------------------------------ */

bool store__pg_target(const char *target)
{
    return strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0;
}

static int pg_open(sprig_store_t *s, sprig_error_t *err)
{
    char why[512];
    if (store__pq_load(why, sizeof(why)) != 0) {
        return sprig_error_set(err, -ENOENT, "database: %s", why);
    }
    store_pg_t *pg = sprig_calloc(1, sizeof(*pg));
    if (pg == NULL || (pg->uri = sprig_strdup(s->path)) == NULL) {
        sprig_free(pg);
        return sprig_error_set(err, -ENOMEM, "database: out of memory");
    }
    s->pg = pg;
    pg->device = "";
    sprig_uuid4(pg->writer);
    /* Logs name the database by its URI without the password. */
    char shown[512];
    display_uri(pg->uri, shown, sizeof(shown));
    char *p = sprig_strdup(shown);
    if (p == NULL) {
        return sprig_error_set(err, -ENOMEM, "database: out of memory");
    }
    sprig_free(s->path);
    s->path = p;
    pg->w = store__pg_connect(pg->uri, 60, why, sizeof(why));
    if (pg->w == NULL) {
        return sprig_error_set(err, -ECONNREFUSED, "database %s: cannot connect: %s", s->path,
                               why);
    }
    int rc = layout(s, err);
    if (rc != 0) {
        return rc;
    }
    if (s->o.read_only) {
        return store__pg_exec(pg->w, "SET default_transaction_read_only = on", why, sizeof(why)) ==
                       0
                   ? 0
                   : sprig_error_set(err, -EIO, "database %s: %s", s->path, why);
    }
    long long min = 0, max = 0;
    if ((rc = query_int(pg->w, "SELECT coalesce(min(id), 0) FROM history", &min, why,
                        sizeof(why))) != 0 ||
        (rc = query_int(pg->w, "SELECT coalesce(max(id), 0) FROM history", &max, why,
                        sizeof(why))) != 0) {
        return sprig_error_set(err, rc, "database %s: history cannot be read: %s", s->path, why);
    }
    s->hist_max = max;
    s->hist_min = min != 0 ? min : max + 1;
    s->hist_indexed = max;
    if ((rc = store__pg_series_load(s, why, sizeof(why))) != 0) {
        return sprig_error_set(err, rc, "database %s: history series cannot be read: %s", s->path,
                               why);
    }
    return 0;
}

static void pg_release(sprig_store_t *s)
{
    store_pg_t *pg = s->pg;
    if (pg == NULL) {
        return;
    }
    if (pg->w != NULL) {
        store__pq.finish(pg->w);
    }
    if (pg->r != NULL) {
        store__pq.finish(pg->r);
    }
    sprig_free(pg->uri);
    sprig_free(pg);
    s->pg = NULL;
}

const store_backend_t store__pg = {
    .name = "postgresql",
    .open = pg_open,
    .closing = NULL,
    .release = pg_release,
    .commit = pg_commit,
    .load = store__pg_load,
    .meta_get = store__pg_meta_get,
    .meta_set = store__pg_meta_set,
    .fix_hash = store__pg_fix_hash,
    .delete_row = store__pg_delete_row,
    .history = store__pg_history,
    .history_after = store__pg_history_after,
};
