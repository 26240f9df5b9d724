/* Helpers the unit tests share: a temporary directory removed afterwards, a bounded run of a
 * libuv loop until a condition holds, a clean loop shutdown, and one-integer SQL queries on
 * a database file through a separate SQLite connection (what a person with sqlite3 sees). */
#ifndef SPRIG_TESTUTIL_H
#define SPRIG_TESTUTIL_H

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* Creates a fresh directory under /tmp into dir (PATH_MAX bytes); 0 or -1. */
static inline int tu_tmpdir(char *dir)
{
    snprintf(dir, PATH_MAX, "/tmp/sprig-unit-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

/* Removes the (flat) directory made by tu_tmpdir and every file in it. */
static inline void tu_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    for (int i = 0; i < 10000 && (e = readdir(d)) != NULL; i++) {
        char p[PATH_MAX];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        int n = snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (n > 0 && (size_t)n < sizeof(p)) {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* Joins dir and name into out (PATH_MAX bytes) and returns out. */
static inline char *tu_path(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX) {
        out[0] = '\0';
    }
    return out;
}

/* The path of rel, relative to the top of the source tree, into out (PATH_MAX bytes),
 * found from where this header is (tests/unit/); returns out, empty when it does not
 * fit. */
static inline const char *tu_source_path(char *out, const char *rel)
{
    char here[PATH_MAX];
    snprintf(here, sizeof(here), "%s", __FILE__);
    char *slash = strrchr(here, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    int n = snprintf(out, PATH_MAX, "%s/../../%s", slash != NULL ? here : ".", rel);
    if (n < 0 || n >= PATH_MAX) {
        out[0] = '\0';
    }
    return out;
}

typedef struct tu_wait {
    bool (*cond)(void *arg);
    void *arg;
    uint64_t deadline; /* uv_now() value */
    bool met, done;
} tu_wait_t;

static inline void tu__wait_tick(uv_timer_t *t)
{
    tu_wait_t *w = t->data;
    if (w->cond != NULL && w->cond(w->arg)) {
        w->met = true;
        w->done = true;
    }
    else if (uv_now(t->loop) >= w->deadline) {
        w->done = true;
    }
}

static inline void tu__closed(uv_handle_t *h)
{
    *(bool *)h->data = true;
}

/* Runs the loop until cond(arg) holds or timeout_ms pass (cond NULL: for timeout_ms), with
 * a hard bound on iterations and on real time as well. Returns whether cond held. */
static inline bool tu_run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg,
                                unsigned timeout_ms)
{
    uv_update_time(loop);
    tu_wait_t w = {cond, arg, uv_now(loop) + timeout_ms, false, false};
    if (cond != NULL && cond(arg)) {
        return true;
    }
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &w;
    uv_timer_start(&t, tu__wait_tick, 1, 1);
    uint64_t hard = uv_hrtime() + ((uint64_t)timeout_ms + 5000) * 1000000ULL;
    for (long i = 0; i < 1000000 && !w.done && uv_hrtime() < hard; i++) {
        uv_run(loop, UV_RUN_ONCE);
    }
    bool closed = false;
    t.data = &closed;
    uv_close((uv_handle_t *)&t, tu__closed);
    for (int i = 0; i < 1000 && !closed; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
    }
    return w.met || (cond != NULL && cond(arg));
}

/* Runs the loop for ms milliseconds. */
static inline void tu_run_for(uv_loop_t *loop, unsigned ms)
{
    tu_run_until(loop, NULL, NULL, ms);
}

/* Lets close callbacks run (bounded), then closes the loop: returns uv_loop_close's result,
 * which is UV_EBUSY when some handle was left open. */
static inline int tu_loop_finish(uv_loop_t *loop)
{
    for (int i = 0; i < 1000 && uv_loop_alive(loop); i++) {
        uv_run(loop, UV_RUN_NOWAIT);
    }
    return uv_loop_close(loop);
}

/* Runs a query returning one integer on the file at path, through its own connection.
 * Returns 0, or the SQLite error code. */
static inline int tu_sql_int(const char *path, const char *sql, long long *out)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* The same for a query returning one text, copied into out (n bytes). */
static inline int tu_sql_text(const char *path, const char *sql, char *out, size_t n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    }
    out[0] = '\0';
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL) {
            snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* Runs fn(arg) in a forked child killed after timeout_ms, so that a call which never returns
 * fails a test instead of hanging it. The child must not use cmocka's asserts (a failure
 * would unwind into the child's copy of the runner): fn returns its exit status. Returns
 * that status (0..255), TU_CHILD_SIGNAL when the child died of a signal, TU_CHILD_TIMEOUT
 * when it was killed for running out of time, or TU_CHILD_ERROR when fork failed. */
enum { TU_CHILD_SIGNAL = -1, TU_CHILD_TIMEOUT = -2, TU_CHILD_ERROR = -3 };

static inline int tu_child(int (*fn)(void *), void *arg, unsigned timeout_ms)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        return TU_CHILD_ERROR;
    }
    if (pid == 0) {
        _exit(fn(arg));
    }
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000ULL;
    int status = 0;
    for (long i = 0; i < 100000000L; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : TU_CHILD_SIGNAL;
        }
        if (r < 0) {
            return TU_CHILD_ERROR;
        }
        if (uv_hrtime() > deadline) {
            break;
        }
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return TU_CHILD_TIMEOUT;
}

#endif
