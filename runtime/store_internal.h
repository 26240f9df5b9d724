/* What the files of the store module share: the store, its batches and rows. */
#ifndef SPRIG_STORE_INTERNAL_H
#define SPRIG_STORE_INTERNAL_H

#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <string.h>

#include "map.h"
#include "sprig/store.h"

#define HIST_TRIM_CHUNK 2000
#define HIST_INDEX_ROWS 200000             /* index the tail once it is this long */
#define HIST_INDEX_NS (2LL * 1000000000)   /* or this old */
#define HIST_SWEEP_NS (600LL * 1000000000) /* sweep index entries of trimmed rows */
#define ARENA_CHUNK (64 * 1024)

/* ROW_POINT_NOHIST: a point that is not appended to the history (it was sampled on
 * another instance, whose history brings it); ROW_HISTORY: a history sample only. */
enum row_kind {
    ROW_NODE,
    ROW_EDGE,
    ROW_POINT,
    ROW_EDGE_POINT,
    ROW_SERIES,
    ROW_POINT_NOHIST,
    ROW_HISTORY
};

typedef struct row {
    unsigned char kind;
    int tombstone;
    const char *a, *b, *type, *key, *text, *origin; /* a: node or up; b: down */
    const char *device; /* the device the row belongs to ("" unless a device fn is set) */
    int64_t time, accepted;
    int64_t series; /* history series of a point, or the id of a new series */
    double value;
    uint64_t hash;
} row_t;

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk_t;

typedef struct batch {
    uint64_t seq;
    row_t *rows;
    size_t len, cap;
    chunk_t *arena;
    int status;                   /* set by the worker */
    int sys_errno;                /* the system's errno behind a failure (0: none); worker */
    char error[256];              /* set by the worker */
    long long hist_min, hist_max; /* history id range after the commit */
    int cache_kib;                /* the page cache this commit wants (store__cache_kib) */
} batch_t;

typedef struct waiter {
    struct waiter *next;
    uint64_t batch;
    sprig_store_durable_cb cb;
    void *arg;
    bool early; /* also called when the store turns failing or stalled */
} waiter_t;

/* The store's prepared statements; those after ST_COUNT write STORE_MULTI rows at once
 * (store_commit.c). */
enum {
    ST_NODE,
    ST_EDGE,
    ST_POINT,
    ST_EDGE_POINT,
    ST_HIST,
    ST_SERIES,
    ST_COUNT,
    ST_POINT_N = ST_COUNT,
    ST_HIST_N,
    ST_ALL
};

typedef struct store_backend store_backend_t;

struct sprig_store {
    const store_backend_t *be;
    sqlite3 *db;
    int cache_kib; /* the page cache size set on db; worker while a batch is in flight */
    sqlite3_stmt *st[ST_ALL];
    uv_loop_t *loop;
    uv_timer_t *timer; /* freed in its close callback */
    uv_work_t work;
    sprig_store_opts_t o;
    char *path;
    int lock_fd;
    batch_t *open, *inflight, *spare;
    batch_t *failed;         /* a batch whose commit failed, tried again first */
    unsigned retry_ms;       /* backoff of that retry, 100 ms doubling to 5 s */
    uv_timer_t *stall;       /* fires when the batch in flight takes over SPRIG_STORE_STALL_MS */
    uint64_t inflight_since; /* uv_hrtime() when the batch in flight was handed over */
    /* Health (sprig_store_health): state, code, start and count of this spell of failures,
     * and the sentence that says why. Loop thread only. */
    sprig_store_state_t state;
    int fail_code;
    int64_t fail_since;
    unsigned failures;
    char fail_msg[512];
    uint64_t next_seq, durable;
    uint64_t last_row_batch; /* batch of the row queued last */
    waiter_t *waiters;
    size_t backlog;
    long long hist_min, hist_max; /* touched by the worker only while in flight */
    int64_t last_age_trim;
    long long hist_indexed; /* history ids up to this are in history_idx */
    long long hist_swept;   /* index entries below this id are gone */
    int64_t last_index, last_sweep;
    sprig_store_stats_t stats;
    tree__map_t series; /* (node, type, key) -> series_t, loop thread only */
    int64_t series_max; /* largest series id given out */
    sqlite3 *rdb;       /* read-only connection for history queries, opened lazily */
    struct store_pg *pg; /* the PostgreSQL backend's connections (store_pg.h) */
    sprig_store_device_fn device_fn; /* set: rows carry their device (loop thread) */
    void *device_arg;
};

/* What a backend does its own way; the batches, their order, waiters, retries and health
 * are the store's (store.c). Each function but commit runs on the loop thread when no
 * batch is in flight (the wrappers wait for one where it matters). */
struct store_backend {
    const char *name;
    /* Opens s->path with s->o: checks, migrates, and for a writable store prepares its
     * statements and reads the history range (s->hist_min, hist_max) and the series. */
    int (*open)(sprig_store_t *s, sprig_error_t *err);
    void (*closing)(sprig_store_t *s); /* after the last flush of a writable store */
    void (*release)(sprig_store_t *s); /* frees what open made; also after a failed open */
    /* Writes batch b in one transaction; sets b->status, error, sys_errno and the
     * history range. Worker thread, or the loop thread when nothing is in flight. */
    void (*commit)(sprig_store_t *s, batch_t *b);
    int (*load)(sprig_store_t *s, const sprig_store_visitor_t *v);
    int (*meta_get)(sprig_store_t *s, const char *key, char *out, size_t n);
    int (*meta_set)(sprig_store_t *s, const char *key, const char *value);
    int (*fix_hash)(sprig_store_t *s, const char *up, const char *node, const char *type,
                    const char *key, uint64_t hash);
    int (*delete_row)(sprig_store_t *s, const char *table, const char *a, const char *b,
                      const char *type, const char *key);
    long (*history)(sprig_store_t *s, const sprig_store_history_query_t *q,
                    sprig_store_history_fn fn, void *arg);
    long (*history_after)(sprig_store_t *s, int64_t after_id, size_t limit,
                          sprig_store_history_after_fn fn, void *arg);
};

extern const store_backend_t store__sqlite, store__pg;

/* The SQLite backend's parts (store_load.c, store_history.c). */
int store__sqlite_load(sprig_store_t *s, const sprig_store_visitor_t *v);
int store__sqlite_meta_get(sprig_store_t *s, const char *key, char *out, size_t n);
int store__sqlite_meta_set(sprig_store_t *s, const char *key, const char *value);
int store__sqlite_fix_hash(sprig_store_t *s, const char *up, const char *node, const char *type,
                           const char *key, uint64_t hash);
int store__sqlite_delete_row(sprig_store_t *s, const char *table, const char *a, const char *b,
                             const char *type, const char *key);
long store__sqlite_history(sprig_store_t *s, const sprig_store_history_query_t *q,
                           sprig_store_history_fn fn, void *arg);
long store__sqlite_history_after(sprig_store_t *s, int64_t after_id, size_t limit,
                                 sprig_store_history_after_fn fn, void *arg);

/* The value column i of a SQLite row: a number; -0 as its 8 bytes (store_commit.c
 * bind_value); anything else (text written outside sprig, such as 'nan': SQLite stores no
 * NaN) as NaN, so the checks see it (SQLite would read 0). */
static inline double store__col_value(sqlite3_stmt *st, int i)
{
    int t = sqlite3_column_type(st, i);
    if (t == SQLITE_FLOAT || t == SQLITE_INTEGER) {
        return sqlite3_column_double(st, i);
    }
    double v = NAN;
    if (t == SQLITE_BLOB && sqlite3_column_bytes(st, i) == (int)sizeof(v)) {
        memcpy(&v, sqlite3_column_blob(st, i), sizeof(v));
    }
    return v;
}

/* A history series as the store knows it: its id and "node\0type\0key". */
typedef struct series {
    int64_t id;
    size_t len;
    char name[];
} series_t;

/* Finds (or gives a new id to) the series of (node, type, key); *fresh tells whether it
 * is new and so must be written. 0 or -ENOMEM. Loop thread. */
int store__series(sprig_store_t *s, const char *node, const char *type, const char *key,
                  int64_t *id, bool *fresh);
/* Reads the series table into the map at open. 0 or -errno. */
int store__series_load(sprig_store_t *s);
/* Records that series (node, type, key) has id (read from a backend at open). */
int store__series_put(sprig_store_t *s, const char *node, const char *type, const char *key,
                      int64_t id);
/* The id of series (node, type, key); false when it has none yet. */
bool store__series_find(sprig_store_t *s, const char *node, const char *type, const char *key,
                        int64_t *id);
/* Frees the map and the read connection. */
void store__series_free(sprig_store_t *s);
int store__map_sqlite(int rc);
/* The words for a failed database call: its message and the system's reason behind it
 * (or the errno that code maps to, when there is none), in buf. */
const char *store__reason(char *buf, size_t n, const char *msg, int sys, int code);
/* The system's errno behind a failed SQLite call (0: none); read it at once. */
int store__sys_errno(sqlite3 *db, int rc, int errno_now);
/* Prepares the statements a batch is written with (writable stores only). */
int store__prepare(sprig_store_t *s);
/* Writes a batch in one transaction; sets its status, error and history range. Worker
 * thread, or the loop thread when nothing is in flight. */
void store__commit_batch(sprig_store_t *s, batch_t *b);
/* Runs the loop until no batch is in flight (not from inside a loop callback). */
void store__wait_inflight(sprig_store_t *s);
/* Runs a query returning one integer; 0 or -errno. */
int store__query_int(sqlite3 *db, const char *sql, long long *out);
/* Reads the history's id range and how far it is indexed. 0 or -errno. */
int store__history_range(sprig_store_t *s);
/* Worker, inside a batch's transaction: trims by rows and age, then indexes the tail.
 * Return SQLite codes. */
int store__history_trim(sprig_store_t *s, int64_t now);
int store__history_index(sprig_store_t *s, int64_t now);
/* Calls the waiters of batches up to seq with status, and the early ones of any batch too
 * when early; the others keep waiting. Loop thread. */
void store__call_waiters(sprig_store_t *s, uint64_t seq, int status, bool early);

/* Health (store_health.c). Before the open: 0 when the database, its -wal, -shm and -lock
 * files and, for each that is missing, their folder can be written by this process, else
 * -errno with err naming the file and the reason. Loop thread, for the rest: a commit
 * failed or stalled (set_failing: its state, code, sentence and when the spell began), or
 * worked (set_ok); on_stall is the stall timer's callback. */
int store__check_writable(const char *path, sprig_error_t *err);
void store__set_failing(sprig_store_t *s, sprig_store_state_t state, int code, const char *msg,
                        int64_t since);
void store__set_ok(sprig_store_t *s, const batch_t *b);
void store__on_stall(uv_timer_t *t);

#endif
