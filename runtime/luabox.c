/* The Lua sandbox: see luabox.h. */
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/luabox.h"
#include "luabox_internal.h"

/* The count hook runs every HOOK_EVERY instructions; every CHECK_EVERY units of work
 * (instructions, counted C work, allocated bytes / 16) the budgets are checked. A unit of
 * work is a few ns, so the clock is read about every 10 us of busy script: a 100 ms
 * budget ends within about a millisecond of it, plus one C call that counts nothing. */
#define HOOK_EVERY 1000
#define CHECK_EVERY 1000
#define WHY_MAX 200
#define SMALL 64      /* bytes of a small block */
#define FREE_MAX 512 /* small blocks kept for reuse, at most */

struct sprig_luabox {
    lua_State *L;
    sprig_luabox_opts_t o;
    size_t mem;
    size_t work;       /* units of work of this call (luabox_internal.h) */
    size_t next_check; /* work at which the budgets are checked next */
    int line;     /* the line of the last memory error, which carries none */
    bool expired; /* this call ran over its instruction or time budget */
    bool in_call; /* inside sprig_luabox_call (the call stack may be read) */
    bool rearm;   /* the hook runs at every instruction since a call expired */
    char why[WHY_MAX]; /* "NAME:LINE: ..." of an expired call, raised again and reported */
    size_t nfree; /* small blocks in free */
    void *free[FREE_MAX];
    int64_t deadline; /* CLOCK_MONOTONIC ns this call must end by; 0: none */
    const char *name;
};

/* Notes the line of the innermost running Lua function (reading the call stack only). */
static void note_line(sprig_luabox_t *b)
{
    lua_Debug ar;
    for (int level = 0; level < 4 && lua_getstack(b->L, level, &ar) != 0; level++) {
        if (lua_getinfo(b->L, "l", &ar) != 0 && ar.currentline > 0) {
            b->line = ar.currentline;
            return;
        }
    }
}

/* Small blocks (tables, closures, short strings: most of what a handler makes and drops)
 * come from a free list of SMALL-byte blocks, so a call that creates and drops a table
 * costs no trip through malloc. Every block of at most SMALL bytes is SMALL bytes. */
static void *small_get(sprig_luabox_t *b)
{
    if (b->nfree > 0) {
        return b->free[--b->nfree];
    }
    return malloc(SMALL);
}

static void small_put(sprig_luabox_t *b, void *p)
{
    if (b->nfree < FREE_MAX) {
        b->free[b->nfree++] = p;
    }
    else {
        free(p);
    }
}

static void count_work(sprig_luabox_t *b, size_t units);
static void hook(lua_State *L, lua_Debug *ar);

static void *box_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sprig_luabox_t *b = ud;
    size_t old = ptr != NULL ? osize : 0;
    if (nsize == 0) {
        b->mem -= old;
        if (ptr != NULL && old <= SMALL) {
            small_put(b, ptr);
        }
        else {
            free(ptr);
        }
        return NULL;
    }
    if (nsize > old && b->mem + (nsize - old) > b->o.mem_max) {
        if (b->in_call) {
            note_line(b); /* a memory error carries no position of its own */
            /* Lua answers a failed allocation with a full collection, whose work grows
             * with what the state holds. */
            count_work(b, b->mem >> 6);
        }
        return NULL; /* Lua raises "not enough memory" */
    }
    if (nsize > old && b->in_call) {
        count_work(b, (nsize - old) >> 4);
    }
    void *p;
    if (ptr != NULL && old <= SMALL && nsize <= SMALL) {
        p = ptr; /* stays in its block */
    }
    else if (nsize <= SMALL) {
        if ((p = small_get(b)) != NULL && ptr != NULL) {
            memcpy(p, ptr, nsize);
            free(ptr);
        }
    }
    else if (ptr != NULL && old <= SMALL) {
        if ((p = malloc(nsize)) != NULL) {
            memcpy(p, ptr, old);
            small_put(b, ptr);
        }
    }
    else {
        p = realloc(ptr, nsize);
    }
    if (p != NULL) {
        b->mem = b->mem - old + nsize;
    }
    return p;
}

static sprig_luabox_t *box_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

void *sprig_luabox_user(lua_State *L)
{
    return box_of(L)->o.user;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Adds work and checks the budgets every CHECK_EVERY units: true when this call is over its
 * instruction or time budget. The clock is first read at the first check, not at every
 * call: a call this short needs no time budget, and the budget starts at most
 * CHECK_EVERY units late. */
static bool over_budget(sprig_luabox_t *b, size_t units, bool *slow)
{
    b->work = units > SIZE_MAX - b->work ? SIZE_MAX : b->work + units;
    *slow = false;
    if (b->work < b->next_check) {
        return false;
    }
    b->next_check = b->work > SIZE_MAX - CHECK_EVERY ? SIZE_MAX : b->work + CHECK_EVERY;
    if (b->work > (size_t)b->o.insn_max) {
        return true;
    }
    if (b->o.time_max_ms == 0) {
        return false;
    }
    int64_t now = mono_ns();
    if (b->deadline == 0) {
        b->deadline = now + (int64_t)b->o.time_max_ms * 1000000;
        return false;
    }
    return *slow = now > b->deadline;
}

/* The line of the Lua function `level` levels up the stack of L, or 0. */
static int line_at(lua_State *L, int level)
{
    lua_Debug ar;
    for (; level < 8 && lua_getstack(L, level, &ar) != 0; level++) {
        if (lua_getinfo(L, "l", &ar) != 0 && ar.currentline > 0) {
            return ar.currentline;
        }
    }
    return 0;
}

/* Marks the call expired with its reason. From here on the hook runs at every instruction
 * of L (and of the main thread) and raises, and C functions that count raise: nothing the
 * script catches lets it go on. */
static void expire(sprig_luabox_t *b, lua_State *L, bool slow, const char *what)
{
    int line = line_at(L, 0);
    if (what != NULL && slow) {
        snprintf(b->why, sizeof(b->why), "%s:%d: %s (over %u ms)", b->name, line, what,
                 b->o.time_max_ms);
    }
    else if (what != NULL) {
        snprintf(b->why, sizeof(b->why), "%s:%d: %s (over budget)", b->name, line, what);
    }
    else if (slow) {
        snprintf(b->why, sizeof(b->why), "%s:%d: runs too long (over %u ms)", b->name, line,
                 b->o.time_max_ms);
    }
    else {
        snprintf(b->why, sizeof(b->why), "%s:%d: runs too long (over %ld million instructions)",
                 b->name, line, b->o.insn_max / 1000000);
    }
    b->expired = true;
    lua_sethook(L, hook, LUA_MASKCOUNT, 1);
    if (L != b->L) {
        lua_sethook(b->L, hook, LUA_MASKCOUNT, 1);
    }
}

/* Allocation counts too (a big string made by one instruction is work the count hook
 * does not see). Lua may not raise here, so an allocation that spends the budget still
 * succeeds: the next instruction raises. (Failing it would make Lua run a full collection
 * for every allocation after, each as long as the heap.) */
static void count_work(sprig_luabox_t *b, size_t units)
{
    bool slow;
    if (!b->expired && over_budget(b, units, &slow)) {
        expire(b, b->L, slow, NULL);
    }
}

/* The count hook: adds HOOK_EVERY instructions and checks the budgets; once one is spent
 * it runs at every instruction and raises each time, so no pcall of the script can keep
 * it going. It raises from inside a hook, where Lua runs no further hook: the sandbox's
 * xpcall runs no message handler then (luabox_lib.c), and no finalizer of the script
 * exists (setmetatable refuses __gc), so nothing runs unbounded after it. */
static void hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    sprig_luabox_t *b = box_of(L);
    if (!b->in_call) {
        return; /* Lua run by the embedder itself, outside any budgeted call */
    }
    if (!b->expired) {
        if (lua_gethookcount(L) == 1) {
            /* A coroutine made while a call had expired inherited its every-instruction
             * hook; this call has not expired. */
            lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
            return;
        }
        bool slow;
        if (!over_budget(b, HOOK_EVERY, &slow)) {
            return;
        }
        expire(b, L, slow, NULL);
    }
    else if (lua_gethookcount(L) != 1) {
        lua_sethook(L, hook, LUA_MASKCOUNT, 1);
    }
    if (L != b->L) {
        /* A coroutine that dies of an error raised here keeps hooks off for good (only a
         * pcall inside it would turn them on again), so closing it later would run its
         * to-be-closed variables unbounded: it is marked, and coroutine.close and
         * coroutine.wrap leave a marked one unclosed (luabox_lib.c). */
        *(unsigned char *)lua_getextraspace(L) = 1;
    }
    lua_pushstring(L, b->why);
    lua_error(L);
}

bool luabox__stopped_thread(lua_State *co)
{
    return *(unsigned char *)lua_getextraspace(co) != 0;
}

size_t luabox__mem_left(lua_State *L)
{
    sprig_luabox_t *b = box_of(L);
    return b->mem < b->o.mem_max ? b->o.mem_max - b->mem : 0;
}

bool luabox__expired(lua_State *L)
{
    sprig_luabox_t *b = box_of(L);
    return b->in_call && b->expired;
}

void luabox__charge(lua_State *L, size_t units, const char *what)
{
    sprig_luabox_t *b = box_of(L);
    if (!b->in_call) {
        return;
    }
    bool slow = false;
    if (!b->expired) {
        if (!over_budget(b, units, &slow)) {
            return;
        }
        expire(b, L, slow, what);
    }
    lua_pushstring(L, b->why);
    lua_error(L);
}

/* Makes any error value a message: strings and numbers as they are, else its type. */
static int msgh(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_pushstring(L, lua_tostring(L, 1));
    }
    else if (lua_type(L, 1) != LUA_TSTRING) {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    return 1;
}

int sprig_luabox_open(const sprig_luabox_opts_t *opts, sprig_luabox_t **out)
{
    sprig_luabox_t *b = sprig_calloc(1, sizeof(*b));
    *out = NULL;
    if (b == NULL) {
        return -ENOMEM;
    }
    if (opts != NULL) {
        b->o = *opts;
    }
    b->o.mem_max = b->o.mem_max != 0 ? b->o.mem_max : 32u << 20;
    b->o.insn_max = b->o.insn_max > 0 ? b->o.insn_max : 20000000L;
    b->name = "?";
    b->L = lua_newstate(box_alloc, b);
    if (b->L == NULL) {
        sprig_free(b);
        return -ENOMEM;
    }
    lua_State *L = b->L;
    memset(lua_getextraspace(L), 0, LUA_EXTRASPACE); /* copied into every new thread */
    /* Generational collection: a rule makes short-lived tables (one per event) that die
     * young, which is what it is for. */
    lua_gc(L, LUA_GCGEN, 0, 0);
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},
        {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},
        {LUA_COLIBNAME, luaopen_coroutine},
        {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func != NULL; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    /* print writes to the daemon's stdout (the --json stream), a blocking write of any
     * size: rules have log(). */
    static const char *const unsafe[] = {"dofile",         "loadfile", "load", "require",
                                         "collectgarbage", "print",    NULL};
    for (const char *const *u = unsafe; *u != NULL; u++) {
        lua_pushnil(L);
        lua_setglobal(L, *u);
    }
    luabox__guard_libs(L);
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    if (b->o.os_time) {
        /* Only the clock of os: a fresh table, never the library itself. */
        luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
        lua_createtable(L, 0, 3);
        static const char *const keep[] = {"time", "clock", "date"};
        for (int i = 0; i < 3; i++) {
            lua_getfield(L, -2, keep[i]);
            lua_setfield(L, -2, keep[i]);
        }
        lua_setglobal(L, LUA_OSLIBNAME);
        lua_pop(L, 1);
    }
    /* The count hook stays set for the state's life (a call only resets the counts), and
     * the message handler stays at the bottom of the stack. */
    lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_pushcfunction(L, msgh);
    *out = b;
    return 0;
}

void sprig_luabox_close(sprig_luabox_t *b)
{
    if (b == NULL) {
        return;
    }
    lua_close(b->L);
    while (b->nfree > 0) {
        free(b->free[--b->nfree]);
    }
    sprig_free(b);
}

lua_State *sprig_luabox_state(sprig_luabox_t *b)
{
    return b->L;
}

size_t sprig_luabox_mem(const sprig_luabox_t *b)
{
    return b->mem;
}

int sprig_luabox_load(sprig_luabox_t *b, const char *name, const char *text, size_t len,
                      sprig_error_t *err)
{
    char chunk[512];
    snprintf(chunk, sizeof(chunk), "=%s", name);
    b->name = name;
    int rc = luaL_loadbufferx(b->L, text, len, chunk, "t");
    if (rc != LUA_OK) {
        sprig_error_set(err, rc == LUA_ERRMEM ? -ENOMEM : -EINVAL, "%s",
                        lua_tostring(b->L, -1) != NULL ? lua_tostring(b->L, -1) : "error");
        lua_pop(b->L, 1);
        return rc == LUA_ERRMEM ? -ENOMEM : -EINVAL;
    }
    return 0;
}

int sprig_luabox_call(sprig_luabox_t *b, int nargs, int nresults, sprig_error_t *err)
{
    lua_State *L = b->L;
    int fn = lua_gettop(L) - nargs; /* the function's index */
    /* The message handler waits at the bottom of the stack (pushed at open); should the
     * embedder have cleared the stack, it goes in below the function for this call. */
    int base = 1;
    bool inserted = fn <= 1 || lua_tocfunction(L, 1) != msgh;
    if (inserted) {
        lua_pushcfunction(L, msgh);
        lua_insert(L, fn);
        base = fn++;
    }
    b->work = 0;
    b->next_check = CHECK_EVERY;
    b->line = 0;
    b->expired = false;
    b->why[0] = '\0';
    b->deadline = 0;
    if (b->rearm) {
        lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY); /* back from every instruction */
        b->rearm = false;
    }
    b->in_call = true;
    int rc = lua_pcall(L, nargs, nresults, base);
    b->in_call = false;
    b->rearm = b->expired;
    if (rc == LUA_OK) {
        if (inserted) {
            lua_remove(L, base);
        }
        return 0;
    }
    const char *msg = lua_tostring(L, -1);
    /* A memory error that ends the call is the reason (its collections may also have
     * spent the budget); otherwise, whatever the script made of an expired budget (caught,
     * rethrown), the reason is the budget's. */
    int code = rc == LUA_ERRMEM ? -ENOMEM : b->expired ? -ETIMEDOUT : -EINVAL;
    if (code == -ETIMEDOUT) {
        sprig_error_set(err, code, "%s", b->why);
    }
    else if (rc == LUA_ERRMEM) {
        char at[16] = "";
        if (b->line > 0) {
            snprintf(at, sizeof(at), ":%d", b->line);
        }
        sprig_error_set(err, code, "%s%s: not enough memory (over %zu MiB)", b->name, at,
                        b->o.mem_max >> 20);
    }
    else {
        sprig_error_set(err, code, "%s", msg != NULL ? msg : "error");
    }
    lua_settop(L, fn - 1 - (inserted ? 1 : 0));
    return code;
}
