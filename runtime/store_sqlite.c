/* The SQLite backend of the store: the file's layout and its migrations, opening (the
 * lock, the checks that the file can be written, pragmas) and closing. Its commit is in
 * store_commit.c, its reads and repairs in store_load.c, its history in store_history.c. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sprig/err.h"
#include "sprig/log.h"
#include "store_internal.h"

#define APPLICATION_ID 0x53505247 /* "SPRG" */

static const char *const schema_v1[] = {
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE nodes(id TEXT PRIMARY KEY, type TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE edges(up TEXT NOT NULL, down TEXT NOT NULL, PRIMARY KEY(up, down))"
    " WITHOUT ROWID",
    "CREATE TABLE points(node TEXT NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL,"
    " time INTEGER NOT NULL, value REAL NOT NULL, text TEXT NOT NULL,"
    " tombstone INTEGER NOT NULL, origin TEXT NOT NULL, hash INTEGER NOT NULL,"
    " PRIMARY KEY(node, type, key)) WITHOUT ROWID",
    "CREATE TABLE edge_points(up TEXT NOT NULL, down TEXT NOT NULL, type TEXT NOT NULL,"
    " key TEXT NOT NULL, time INTEGER NOT NULL, value REAL NOT NULL, text TEXT NOT NULL,"
    " tombstone INTEGER NOT NULL, origin TEXT NOT NULL, hash INTEGER NOT NULL,"
    " PRIMARY KEY(up, down, type, key)) WITHOUT ROWID",
    /* One row per point series (node, type, key); history refers to it by integer id, so
     * the per-series index is on integers, not on text keys (about 20x cheaper to keep). */
    "CREATE TABLE series(id INTEGER PRIMARY KEY, node TEXT NOT NULL, type TEXT NOT NULL,"
    " key TEXT NOT NULL, UNIQUE(node, type, key))",
    /* Append-only, trimmed from the oldest id; AUTOINCREMENT so an id is never reused
     * (history_idx may still name a trimmed one until it is swept). */
    "CREATE TABLE history(id INTEGER PRIMARY KEY AUTOINCREMENT, series INTEGER NOT NULL,"
    " time INTEGER NOT NULL, value REAL NOT NULL, text TEXT NOT NULL,"
    " tombstone INTEGER NOT NULL, origin TEXT NOT NULL, accepted INTEGER NOT NULL)",
    /* The per-series index, filled in bulk (sorted by series) every few seconds rather
     * than row by row: one row per series per batch would dirty one index page per series
     * per commit. Reads cover the not yet indexed tail (ids above meta
     * history_indexed) by scanning it. */
    "CREATE TABLE history_idx(series INTEGER NOT NULL, time INTEGER NOT NULL,"
    " id INTEGER NOT NULL, PRIMARY KEY(series, time, id)) WITHOUT ROWID",
    NULL,
};

/* migrations[v] takes a file from version v to v + 1. */
static const char *const *const migrations[] = {schema_v1};

int store__map_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return SPRIG_ECORRUPT;
    default:
        return -EIO;
    }
}

static int exec(sprig_store_t *s, const char *sql)
{
    return store__map_sqlite(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

int store__query_int(sqlite3 *db, const char *sql, long long *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return store__map_sqlite(rc);
    }
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store__map_sqlite(rc);
}

/* Reads the file's identity without writing to it: refuses files that are not sprig
 * databases (or are newer than this build) before anything, even the journal mode, is
 * changed. *version is the layout version found (0 for a new file). */
static int identify(sprig_store_t *s, long long *version_out, sprig_error_t *err)
{
    long long version, app, tables;
    int rc;
    if ((rc = store__query_int(s->db, "PRAGMA user_version", &version)) != 0 ||
        (rc = store__query_int(s->db, "PRAGMA application_id", &app)) != 0 ||
        (rc = store__query_int(s->db, "SELECT count(*) FROM sqlite_master", &tables)) != 0) {
        return sprig_error_set(err, rc, "database %s: cannot be read: %s", s->path,
                               sqlite3_errmsg(s->db));
    }
    if (app != APPLICATION_ID && (app != 0 || tables != 0)) {
        return sprig_error_set(err, SPRIG_ECORRUPT,
                               "database %s: is not a sprig database (application_id %lld, "
                               "%lld tables)",
                               s->path, app, tables);
    }
    if (version > SPRIG_STORE_VERSION) {
        return sprig_error_set(err, SPRIG_ECORRUPT,
                               "database %s: layout version %lld is newer than this sprig "
                               "reads (%d)",
                               s->path, version, SPRIG_STORE_VERSION);
    }
    if (s->o.read_only && version < SPRIG_STORE_VERSION) {
        return sprig_error_set(err, SPRIG_ECORRUPT,
                               "database %s: layout version %lld must be migrated to %d; open "
                               "it for writing once",
                               s->path, version, SPRIG_STORE_VERSION);
    }
    *version_out = version;
    return 0;
}

/* The system's errno behind a failed SQLite call (0: none): SQLite's record of it, else,
 * for an I/O error or a full disk, errno as the call left it (SQLite's unix VFS keeps the
 * errno of a failed write in the file, not in the connection: a write past RLIMIT_FSIZE
 * is "disk I/O error" with no system errno, while errno says EFBIG). Read it at once. */
int store__sys_errno(sqlite3 *db, int rc, int errno_now)
{
    int e = sqlite3_system_errno(db);
    if (e == 0 && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL)) {
        e = errno_now;
    }
    return e;
}


/* One commit before the store is handed out, so that a read-only mount, a full disk or a
 * -shm file of another user stop the open rather than the first write: it rewrites the
 * header's version with the same number. */
static int probe_write(sprig_store_t *s, sprig_error_t *err)
{
    char sql[64], why[320];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SPRIG_STORE_VERSION);
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        int e = store__sys_errno(s->db, rc, errno);
        rc = store__map_sqlite(rc);
        store__reason(why, sizeof(why), sqlite3_errmsg(s->db), e, rc);
        exec(s, "ROLLBACK");
        return sprig_error_set(err, rc, "database %s: cannot be written: %s", s->path, why);
    }
    return 0;
}

/* Brings the file from version to SPRIG_STORE_VERSION, one transaction per step. */
static int migrate(sprig_store_t *s, long long version, sprig_error_t *err)
{
    int rc;
    for (; version < SPRIG_STORE_VERSION; version++) {
        char sql[96];
        rc = exec(s, "BEGIN IMMEDIATE");
        for (const char *const *q = migrations[version]; rc == 0 && *q != NULL; q++) {
            rc = exec(s, *q);
        }
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", version + 1);
        if (rc == 0) {
            rc = exec(s, sql);
        }
        snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", APPLICATION_ID);
        if (rc == 0) {
            rc = exec(s, sql);
        }
        if (rc == 0) {
            rc = exec(s, "COMMIT");
        }
        if (rc != 0) {
            sprig_error_set(err, rc, "database %s: migration to version %lld failed: %s", s->path,
                            version + 1, sqlite3_errmsg(s->db));
            exec(s, "ROLLBACK");
            return rc;
        }
    }
    return 0;
}

/* SQLite's process-wide settings, made once before its first connection. Memory
 * statistics off: with them on, every allocation SQLite makes takes one global mutex
 * (about 9% of a commit's CPU in bench_write); sprig never reads those statistics. */
static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static int take_lock(sprig_store_t *s, const char *path, sprig_error_t *err)
{
    char lock[4096];
    int rc;
    s->lock_fd = -1;
    if (s->o.read_only || strcmp(path, ":memory:") == 0) {
        return 0;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        return sprig_error_set(err, -EISDIR, "database %s: is a directory", path);
    }
    if ((rc = store__check_writable(path, err)) != 0) {
        return rc;
    }
    snprintf(lock, sizeof(lock), "%s-lock", path);
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        return sprig_error_set(err, -errno, "database %s: cannot open lock file %s: %s", path, lock,
                               strerror(errno));
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        return sprig_error_set(err, SPRIG_ELOCKED,
                               "database %s: is in use by another sprig process (lock %s)", path,
                               lock);
    }
    return 0;
}

/* Opens the file at s->path: takes its lock, checks it can be written, identifies and
 * migrates it, and prepares what a writable store needs. */
static int sqlite_open(sprig_store_t *s, sprig_error_t *err)
{
    int rc;
    if ((rc = take_lock(s, s->path, err)) != 0) {
        return rc;
    }
    /* NOMUTEX: the connection is never used by two threads at once (the worker only while
     * a batch is in flight, the loop thread only when none is), so SQLite's per-call
     * locking is pure cost (about 6% of a commit's CPU). */
    pthread_once(&sqlite_once, sqlite_setup);
    int flags = SQLITE_OPEN_NOMUTEX | (s->o.read_only ? SQLITE_OPEN_READONLY
                                                      : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    rc = sqlite3_open_v2(s->path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        rc = sprig_error_set(err, store__map_sqlite(rc), "database %s: cannot open: %s", s->path,
                             s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return rc;
    }
    sqlite3_busy_timeout(s->db, 5000);
    long long version = 0;
    if ((rc = identify(s, &version, err)) != 0) {
        return rc;
    }
    if (!s->o.read_only) {
        const char *sync =
            s->o.sync_normal ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL";
        /* The page cache starts at 2 MiB and follows the number of series (cache_kib). */
        if ((rc = exec(s, "PRAGMA journal_mode = WAL")) != 0 || (rc = exec(s, sync)) != 0 ||
            (rc = exec(s, "PRAGMA cache_size = -2048")) != 0) {
            rc = sprig_error_set(err, rc, "database %s: cannot be opened as a database: %s", s->path,
                                 sqlite3_errmsg(s->db));
            return rc;
        }
        s->cache_kib = 2048;
    }
    if ((rc = migrate(s, version, err)) != 0) {
        return rc;
    }
    if (!s->o.read_only && (rc = probe_write(s, err)) != 0) {
        return rc;
    }
    if (!s->o.read_only) {
        if ((rc = store__prepare(s)) != SQLITE_OK) {
            rc = sprig_error_set(err, store__map_sqlite(rc), "database %s: %s", s->path,
                                 sqlite3_errmsg(s->db));
            return rc;
        }
        if (store__history_range(s) != 0) {
            rc = sprig_error_set(err, -EIO, "database %s: history cannot be read: %s", s->path,
                                 sqlite3_errmsg(s->db));
            return rc;
        }
        s->stats.history_rows = s->hist_max - s->hist_min + 1;
        s->stats.history_last_id = s->hist_max;
        if ((rc = store__series_load(s)) != 0) {
            rc = sprig_error_set(err, rc, "database %s: history series cannot be read: %s", s->path,
                                 sqlite3_errmsg(s->db));
            return rc;
        }
    }
    return 0;
}

static void sqlite_closing(sprig_store_t *s)
{
    /* Fold the WAL back so the file is whole on its own. */
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
}

static void sqlite_release(sprig_store_t *s)
{
    for (int i = 0; i < ST_ALL; i++) {
        sqlite3_finalize(s->st[i]);
    }
    sqlite3_close(s->db);
    if (s->lock_fd >= 0) {
        close(s->lock_fd);
    }
}

const store_backend_t store__sqlite = {
    .name = "sqlite",
    .open = sqlite_open,
    .closing = sqlite_closing,
    .release = sqlite_release,
    .commit = store__commit_batch,
    .load = store__sqlite_load,
    .meta_get = store__sqlite_meta_get,
    .meta_set = store__sqlite_meta_set,
    .fix_hash = store__sqlite_fix_hash,
    .delete_row = store__sqlite_delete_row,
    .history = store__sqlite_history,
    .history_after = store__sqlite_history_after,
};
