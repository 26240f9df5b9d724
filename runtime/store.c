/* Persistence with group commit on a libuv worker thread: see store.h. This file is what
 * every backend shares (batches, their order, waiters, retries, health); a backend
 * (store_sqlite.c) opens the database, commits a batch and reads.
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
#include <stdio.h>
#include <string.h>

#include "sprig/alloc.h"
#include "store_internal.h"
#include "store_pg.h"
#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/store.h"
#include "sprig/util.h"

const char *store__reason(char *buf, size_t n, const char *msg, int sys, int code)
{
    snprintf(buf, n, "%s (%s)", msg, sys != 0 ? strerror(sys) : sprig_strerror(code));
    return buf;
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
    if (s->be != NULL) {
        s->be->release(s);
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
    if (strncmp(path, "sqlite:", 7) == 0) {
        path += 7;
    }
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
    s->be = store__pg_target(path) ? &store__pg : &store__sqlite;
    if ((rc = s->be->open(s, err)) != 0) {
        goto fail;
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
    r.device = s->device_fn != NULL ? NULL : ""; /* NULL: named when the batch closes */
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
    s->be->commit(s, s->inflight);
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
        store__reason(why, sizeof(why), b->error[0] != '\0' ? b->error : "not committed", b->sys_errno,
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

/* Names the device of each row of batch b as it leaves the loop thread: by then a node
 * made in the batch is linked under its parent too (a node row is queued before its
 * edge). A row whose device cannot be copied (out of memory) is the instance's own. */
static void name_devices(sprig_store_t *s, batch_t *b)
{
    for (size_t i = 0; s->device_fn != NULL && i < b->len; i++) {
        row_t *r = &b->rows[i];
        if (r->device == NULL) {
            const char *lower = r->kind == ROW_EDGE || r->kind == ROW_EDGE_POINT ? r->b : r->a;
            const char *d = s->device_fn(lower, s->device_arg);
            r->device = d != NULL && d[0] != '\0' ? arena_copy(b, d) : "";
            if (r->device == NULL) {
                r->device = "";
            }
        }
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
        name_devices(s, s->inflight);
    }
    else {
        return;
    }
    s->inflight->cache_kib = cache_kib(s);
    uv_timer_stop(s->timer);
    int rc = uv_queue_work(s->loop, &s->work, work_cb, after_work_cb);
    if (rc != 0) {
        /* No worker could be had: write it here rather than lose it. */
        s->be->commit(s, s->inflight);
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
    name_devices(s, b);
    s->be->commit(s, b);
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
    if (!s->o.read_only && s->be->closing != NULL) {
        s->be->closing(s);
    }
    release(s);
    return rc;
}

void sprig_store_set_device_fn(sprig_store_t *s, sprig_store_device_fn fn, void *arg)
{
    s->device_fn = fn;
    s->device_arg = arg;
}

const char *sprig_store_name(const sprig_store_t *s)
{
    return s->path;
}

const char *sprig_store_backend(const sprig_store_t *s)
{
    return s->be->name;
}

void sprig_store_stats(const sprig_store_t *s, sprig_store_stats_t *out)
{
    *out = s->stats;
}

/* --- what each backend does its own way ---------------------------------------------- */

int sprig_store_load(sprig_store_t *s, const sprig_store_visitor_t *v)
{
    if (s->loop != NULL) {
        store__wait_inflight(s);
    }
    return s->be->load(s, v);
}

int sprig_store_meta_get(sprig_store_t *s, const char *key, char *out, size_t n)
{
    if (s->loop != NULL) {
        store__wait_inflight(s);
    }
    return s->be->meta_get(s, key, out, n);
}

int sprig_store_meta_set(sprig_store_t *s, const char *key, const char *value)
{
    if (s->loop != NULL) {
        store__wait_inflight(s);
    }
    return s->be->meta_set(s, key, value);
}

int sprig_store_fix_hash(sprig_store_t *s, const char *up, const char *node, const char *type,
                         const char *key, uint64_t hash)
{
    if (s->loop != NULL) {
        store__wait_inflight(s);
    }
    return s->be->fix_hash(s, up, node, type, key, hash);
}

int sprig_store_delete_row(sprig_store_t *s, const char *table, const char *a, const char *b,
                           const char *type, const char *key)
{
    if (s->loop != NULL) {
        store__wait_inflight(s);
    }
    return s->be->delete_row(s, table, a, b, type, key);
}

long sprig_store_history(sprig_store_t *s, const sprig_store_history_query_t *q,
                         sprig_store_history_fn fn, void *arg)
{
    return s->be->history(s, q, fn, arg);
}

long sprig_store_history_after(sprig_store_t *s, int64_t after_id, size_t limit,
                               sprig_store_history_after_fn fn, void *arg)
{
    return s->be->history_after(s, after_id, limit, fn, arg);
}
