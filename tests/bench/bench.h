/* What the C benchmarks share: a monotonic clock, dying with a message, and removing a
 * scratch database with its WAL files. Define BENCH_NAME before including it. */
#ifndef SPRIG_BENCH_H
#define SPRIG_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_NAME
#error "define BENCH_NAME (the program's name, for its messages) before bench.h"
#endif

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void die(const char *what, const char *msg)
{
    fprintf(stderr, BENCH_NAME ": %s: %s\n", what, msg);
    exit(1);
}

/* Removes database path and its -wal, -shm and -lock files. */
static inline void remove_db(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-lock"};
    char p[4096];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
}

#endif
