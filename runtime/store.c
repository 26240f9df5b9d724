/* SQLite persistence with group commit on a libuv worker thread: see store.h.
 *
 * Two batches at most exist: the open one, filled by the loop thread, and the one in
 * flight, owned by the worker thread from uv_queue_work until its after-callback. The
 * connection is used by the worker only while a batch is in flight, and by the loop
 * thread only when none is (meta, fixes, load), so no lock is needed beyond SQLite's own.
 * Rows copy their strings into the batch's arena: callers may free theirs at once.
 *
 * Durability: WAL with synchronous=FULL by default, so a batch reported durable survives
 * power loss, not just a crash of the process; each batch costs one fsync, and batches
 * grow while one commits, so the cost stays small under load.
 *
 * Failures: a batch whose commit fails (disk full, I/O error) is kept as s->failed and
 * tried again, with backoff, before anything queued after it, so no row is dropped and
 * the order holds; the store is "failing" until a commit works, and "stalled" while one
 * takes longer than SPRIG_STORE_STALL_MS. Early waiters hear of either at once, so the API
 * answers within a bound (and refuses new writes meanwhile). Only close gives rows up. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sprig/alloc.h"
#include "store_internal.h"
#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/store.h"
#include "sprig/util.h"

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

/* The words for a failed SQLite call: SQLite's message and the system's reason behind it
 * (or the errno the code maps to, when SQLite names none), in buf. */
static const char *reason(char *buf, size_t n, const char *sqlite_msg, int sys, int code)
{
    snprintf(buf, n, "%s (%s)", sqlite_msg, sys != 0 ? strerror(sys) : sprig_strerror(code));
    return buf;
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
        reason(why, sizeof(why), sqlite3_errmsg(s->db), e, rc);
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

static void batch_free(batch_t *b)
{
    if (b == NULL) {
        return;
    }
    chunk_t *c = b->arena;
    while (c != NULL) {
        chunk_t *next = c->next;
        sprig_free(c);
        c = next;
    }
    sprig_free(b->rows);
    sprig_free(b);
}

static void release(sprig_store_t *s)
{
    store__series_free(s);
    for (int i = 0; i < ST_ALL; i++) {
        sqlite3_finalize(s->st[i]);
    }
    sqlite3_close(s->db);
    if (s->lock_fd >= 0) {
        close(s->lock_fd);
    }
    if (s->timer != NULL) {
        uv_close((uv_handle_t *)s->timer, sprig_free_handle);
    }
    if (s->stall != NULL) {
        uv_close((uv_handle_t *)s->stall, sprig_free_handle);
    }
    batch_free(s->open);
    batch_free(s->spare);
    batch_free(s->failed);
    while (s->waiters != NULL) {
        waiter_t *w = s->waiters;
        s->waiters = w->next;
        sprig_free(w);
    }
    sprig_free(s->path);
    sprig_free(s);
}

int sprig_store_open(const char *path, const sprig_store_opts_t *opts, uv_loop_t *loop,
                     sprig_store_t **out, sprig_error_t *err)
{
    sprig_store_t *s = sprig_calloc(1, sizeof(*s));
    int rc;
    *out = NULL;
    if (s == NULL || (s->path = sprig_strdup(path)) == NULL) {
        sprig_free(s);
        return sprig_error_set(err, -ENOMEM, "database %s: out of memory", path);
    }
    s->lock_fd = -1;
    if (path[0] == '\0') {
        rc = sprig_error_set(err, -EINVAL, "database path is empty: name a file");
        goto fail;
    }
    if (opts != NULL) {
        s->o = *opts;
    }
    if (s->o.commit_ms == 0) {
        s->o.commit_ms = 5;
    }
    if (s->o.batch_max == 0) {
        s->o.batch_max = 10000;
    }
    if (s->o.history_max_rows == 0) {
        s->o.history_max_rows = 1000000;
    }
    if (s->o.history_max_age_ns <= 0) {
        s->o.history_max_age_ns = 30LL * 24 * 3600 * 1000000000LL;
    }
    s->loop = loop;
    s->next_seq = 1;
    if ((rc = take_lock(s, path, err)) != 0) {
        goto fail;
    }
    /* NOMUTEX: the connection is never used by two threads at once (the worker only while
     * a batch is in flight, the loop thread only when none is), so SQLite's per-call
     * locking is pure cost (about 6% of a commit's CPU). */
    pthread_once(&sqlite_once, sqlite_setup);
    int flags = SQLITE_OPEN_NOMUTEX | (s->o.read_only ? SQLITE_OPEN_READONLY
                                                      : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        rc = sprig_error_set(err, store__map_sqlite(rc), "database %s: cannot open: %s", path,
                             s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    long long version = 0;
    if ((rc = identify(s, &version, err)) != 0) {
        goto fail;
    }
    if (!s->o.read_only) {
        const char *sync =
            s->o.sync_normal ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL";
        /* The page cache starts at 2 MiB and follows the number of series (cache_kib). */
        if ((rc = exec(s, "PRAGMA journal_mode = WAL")) != 0 || (rc = exec(s, sync)) != 0 ||
            (rc = exec(s, "PRAGMA cache_size = -2048")) != 0) {
            rc = sprig_error_set(err, rc, "database %s: cannot be opened as a database: %s", path,
                                 sqlite3_errmsg(s->db));
            goto fail;
        }
        s->cache_kib = 2048;
    }
    if ((rc = migrate(s, version, err)) != 0) {
        goto fail;
    }
    if (!s->o.read_only && (rc = probe_write(s, err)) != 0) {
        goto fail;
    }
    if (!s->o.read_only) {
        if ((rc = store__prepare(s)) != SQLITE_OK) {
            rc = sprig_error_set(err, store__map_sqlite(rc), "database %s: %s", path,
                                 sqlite3_errmsg(s->db));
            goto fail;
        }
        if (store__history_range(s) != 0) {
            rc = sprig_error_set(err, -EIO, "database %s: history cannot be read: %s", path,
                                 sqlite3_errmsg(s->db));
            goto fail;
        }
        s->stats.history_rows = s->hist_max - s->hist_min + 1;
        s->stats.history_last_id = s->hist_max;
        if ((rc = store__series_load(s)) != 0) {
            rc = sprig_error_set(err, rc, "database %s: history series cannot be read: %s", path,
                                 sqlite3_errmsg(s->db));
            goto fail;
        }
    }
    if (loop != NULL) {
        s->timer = sprig_malloc(sizeof(*s->timer));
        s->stall = sprig_malloc(sizeof(*s->stall));
        if (s->timer == NULL || s->stall == NULL) {
            sprig_free(s->timer);
            sprig_free(s->stall);
            s->timer = s->stall = NULL;
            rc = sprig_error_set(err, -ENOMEM, "database %s: out of memory", path);
            goto fail;
        }
        uv_timer_init(loop, s->timer);
        uv_timer_init(loop, s->stall);
        s->timer->data = s->stall->data = s;
        s->work.data = s;
    }
    *out = s;
    return 0;
fail:
    release(s);
    return rc;
}

/* --- batches ------------------------------------------------------------------------ */

static const char *arena_copy(batch_t *b, const char *str)
{
    size_t n = strlen(str) + 1;
    chunk_t *c = b->arena;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        chunk_t *nc = sprig_malloc(sizeof(*nc) + cap);
        if (nc == NULL) {
            return NULL;
        }
        nc->cap = cap;
        nc->used = 0;
        nc->next = c;
        b->arena = c = nc;
    }
    char *d = c->data + c->used;
    memcpy(d, str, n);
    c->used += n;
    return d;
}

static void batch_reset(batch_t *b)
{
    /* Keep the newest arena chunk for reuse; free older ones. */
    if (b->arena != NULL) {
        chunk_t *c = b->arena->next;
        while (c != NULL) {
            chunk_t *next = c->next;
            sprig_free(c);
            c = next;
        }
        b->arena->next = NULL;
        b->arena->used = 0;
    }
    b->len = 0;
    b->status = 0;
    b->sys_errno = 0;
    b->error[0] = '\0';
}

static batch_t *open_batch(sprig_store_t *s)
{
    if (s->open == NULL) {
        if (s->spare != NULL) {
            s->open = s->spare;
            s->spare = NULL;
        }
        else if ((s->open = sprig_calloc(1, sizeof(batch_t))) == NULL) {
            return NULL;
        }
        s->open->seq = s->next_seq;
    }
    return s->open;
}

static void try_commit(sprig_store_t *s);

static void on_timer(uv_timer_t *t)
{
    try_commit(t->data);
}

/* Appends a row, copying its strings; 0 or -ENOMEM (the batch is left as it was). */
static int put_row(sprig_store_t *s, const row_t *in)
{
    batch_t *b = open_batch(s);
    if (b == NULL) {
        return -ENOMEM;
    }
    if (b->len == b->cap) {
        size_t cap = b->cap != 0 ? b->cap * 2 : 256;
        row_t *rows = sprig_realloc(b->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            return -ENOMEM;
        }
        b->rows = rows;
        b->cap = cap;
    }
    row_t r = *in;
    const char **fields[] = {&r.a, &r.b, &r.type, &r.key, &r.text, &r.origin};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (*fields[i] != NULL && (*fields[i] = arena_copy(b, *fields[i])) == NULL) {
            return -ENOMEM;
        }
    }
    b->rows[b->len++] = r;
    s->backlog++;
    s->last_row_batch = b->seq;
    if (s->loop != NULL) {
        /* While a failed batch waits for its retry, the retry's backoff sets the pace: a
         * full open batch waits behind it rather than hurrying it on. */
        if (b->len >= s->o.batch_max && s->failed == NULL) {
            try_commit(s);
        }
        else if (b->len == 1 && s->inflight == NULL && s->failed == NULL) {
            uv_timer_start(s->timer, on_timer, s->o.commit_ms, 0);
        }
    }
    return 0;
}

int sprig_store_put_node(sprig_store_t *s, const char *id, const char *type)
{
    row_t r = {.kind = ROW_NODE, .a = id, .type = type};
    return put_row(s, &r);
}

int sprig_store_put_edge(sprig_store_t *s, const char *up, const char *down)
{
    row_t r = {.kind = ROW_EDGE, .a = up, .b = down};
    return put_row(s, &r);
}

static void point_row(row_t *r, const sprig_point_t *p, uint64_t hash)
{
    r->type = p->type;
    r->key = p->key != NULL ? p->key : "0";
    r->text = p->text != NULL ? p->text : "";
    r->origin = p->origin != NULL ? p->origin : "";
    r->time = p->time;
    r->value = p->value;
    r->tombstone = p->tombstone != 0;
    r->hash = hash;
}

/* Queues a row of a point series (creating the series row the first time). */
static int put_series_row(sprig_store_t *s, const char *node, const sprig_point_t *p, uint64_t hash,
                          unsigned char kind)
{
    row_t r = {.kind = kind, .a = node, .accepted = sprig_wall_ns()};
    bool fresh = false;
    point_row(&r, p, hash);
    int rc = store__series(s, node, r.type, r.key, &r.series, &fresh);
    if (rc == 0 && fresh) {
        row_t sr = {
            .kind = ROW_SERIES, .a = node, .type = r.type, .key = r.key, .series = r.series};
        rc = put_row(s, &sr);
    }
    return rc != 0 ? rc : put_row(s, &r);
}

int sprig_store_put_point(sprig_store_t *s, const char *node, const sprig_point_t *p, uint64_t hash)
{
    return put_series_row(s, node, p, hash, ROW_POINT);
}

int sprig_store_put_point_ex(sprig_store_t *s, const char *node, const sprig_point_t *p,
                             uint64_t hash, bool history)
{
    return put_series_row(s, node, p, hash, history ? ROW_POINT : ROW_POINT_NOHIST);
}

int sprig_store_put_history(sprig_store_t *s, const char *node, const sprig_point_t *p)
{
    return put_series_row(s, node, p, 0, ROW_HISTORY);
}

int sprig_store_put_edge_point(sprig_store_t *s, const char *up, const char *down,
                               const sprig_point_t *p, uint64_t hash)
{
    row_t r = {.kind = ROW_EDGE_POINT, .a = up, .b = down};
    point_row(&r, p, hash);
    return put_row(s, &r);
}

/* The page cache a commit wants: enough for the hot leaf pages of the history index, one
 * per series and about a page of history each, at least 2 MiB (a gateway's few hundred
 * series need no more) and at most 32 MiB (10,000 busy series). SQLite grows a cache only
 * as pages are used, but never gives back what it filled, so a fixed 32 MiB let a busy
 * gateway's RSS climb towards it. Loop thread. */
static int cache_kib(const sprig_store_t *s)
{
    size_t kib = s->series.len * 8;
    return kib < 2048 ? 2048 : kib > 32768 ? 32768 : (int)kib;
}

static void work_cb(uv_work_t *w)
{
    sprig_store_t *s = w->data;
    store__commit_batch(s, s->inflight);
}

/* Calls the waiters of batches up to seq with status, and the early ones of any batch too
 * when early (the store just turned failing or stalled); the others keep waiting. */
void store__call_waiters(sprig_store_t *s, uint64_t seq, int status, bool early)
{
    waiter_t **pp = &s->waiters;
    while (*pp != NULL) {
        waiter_t *w = *pp;
        if (w->batch <= seq || (early && w->early)) {
            *pp = w->next;
            w->cb(w->batch, status, w->arg);
            sprig_free(w);
        }
        else {
            pp = &w->next;
        }
    }
}

/* Loop thread, after a batch was written: account, call waiters, recycle. A batch that
 * failed is kept and tried again (disk full, a reader holding a lock...) unless `final`:
 * its rows are already in memory and on the bus, so dropping them would leave the disk
 * behind. Batches stay in order: nothing after it commits before it does. */
static void finish_batch(sprig_store_t *s, batch_t *b, bool final)
{
    s->stats.history_rows = b->hist_max - b->hist_min + 1;
    s->stats.history_last_id = b->hist_max;
    if (b->status != 0) {
        char why[320];
        reason(why, sizeof(why), b->error[0] != '\0' ? b->error : "not committed", b->sys_errno,
               b->status);
        s->stats.commit_errors++;
        if (!final) {
            s->failed = b;
            s->retry_ms = s->retry_ms != 0 ? s->retry_ms * 2 : 100;
            s->retry_ms = s->retry_ms > 5000 ? 5000 : s->retry_ms;
            store__set_failing(s, SPRIG_STORE_FAILING, b->status, why, sprig_wall_ns());
            s->failures++;
            sprig_log_error("database %s: batch %llu of %zu rows was not written: %s; it is "
                            "kept (%zu rows wait in all) and tried again in %.1f s",
                            s->path, (unsigned long long)b->seq, b->len, why, s->backlog,
                            s->retry_ms / 1000.0);
            if (s->loop != NULL) {
                uv_timer_start(s->timer, on_timer, s->retry_ms, 0);
            }
            return;
        }
        sprig_log_error("database %s: batch %llu of %zu rows was not written: %s; closing, so its "
                        "rows are lost",
                        s->path, (unsigned long long)b->seq, b->len, why);
    }
    else {
        store__set_ok(s, b);
        s->durable = b->seq;
        s->stats.batches++;
        s->stats.rows += b->len;
        s->retry_ms = 0;
    }
    s->backlog -= b->len;
    uint64_t seq = b->seq;
    int status = b->status;
    batch_reset(b);
    if (s->spare == NULL) {
        s->spare = b;
    }
    else {
        batch_free(b);
    }
    store__call_waiters(s, seq, status, false);
}

static void after_work_cb(uv_work_t *w, int status)
{
    sprig_store_t *s = w->data;
    batch_t *b = s->inflight;
    s->inflight = NULL;
    uv_timer_stop(s->stall);
    if (status != 0 && b->status == 0) {
        b->status = status;
    }
    finish_batch(s, b, false);
    /* What arrived meanwhile forms the next batch at once: this is the group commit. */
    if (s->failed == NULL && s->open != NULL && s->open->len > 0) {
        try_commit(s);
    }
}

static void try_commit(sprig_store_t *s)
{
    if (s->inflight != NULL) {
        return;
    }
    if (s->failed != NULL) {
        s->inflight = s->failed; /* the retry of a failed batch comes first */
        s->failed = NULL;
        s->inflight->status = 0;
    }
    else if (s->open != NULL && s->open->len > 0) {
        s->inflight = s->open;
        s->open = NULL;
        s->next_seq++;
    }
    else {
        return;
    }
    s->inflight->cache_kib = cache_kib(s);
    uv_timer_stop(s->timer);
    int rc = uv_queue_work(s->loop, &s->work, work_cb, after_work_cb);
    if (rc != 0) {
        /* No worker could be had: write it here rather than lose it. */
        store__commit_batch(s, s->inflight);
        after_work_cb(&s->work, 0);
        return;
    }
    s->inflight_since = uv_hrtime();
    /* From now, not from the loop's last wake-up: a large import may have kept the loop
     * busy for seconds before this batch was handed over. */
    uv_update_time(s->loop);
    uv_timer_start(s->stall, store__on_stall,
                   SPRIG_STORE_STALL_MS + s->inflight->len / SPRIG_STORE_STALL_ROWS_PER_MS, 0);
}

uint64_t sprig_store_batch(const sprig_store_t *s)
{
    return s->next_seq;
}

uint64_t sprig_store_last_batch(const sprig_store_t *s)
{
    return s->last_row_batch;
}

uint64_t sprig_store_durable(const sprig_store_t *s)
{
    return s->durable;
}

size_t sprig_store_backlog(const sprig_store_t *s)
{
    return s->backlog;
}

static int add_waiter(sprig_store_t *s, uint64_t batch, sprig_store_durable_cb cb, void *arg,
                      bool early)
{
    /* A batch that never received a row (the open one while empty) has nothing to wait for. */
    bool empty_open = batch == s->next_seq && (s->open == NULL || s->open->len == 0);
    if (batch <= s->durable || empty_open) {
        cb(batch, 0, arg);
        return 0;
    }
    if (early && s->state != SPRIG_STORE_OK) {
        cb(batch, s->fail_code, arg);
        return 0;
    }
    waiter_t *w = sprig_malloc(sizeof(*w));
    if (w == NULL) {
        return -ENOMEM;
    }
    w->batch = batch;
    w->cb = cb;
    w->arg = arg;
    w->early = early;
    w->next = s->waiters;
    s->waiters = w;
    return 0;
}

int sprig_store_when_durable(sprig_store_t *s, uint64_t batch, sprig_store_durable_cb cb, void *arg)
{
    return add_waiter(s, batch, cb, arg, false);
}

int sprig_store_when_durable_or_failing(sprig_store_t *s, uint64_t batch, sprig_store_durable_cb cb,
                                        void *arg)
{
    return add_waiter(s, batch, cb, arg, true);
}

void store__wait_inflight(sprig_store_t *s)
{
    /* Bounded by the commit itself: the worker always finishes and queues its callback. */
    while (s->inflight != NULL) {
        uv_run(s->loop, UV_RUN_ONCE);
    }
}

/* Commits one batch on this thread; a failure is final only when `final`. */
static int flush_one(sprig_store_t *s, batch_t *b, bool final)
{
    store__commit_batch(s, b);
    int status = b->status;
    finish_batch(s, b, final);
    return status;
}

int sprig_store_flush(sprig_store_t *s)
{
    int rc = 0;
    if (s->loop != NULL) {
        store__wait_inflight(s);
        uv_timer_stop(s->timer);
    }
    if (s->failed != NULL) {
        batch_t *b = s->failed;
        s->failed = NULL;
        b->status = 0;
        if ((rc = flush_one(s, b, false)) != 0) {
            return rc; /* still failing: kept, and the open batch must wait behind it */
        }
    }
    if (s->open != NULL && s->open->len > 0) {
        batch_t *b = s->open;
        s->open = NULL;
        s->next_seq++;
        rc = flush_one(s, b, false);
    }
    return rc;
}

int sprig_store_close(sprig_store_t *s)
{
    if (s == NULL) {
        return 0;
    }
    int rc = s->o.read_only ? 0 : sprig_store_flush(s);
    if (rc != 0) {
        /* Last try; then the waiters learn that their rows are not on disk. */
        if (s->failed != NULL) {
            batch_t *b = s->failed;
            s->failed = NULL;
            b->status = 0;
            rc = flush_one(s, b, true);
        }
        if (s->open != NULL && s->open->len > 0) {
            batch_t *b = s->open;
            s->open = NULL;
            s->next_seq++;
            rc = flush_one(s, b, true);
        }
    }
    if (!s->o.read_only) {
        /* Fold the WAL back so the file is whole on its own. */
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    }
    release(s);
    return rc;
}

void sprig_store_stats(const sprig_store_t *s, sprig_store_stats_t *out)
{
    *out = s->stats;
}
