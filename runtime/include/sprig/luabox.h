/* A sandboxed Lua state for code sprig did not write: schema files, rule scripts and
 * serial line parsers (DESIGN.md sections 6-8, STYLE.md "Lua inside C"). Only safe
 * libraries (base without dofile, loadfile, load, require, collectgarbage and print; string
 * without dump; table, math, utf8, coroutine; os.time, os.clock and os.date when asked),
 * source text only, an allocation budget through the state's own allocator, and a budget
 * of work and time per call. Work is counted in units of about one VM instruction: the
 * count hook adds the instructions, the library's C functions add what they copy, scan or
 * move (pattern matching its steps), large allocations add their bytes; the budgets are
 * checked about every thousand units. Once a call's budget is spent the hook raises at
 * every instruction and counting C functions raise, so the script's own pcall cannot
 * swallow the stop; xpcall runs no message handler for it, and
 * finalizers (__gc), which Lua runs with hooks off, are refused (luabox_lib.c). Loop
 * thread (one box, one thread). */
#ifndef SPRIG_LUABOX_H
#define SPRIG_LUABOX_H

#include <lua.h>
#include <stdbool.h>

#include "sprig/common.h"

typedef struct sprig_luabox sprig_luabox_t;

typedef struct sprig_luabox_opts {
    size_t mem_max; /* bytes the state may hold; 0: 32 MiB */
    long insn_max;  /* units of work one call may do (about instructions); 0: 20 million */
    unsigned time_max_ms; /* wall time one call may run, checked about every thousand
                             units of work; 0: no limit */
    bool os_time;   /* give the script os.time, os.clock, os.date */
    void *user;     /* for the embedder's C functions (sprig_luabox_user) */
} sprig_luabox_opts_t;

/* Creates a box; 0 or -ENOMEM. Close with sprig_luabox_close (NULL is a no-op). */
SPRIG_API int sprig_luabox_open(const sprig_luabox_opts_t *opts, sprig_luabox_t **out);
SPRIG_API void sprig_luabox_close(sprig_luabox_t *box);
/* The state, to register C functions and globals. Borrowed, valid until close. */
SPRIG_API lua_State *sprig_luabox_state(sprig_luabox_t *box);
/* The user pointer of the box that owns L (from inside a C function). */
SPRIG_API void *sprig_luabox_user(lua_State *L);
/* Bytes the state holds now. */
SPRIG_API size_t sprig_luabox_mem(const sprig_luabox_t *box);

/* Compiles source text (never bytecode) named `name` (messages say "NAME:LINE:") and
 * pushes it as a function. 0, or -EINVAL with err holding Lua's message. */
SPRIG_API int sprig_luabox_load(sprig_luabox_t *box, const char *name, const char *text, size_t len,
                                sprig_error_t *err);
/* Calls the function below nargs arguments with a fresh instruction budget, like
 * lua_pcall(nargs, nresults). 0, or -EINVAL (an error, with its "NAME:LINE: message"),
 * -ETIMEDOUT (over the instruction or time budget) or -ENOMEM (over the memory budget), with err
 * naming the line; nothing is left on the stack then. */
SPRIG_API int sprig_luabox_call(sprig_luabox_t *box, int nargs, int nresults, sprig_error_t *err);

#endif
