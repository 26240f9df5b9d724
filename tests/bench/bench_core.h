/* The write-path benchmark both stores share (bench_write on SQLite, bench_store_pg on
 * PostgreSQL): 10,000 nodes at depth 4 under the root, then WRITES point writes through
 * sprig_core_write until the last batch is durable. Include after bench.h. */
#ifndef SPRIG_BENCH_CORE_H
#define SPRIG_BENCH_CORE_H

#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <uv.h>

#include "sprig/core.h"
#include "sprig/err.h"
#include "sprig/schema.h"
#include "sprig/store.h"

static inline void count_event(const sprig_event_t *ev, void *arg)
{
    (void)ev;
    (*(uint64_t *)arg)++;
}

/* Node i's id; level sizes 10, 100, 1000 and the rest give depth 4 under the root. */
static inline void node_id(long i, char *out, size_t n)
{
    snprintf(out, n, "n%06ld", i);
}

static inline long parent_of(long i)
{
    if (i < 10) {
        return -1; /* the root */
    }
    if (i < 110) {
        return (i - 10) / 10;
    }
    if (i < 1110) {
        return 10 + (i - 110) / 10;
    }
    return 110 + (i - 1110) % 1000;
}

static inline double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Returns the wall time until durable; *loop_cpu gets the loop thread's CPU time in the
 * write loop less its waits for commits (which run on the worker thread): the cost of
 * sprig_core_write itself, a steadier figure than wall time on a shared machine. */
static inline double bench_core(const char *path, long writes, long nodes, uint64_t *events,
                         const sprig_schema_t *schema, double *loop_cpu)
{
    uv_loop_t loop;
    sprig_core_t *c;
    sprig_error_t err;
    char id[32], parent[32];
    uv_loop_init(&loop);
    sprig_core_opts_t o = {.db_path = path};
    if (sprig_core_open(&loop, &o, &c, &err) != 0) {
        die(path, err.msg);
    }
    sprig_core_set_schema(c, schema);
    const char *type = schema != NULL ? "benchNode" : "group";
    for (long i = 0; i < nodes - 1; i++) {
        long p = parent_of(i);
        node_id(i, id, sizeof(id));
        if (p >= 0) {
            node_id(p, parent, sizeof(parent));
        }
        if (sprig_core_create(c, id, type, p >= 0 ? parent : sprig_core_root_id(c), NULL, 0, NULL,
                              NULL, &err) != 0) {
            die("create", err.msg);
        }
    }
    sprig_store_flush(sprig_core_store(c));
    sprig_bus_subscribe(sprig_core_bus(c), NULL, count_event, events, NULL);

    double t0 = now_s();
    *loop_cpu -= thread_cpu_s();
    for (long w = 0; w < writes; w++) {
        node_id(w % (nodes - 1), id, sizeof(id));
        sprig_point_t p = {.type = "value", .value = (double)w};
        if (sprig_core_write(c, id, &p, 1, NULL, &err) != 0) {
            die("write", err.msg);
        }
        /* Backpressure, as a producer that can wait does: let commits catch up. */
        if (sprig_store_backlog(sprig_core_store(c)) > 40000) {
            double w0 = thread_cpu_s(); /* the loop's own waiting is not the write path */
            while (sprig_store_backlog(sprig_core_store(c)) > 40000) {
                uv_run(&loop, UV_RUN_ONCE);
            }
            *loop_cpu -= thread_cpu_s() - w0;
        }
    }
    *loop_cpu += thread_cpu_s();
    sprig_store_flush(sprig_core_store(c));
    double dt = now_s() - t0;
    sprig_core_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return dt;
}

#endif
