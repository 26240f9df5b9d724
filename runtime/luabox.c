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

#define HOOK_EVERY 10000
#define SMALL 64      /* bytes of a small block */
#define FREE_MAX 512 /* small blocks kept for reuse, at most */

struct sprig_luabox {
    lua_State *L;
    sprig_luabox_opts_t o;
    size_t mem;
    long insns;
    int line;     /* the line last seen by the hook, for errors that carry none */
    bool expired; /* this call ran over its instruction or time budget */
    bool slow;    /* ... and it was the time budget */
    bool in_call; /* inside sprig_luabox_call (the call stack may be read) */
    bool rearm;   /* the hook runs at every instruction since a call expired */
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
        }
        return NULL; /* Lua raises "not enough memory" */
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

/* The count hook: every HOOK_EVERY instructions it notes the running line (for memory
 * errors, which carry none) and checks both budgets; once one is spent it runs at every
 * instruction and raises each time, so no pcall of the script can keep it going. */
static void hook(lua_State *L, lua_Debug *ar)
{
    sprig_luabox_t *b = box_of(L);
    if (!b->in_call) {
        return; /* Lua run by the embedder itself, outside any budgeted call */
    }
    if (!b->expired) {
        b->insns += HOOK_EVERY;
        if (b->deadline == 0 && b->o.time_max_ms != 0) {
            /* The clock is read first here, not at every call: a call this short needs no
             * time budget, and the budget starts at most HOOK_EVERY instructions late. */
            b->deadline = mono_ns() + (int64_t)b->o.time_max_ms * 1000000;
        }
        if (lua_getinfo(L, "l", ar) != 0 && ar->currentline > 0) {
            b->line = ar->currentline;
        }
        bool slow = b->deadline != 0 && b->insns > HOOK_EVERY && mono_ns() > b->deadline;
        if (b->insns <= b->o.insn_max && !slow) {
            return;
        }
        b->expired = true;
        b->slow = slow;
        lua_sethook(L, hook, LUA_MASKCOUNT, 1);
    }
    if (b->slow) {
        lua_pushfstring(L, "%s:%d: runs too long (over %d ms)", b->name, b->line,
                        (int)b->o.time_max_ms);
    }
    else {
        lua_pushfstring(L, "%s:%d: runs too long (over %d million instructions)", b->name, b->line,
                        (int)(b->o.insn_max / 1000000));
    }
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
    static const char *const unsafe[] = {"dofile",  "loadfile",       "load",
                                         "require", "collectgarbage", NULL};
    for (const char *const *u = unsafe; *u != NULL; u++) {
        lua_pushnil(L);
        lua_setglobal(L, *u);
    }
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
    b->insns = 0;
    b->line = 0;
    b->expired = false;
    b->slow = false;
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
    int code = b->expired ? -ETIMEDOUT : rc == LUA_ERRMEM ? -ENOMEM : -EINVAL;
    if (rc == LUA_ERRMEM) {
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
