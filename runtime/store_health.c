/* The store's health (see store.h): before the open, the checks that the database, its
 * -wal, -shm and -lock files and their folder can be written; after it, the failing and
 * stalled states that a failed or slow commit brings, with the sentence that says why.
 * store.c's batches report to it; sprig_store_health reads it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/util.h"
#include "store_internal.h"

/* The folder path is in, in buf (n >= PATH_MAX): its full name when it can be found. */
static const char *folder_of(const char *path, char *buf, size_t n)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    }
    else {
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    }
    if (realpath(dir, buf) == NULL) {
        snprintf(buf, n, "%s", dir);
    }
    return buf;
}

/* A daemon must not start on a database it cannot write: it would take writes it can
 * never store. SQLite opens such a file read-only without a word (and then makes its -wal
 * and -shm files with the database's read-only mode), so this looks first: the database
 * and its -wal, -shm and -lock files must be writable by this process's effective user,
 * and the folder too for each of them that is missing (SQLite and take_lock make them
 * there). A read-only file system fails here as well (EROFS). */
int store__check_writable(const char *path, sprig_error_t *err)
{
    static const char *const side[] = {"", "-wal", "-shm", "-lock"};
    char file[PATH_MAX + 8], dir[PATH_MAX];
    const char *folder = folder_of(path, dir, sizeof(dir));
    for (size_t i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
        struct stat st;
        int e;
        snprintf(file, sizeof(file), "%s%s", path, side[i]);
        if (stat(file, &st) == 0) {
            if (faccessat(AT_FDCWD, file, R_OK | W_OK, AT_EACCESS) == 0) {
                continue;
            }
            e = errno;
            return sprig_error_set(err, -e,
                                   "database %s: %s%scannot be written (%s): %s mode %04o, "
                                   "owner uid %u, and sprig runs as uid %u",
                                   path, i == 0 ? "" : file, i == 0 ? "" : " ", strerror(e),
                                   i == 0 ? "the file is" : "it is", (unsigned)(st.st_mode & 07777),
                                   (unsigned)st.st_uid, (unsigned)geteuid());
        }
        e = errno;
        if (e != ENOENT) {
            return sprig_error_set(err, -e, "database %s: %s cannot be reached: %s", path, file,
                                   strerror(e));
        }
        if (faccessat(AT_FDCWD, folder, W_OK | X_OK, AT_EACCESS) != 0) {
            e = errno;
            if (i == 0) {
                return sprig_error_set(err, -e,
                                       "database %s: cannot be created: its folder %s cannot be "
                                       "written (%s)",
                                       path, folder, strerror(e));
            }
            return sprig_error_set(err, -e,
                                   "database %s: its folder %s cannot be written (%s), and "
                                   "%s must be made there",
                                   path, folder, strerror(e), file);
        }
    }
    return 0;
}

/* The store cannot commit: records why (msg, for status and the API's answers) and tells
 * the early waiters at once. A spell of failures starts with the first one, at `since`
 * (wall clock). */
void store__set_failing(sprig_store_t *s, sprig_store_state_t state, int code, const char *msg,
                        int64_t since)
{
    if (s->state == SPRIG_STORE_OK) {
        s->fail_since = since;
        s->failures = 0;
    }
    s->state = state;
    s->fail_code = code;
    snprintf(s->fail_msg, sizeof(s->fail_msg), "database %s: cannot be written: %s", s->path, msg);
    store__call_waiters(s, 0, code, true);
}

/* A commit succeeded: the spell of failures, if any, is over. */
void store__set_ok(sprig_store_t *s, const batch_t *b)
{
    if (s->state == SPRIG_STORE_OK) {
        return;
    }
    double secs = (double)(sprig_wall_ns() - s->fail_since) / 1e9;
    sprig_log_info("database %s: writing works again after %.1f s and %u failed commits: batch "
                   "%llu is on disk, the %zu rows queued behind it follow",
                   s->path, secs, s->failures, (unsigned long long)b->seq, s->backlog - b->len);
    s->state = SPRIG_STORE_OK;
    s->fail_code = 0;
    s->fail_since = 0;
    s->fail_msg[0] = '\0';
}

/* The batch in flight has not come back after SPRIG_STORE_STALL_MS: the disk does not
 * answer (or is very slow). The commit goes on; the store reports itself stalled until it
 * ends, so callers that must answer within a bound do. */
void store__on_stall(uv_timer_t *t)
{
    sprig_store_t *s = t->data;
    if (s->inflight == NULL || s->state != SPRIG_STORE_OK) {
        return; /* an early waiter heard of the failure already */
    }
    char msg[160];
    uint64_t took = uv_hrtime() - s->inflight_since;
    snprintf(msg, sizeof(msg), "the commit of batch %llu (%zu rows) has not finished after %.1f s",
             (unsigned long long)s->inflight->seq, s->inflight->len, (double)took / 1e9);
    sprig_log_warn("database %s: %s; API writes are refused until it ends", s->path, msg);
    store__set_failing(s, SPRIG_STORE_STALLED, -ETIMEDOUT, msg, sprig_wall_ns() - (int64_t)took);
}

void sprig_store_health(const sprig_store_t *s, sprig_store_health_t *out)
{
    out->state = s->state;
    out->code = s->fail_code;
    out->since = s->fail_since;
    out->failures = s->failures;
    out->error = s->state != SPRIG_STORE_OK ? s->fail_msg : NULL;
}
