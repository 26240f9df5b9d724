/* The rule engine (DESIGN.md section 7, scripts/README.md): runs the Lua script of every
 * live `rule` node in a sandbox of its own (luabox.h), delivers the point changes and
 * timers it subscribed to, and writes what it sets through the core's write path with
 * origin = the rule's id. A rule whose script changes is reloaded; a broken version keeps
 * the last good one running and sets the rule's `error` point. Loop thread only. */
#ifndef SPRIG_RULES_H
#define SPRIG_RULES_H

#include "sprig/core.h"

typedef struct sprig_rules sprig_rules_t;

/* A line a rule logged (log/warn), for an embedder that prints them itself. */
typedef void (*sprig_rules_log_fn)(const char *rule, int warn, const char *msg, void *arg);

typedef struct sprig_rules_opts {
    size_t mem_max;       /* bytes one rule may hold; 0: 16 MiB */
    long insn_max;        /* instructions one call may run; 0: 5 million */
    unsigned time_max_ms; /* wall time one call may run; 0: 100 ms */
    /* The clock rules see (now(), timers, schedules), ns since the Unix epoch; NULL: the
     * real clock. With a clock of its own the engine arms no libuv timers: the embedder
     * moves time and calls sprig_rules_advance (offline tests). */
    int64_t (*clock)(void *arg);
    void *clock_arg;
    sprig_rules_log_fn log; /* NULL: the daemon's log */
    void *log_arg;
} sprig_rules_opts_t;

/* Starts rules for every live rule node and follows the bus for new, changed and deleted
 * ones. Returns 0 or -ENOMEM. Stop with sprig_rules_stop. */
SPRIG_API int sprig_rules_start(sprig_core_t *core, const sprig_rules_opts_t *opts,
                                sprig_rules_t **out);
/* Saves every rule's state, runs and lastRun, stops every rule and frees the engine;
 * NULL is a no-op. Run the loop afterwards so timer handles close. */
SPRIG_API void sprig_rules_stop(sprig_rules_t *e);

/* Loads the rules that changed since the last turn and runs queued events now, rather
 * than on the next loop turn (offline tests call it after every step). */
SPRIG_API void sprig_rules_settle(sprig_rules_t *e);
/* With a clock of its own: runs, in order, every timer due at or before the clock's
 * present time; returns the next due time (ns) or INT64_MAX when none is armed. */
SPRIG_API int64_t sprig_rules_advance(sprig_rules_t *e);
/* The earliest armed timer's due time, or INT64_MAX. */
SPRIG_API int64_t sprig_rules_next_due(const sprig_rules_t *e);
/* Saves the state, runs and lastRun of every rule that ran since the last save (the
 * engine does this once a second on the real clock). */
SPRIG_API void sprig_rules_save(sprig_rules_t *e);

typedef struct sprig_rules_stats {
    size_t loaded;   /* rules with a good version running */
    uint64_t runs;   /* handler calls */
    uint64_t errors; /* loads and calls that failed */
} sprig_rules_stats_t;
SPRIG_API void sprig_rules_stats(const sprig_rules_t *e, sprig_rules_stats_t *out);

/* The rules folder (--rules DIR): imports every DIR/NAME.lua as rule node NAME under the
 * root (script and file points), deletes imported rule nodes whose file is gone, and with
 * watch set follows changes to the folder (debounced by 100 ms). Errors of single files
 * are logged naming the file and skip it. Returns 0, or -errno when DIR cannot be read
 * (err names it). */
typedef struct sprig_rules_dir sprig_rules_dir_t;
SPRIG_API int sprig_rules_dir_open(sprig_core_t *core, const char *dir, bool watch,
                                   sprig_rules_dir_t **out, sprig_error_t *err);
SPRIG_API void sprig_rules_dir_close(sprig_rules_dir_t *d);

#endif
