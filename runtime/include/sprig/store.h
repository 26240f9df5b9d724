/* Persistence in SQLite (WAL): nodes, edges, points, edge points and a bounded history,
 * with group commit.
 *
 * The loop thread queues rows with sprig_store_put_*; they go to disk in one transaction
 * per batch, committed on a libuv worker thread so the loop never waits for the disk.
 * A batch closes when it holds batch_max rows or commit_ms after its first row,
 * whichever comes first; while one batch commits, the next one fills (so batches grow
 * under load, which is what makes synchronous=FULL affordable). Every row is numbered by
 * the batch it went into, and sprig_store_when_durable calls back once that batch is on
 * disk. Only the loop thread may call these functions. */
#ifndef SPRIG_STORE_H
#define SPRIG_STORE_H

#include <stdbool.h>
#include <uv.h>
#include "sprig/point.h"

/* Version of the table layout written by this build; older files are migrated at open. */
#define SPRIG_STORE_VERSION 1

typedef struct sprig_store sprig_store_t;

typedef struct sprig_store_opts {
    unsigned commit_ms;         /* longest wait before a batch closes; default 5 */
    size_t batch_max;           /* rows that close a batch at once; default 10000 */
    long long history_max_rows; /* history kept at most; default 1000000; <0: none kept */
    int64_t history_max_age_ns; /* history older than this is dropped; default 30 days */
    bool sync_normal;           /* PRAGMA synchronous=NORMAL instead of FULL */
    bool read_only;             /* open for reading (store verify without --fix) */
} sprig_store_opts_t;

/* What sprig_store_load hands back, one row at a time; everything borrowed for the call.
 * A row whose stored hash does not match ph() of its fields is still handed back, with
 * stored_hash as read, so the caller can report it. A value column that holds no number
 * (text written outside sprig) is handed back as NaN. */
typedef struct sprig_store_visitor {
    int (*node)(const char *id, const char *type, void *arg);
    int (*edge)(const char *up, const char *down, void *arg);
    int (*point)(const char *node, const sprig_point_t *p, uint64_t stored_hash, void *arg);
    int (*edge_point)(const char *up, const char *down, const sprig_point_t *p,
                      uint64_t stored_hash, void *arg);
    void *arg;
} sprig_store_visitor_t;

typedef void (*sprig_store_durable_cb)(uint64_t batch, int status, void *arg);

/* A commit that has not finished after this long, plus 1 ms for every
 * SPRIG_STORE_STALL_ROWS_PER_MS rows of its batch, makes the store stalled (see below): a
 * batch of a few rows has 3 s, an import of a whole site (890,000 rows for 100,000 nodes)
 * 20.8 s, a tenth of the rate measured here for large batches (README, Performance). 3 s,
 * not 1: an SD card's write can pause a second or two, and a healthy 10,000-row commit
 * took 1.3 s in a sanitizer build on a loaded machine; below SQLite's 5 s busy timeout, so
 * a commit waiting on another process's lock is called stalled before it fails. */
#define SPRIG_STORE_STALL_MS 3000
#define SPRIG_STORE_STALL_ROWS_PER_MS 50

/* Whether the store can write now. A commit that fails (disk full, I/O error, a file made
 * read-only under it) makes the store failing until a retry succeeds; one that has not
 * finished after SPRIG_STORE_STALL_MS (more for a large batch) makes it stalled until it
 * finishes. Either way the
 * rows already queued stay queued, in order, and are written once commits work again: the
 * store never drops a row it took, except at close (sprig_store_close says so). */
typedef enum { SPRIG_STORE_OK, SPRIG_STORE_FAILING, SPRIG_STORE_STALLED } sprig_store_state_t;

typedef struct sprig_store_health {
    sprig_store_state_t state;
    int code;          /* the failure's -errno (-ETIMEDOUT when stalled); 0 when ok */
    int64_t since;     /* wall clock (ns) of the first failure of this spell; 0 when ok */
    unsigned failures; /* commits that failed in this spell */
    /* "database FILE: cannot be written: REASON", REASON being SQLite's and the system's
     * (or the stall's) words; NULL when ok. Borrowed: valid until control returns to the
     * loop. */
    const char *error;
} sprig_store_health_t;

/* Opens (creating when missing) the database at path and migrates its tables. path is a
 * SQLite file (also written sqlite:FILE) or a PostgreSQL URI (postgresql://... or
 * postgres://..., libpq's form: the store of record of a fleet, DESIGN.md section 11),
 * whose tables sprig creates and migrates in the database the URI names. loop may
 * be NULL for a store that is only loaded, checked or fixed (no group commit then:
 * sprig_store_flush writes synchronously). Unless opts->read_only, the database must be
 * writable: the file, its -wal, -shm and -lock files (or, for those missing, their
 * folder) must be writable by this process, and a first commit must succeed, else the
 * open fails with -EACCES, -EROFS, -ENOSPC, -EIO... naming the file and the reason (a
 * daemon that started anyway would take writes it can never store). Returns 0,
 * -ENOMEM, -EIO, SPRIG_ECORRUPT (not a sprig database, or a newer version),
 * SPRIG_ELOCKED (another process holds it for writing) or the codes above; err names the
 * file and the fault. */
SPRIG_API int sprig_store_open(const char *path, const sprig_store_opts_t *opts, uv_loop_t *loop,
                               sprig_store_t **out, sprig_error_t *err);
/* Tells the store the device each row belongs to (DESIGN.md section 11): fn(node) names
 * the device whose tree node lies in ("" for this instance's own), called as each row is
 * queued; its answer is copied. Rows of an edge or an edge point belong to its lower node.
 * Only a backend that keeps devices apart (PostgreSQL) asks; without fn every row is "". */
typedef const char *(*sprig_store_device_fn)(const char *node, void *arg);
SPRIG_API void sprig_store_set_device_fn(sprig_store_t *s, sprig_store_device_fn fn, void *arg);
/* The database as logs name it: the file, or the PostgreSQL URI without its password. */
SPRIG_API const char *sprig_store_name(const sprig_store_t *s);
/* "sqlite" or "postgresql". */
SPRIG_API const char *sprig_store_backend(const sprig_store_t *s);
/* Commits everything queued (waiting for a batch in flight), then closes. NULL is a
 * no-op. Returns 0, or the error of the last commit: a batch that cannot be written even
 * then is given up (logged as lost, its waiters called with the error). */
SPRIG_API int sprig_store_close(sprig_store_t *s);

/* Reads every row, nodes first, then edges, points and edge points. A visitor function
 * that returns non-zero stops the load with that value. */
SPRIG_API int sprig_store_load(sprig_store_t *s, const sprig_store_visitor_t *v);

/* Key-value metadata (the root id, ...). get copies into out; -ENOENT when absent. These
 * are written at once, outside the batches. */
SPRIG_API int sprig_store_meta_get(sprig_store_t *s, const char *key, char *out, size_t n);
SPRIG_API int sprig_store_meta_set(sprig_store_t *s, const char *key, const char *value);

/* Queue rows into the open batch. Strings are copied. put_point also appends the point
 * to the history. Returns 0 or -ENOMEM. A commit that fails is logged, counted and tried
 * again with backoff (100 ms doubling to 5 s), batches staying in order (the store is
 * failing meanwhile: sprig_store_health); only at close is a batch that still fails given
 * up, and its waiters called with the error. These calls do not refuse rows while the
 * store is failing: a caller that can refuse its own (the API) checks the health first. */
SPRIG_API int sprig_store_put_node(sprig_store_t *s, const char *id, const char *type);
SPRIG_API int sprig_store_put_edge(sprig_store_t *s, const char *up, const char *down);
SPRIG_API int sprig_store_put_point(sprig_store_t *s, const char *node, const sprig_point_t *p,
                                    uint64_t hash);
SPRIG_API int sprig_store_put_edge_point(sprig_store_t *s, const char *up, const char *down,
                                         const sprig_point_t *p, uint64_t hash);
/* put_point, with history false: the point is stored but not appended to the history
 * (a sample taken on another instance, whose own history brings it here). */
SPRIG_API int sprig_store_put_point_ex(sprig_store_t *s, const char *node, const sprig_point_t *p,
                                       uint64_t hash, bool history);
/* Appends a sample to the history only (uploaded by a device). 0 or -ENOMEM. */
SPRIG_API int sprig_store_put_history(sprig_store_t *s, const char *node, const sprig_point_t *p);

/* Number of the open batch: rows queued now go into it. */
SPRIG_API uint64_t sprig_store_batch(const sprig_store_t *s);
/* Number of the batch that the row queued last went into (0: none yet). Use it, not
 * sprig_store_batch, after a put: a put that fills a batch closes it. */
SPRIG_API uint64_t sprig_store_last_batch(const sprig_store_t *s);
/* Number of the last batch known to be on disk (0: none yet). */
SPRIG_API uint64_t sprig_store_durable(const sprig_store_t *s);
/* Rows queued and not yet durable; producers that can wait use it as backpressure. */
SPRIG_API size_t sprig_store_backlog(const sprig_store_t *s);
/* Calls cb(batch, status) once batch is on disk (status 0), or with -errno when it was
 * given up at close. When it already is on disk, cb runs before this returns. Returns 0
 * or -ENOMEM (cb not called). */
SPRIG_API int sprig_store_when_durable(sprig_store_t *s, uint64_t batch, sprig_store_durable_cb cb,
                                       void *arg);
/* As sprig_store_when_durable, for a caller that must answer within a bound (the API):
 * cb also runs as soon as the store turns failing or stalled before batch is on disk, and
 * before this returns when it already is, with the health's code as status. cb runs once.
 * A status other than 0 means "not on disk yet": the rows stay queued and are written
 * when commits work again (unless the store is closed first). Returns 0 or -ENOMEM (cb
 * not called). */
SPRIG_API int sprig_store_when_durable_or_failing(sprig_store_t *s, uint64_t batch,
                                                  sprig_store_durable_cb cb, void *arg);
/* Fills out with whether commits work now (see sprig_store_health_t). */
SPRIG_API void sprig_store_health(const sprig_store_t *s, sprig_store_health_t *out);
/* Commits everything queued now, on the calling thread, after any batch in flight has
 * finished. Returns 0 or -errno (the rows stay queued). For shutdown, stores without a
 * loop, and tests. Not from inside a loop callback while a batch is in flight. */
SPRIG_API int sprig_store_flush(sprig_store_t *s);

/* Repairs used by `sprig store verify --fix`: rewrites the stored hash of one point (edge
 * point when up is non-NULL) to `hash`, or deletes a row that cannot be loaded at all.
 * Written at once. Return 0, -ENOENT or -EIO. */
SPRIG_API int sprig_store_fix_hash(sprig_store_t *s, const char *up, const char *node,
                                   const char *type, const char *key, uint64_t hash);
SPRIG_API int sprig_store_delete_row(sprig_store_t *s, const char *table, const char *a,
                                     const char *b, const char *type, const char *key);

/* One page of the history of a point series (node, type, key), times in [from, to)
 * (to 0: no end), after the cursor (after_time, after_id) when after_id is non-zero, in
 * time order (newest first with desc), at most limit samples. fn gets each sample (p
 * borrowed for the call) with its row id, the cursor of the next page. Reads what is on
 * disk, on a connection of its own. Returns the number of samples, or -errno. */
typedef int (*sprig_store_history_fn)(const sprig_point_t *p, int64_t id, void *arg);
typedef int (*sprig_store_history_after_fn)(const char *node, const sprig_point_t *p, int64_t id,
                                            void *arg);
typedef struct sprig_store_history_query {
    const char *node, *type, *key;
    int64_t from, to;
    int64_t after_time, after_id;
    bool desc;
    size_t limit;
} sprig_store_history_query_t;
SPRIG_API long sprig_store_history(sprig_store_t *s, const sprig_store_history_query_t *q,
                                   sprig_store_history_fn fn, void *arg);

/* The history in the order it was appended, after row id after_id, at most limit rows:
 * fn gets each sample's node, point (borrowed for the call) and row id. Reads what is on
 * disk, on the history reader's connection. Returns the number of rows, or -errno. */
SPRIG_API long sprig_store_history_after(sprig_store_t *s, int64_t after_id, size_t limit,
                                         sprig_store_history_after_fn fn, void *arg);

/* Counts for status and tests. */
typedef struct sprig_store_stats {
    uint64_t batches; /* committed */
    uint64_t rows;    /* committed */
    uint64_t commit_errors;
    long long history_rows; /* rows in the history table now */
    long long history_last_id; /* id of the newest history row on disk (0: none) */
} sprig_store_stats_t;
SPRIG_API void sprig_store_stats(const sprig_store_t *s, sprig_store_stats_t *out);

#endif
