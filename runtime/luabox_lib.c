/* The sandbox's guards on Lua's own C functions (luabox_internal.h). The count hook only
 * runs between Lua instructions, so a C function that loops over a count or a length
 * the script chose runs as long as it likes unless it counts. Each function here whose
 * work is not O(1) is replaced by a closure that first charges what the call will cost
 * (elements moved, bytes copied or scanned, a unit being about one VM instruction) and
 * then runs the library's own function in the same stack frame, so its argument checks
 * and error positions stay Lua's. A charge the budget cannot pay ends the call there: a
 * count no real use needs (table.move of 2^63 elements) is refused before any work.
 * Pattern matching counts its steps as it goes (luabox_pattern.c).
 *
 * Three guards close the ways Lua runs code with hooks off: the message handler of xpcall
 * when the error is the budget's own (it is raised from inside the hook); finalizers
 * (__gc runs with hooks off, also when the state closes): setmetatable refuses __gc; and
 * the to-be-closed variables of a coroutine that died of the budget's error (it keeps
 * hooks off): coroutine.close and coroutine.wrap leave it unclosed. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "luabox_internal.h"

/* The length of a string argument (numbers convert as the library would), or 0. */
static size_t arg_len(lua_State *L, int i)
{
    size_t len = 0;
    int t = lua_type(L, i);
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        lua_tolstring(L, i, &len);
    }
    return len;
}

/* An integer argument, or def when absent or not an integer (the library then raises). */
static lua_Integer arg_int(lua_State *L, int i, lua_Integer def)
{
    int ok;
    lua_Integer v = lua_tointegerx(L, i, &ok);
    return ok ? v : def;
}

/* Elements from first to last, 0 when none; saturates instead of overflowing. */
static size_t count(lua_Integer first, lua_Integer last)
{
    if (last < first) {
        return 0;
    }
    if (first < 0 && last > INT64_MAX + first) {
        return SIZE_MAX;
    }
    return (size_t)(last - first) + 1;
}

/* The length of a table argument as the library reads it (# with __len), or 0. May call
 * __len, which runs under the budget like any Lua code. */
static lua_Integer table_len(lua_State *L, int i)
{
    if (lua_type(L, i) != LUA_TTABLE) {
        return 0;
    }
    lua_len(L, i);
    lua_Integer n = arg_int(L, -1, 0);
    lua_pop(L, 1);
    return n;
}

/* Bytes of s[i..j] with the string library's rules for negative and absent positions. */
static size_t span(size_t len, lua_Integer i, lua_Integer j)
{
    lua_Integer n = (lua_Integer)len;
    i = i > 0 ? i : i == 0 ? 1 : i < -n ? 1 : n + i + 1;
    j = j > n ? n : j >= 0 ? j : j < -n ? 0 : n + j + 1;
    return count(i, j);
}

static size_t cost_bytes(lua_State *L)
{
    return arg_len(L, 1) / 8;
}

static size_t cost_sub(lua_State *L)
{
    return span(arg_len(L, 1), arg_int(L, 2, 1), arg_int(L, 3, -1)) / 16;
}

static size_t cost_byte(lua_State *L)
{
    lua_Integer i = arg_int(L, 2, 1);
    return span(arg_len(L, 1), i, arg_int(L, 3, i));
}

static size_t cost_nargs(lua_State *L)
{
    return (size_t)lua_gettop(L);
}

/* format, pack: the format, and every string argument copied. */
static size_t cost_format(lua_State *L)
{
    size_t units = arg_len(L, 1);
    for (int i = 2, n = lua_gettop(L); i <= n; i++) {
        if (lua_type(L, i) == LUA_TSTRING) {
            units += arg_len(L, i) / 8;
        }
    }
    return units;
}

/* unpack: the format, and the data when an item reads a length the data gives. */
static size_t cost_unpack(lua_State *L)
{
    size_t flen = arg_len(L, 1);
    const char *fmt = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : "";
    bool scans = strpbrk(fmt, "zsc") != NULL;
    return flen + (scans ? arg_len(L, 2) / 8 : 0);
}

static size_t cost_concat(lua_State *L)
{
    lua_Integer i = arg_int(L, 3, 1);
    lua_Integer j = lua_isnoneornil(L, 4) ? table_len(L, 1) : arg_int(L, 4, 0);
    return count(i, j);
}

static size_t cost_unpack_table(lua_State *L)
{
    lua_Integer i = arg_int(L, 2, 1);
    lua_Integer j = lua_isnoneornil(L, 3) ? table_len(L, 1) : arg_int(L, 3, 0);
    return count(i, j);
}

static size_t cost_insert(lua_State *L)
{
    if (lua_gettop(L) != 3) {
        return 1;
    }
    return count(arg_int(L, 2, 0), table_len(L, 1) + 1);
}

static size_t cost_remove(lua_State *L)
{
    lua_Integer size = table_len(L, 1);
    return count(arg_int(L, 2, size), size + 1);
}

static size_t cost_move(lua_State *L)
{
    return count(arg_int(L, 2, 1), arg_int(L, 3, 0));
}

static size_t cost_sort(lua_State *L)
{
    lua_Integer n = table_len(L, 1);
    return n > 0 ? (size_t)n : 0;
}

static size_t cost_utf8_range(lua_State *L)
{
    return span(arg_len(L, 1), arg_int(L, 2, 1), arg_int(L, 3, -1)) / 4;
}

static size_t cost_tonumber(lua_State *L)
{
    return lua_type(L, 1) == LUA_TSTRING ? arg_len(L, 1) / 8 : 0;
}

typedef struct guard {
    const char *lib; /* NULL: the base library (globals) */
    const char *name;
    size_t (*cost)(lua_State *L);
    const char *what; /* said when the budget cannot pay */
} guard_t;

static const guard_t guards[] = {
    {LUA_STRLIBNAME, "upper", cost_bytes, "string.upper: too much work"},
    {LUA_STRLIBNAME, "lower", cost_bytes, "string.lower: too much work"},
    {LUA_STRLIBNAME, "reverse", cost_bytes, "string.reverse: too much work"},
    {LUA_STRLIBNAME, "sub", cost_sub, "string.sub: too much work"},
    {LUA_STRLIBNAME, "byte", cost_byte, "string.byte: too many bytes"},
    {LUA_STRLIBNAME, "char", cost_nargs, "string.char: too much work"},
    {LUA_STRLIBNAME, "format", cost_format, "string.format: too much work"},
    {LUA_STRLIBNAME, "pack", cost_format, "string.pack: too much work"},
    {LUA_STRLIBNAME, "packsize", cost_bytes, "string.packsize: too much work"},
    {LUA_STRLIBNAME, "unpack", cost_unpack, "string.unpack: too much work"},
    {LUA_TABLIBNAME, "concat", cost_concat, "table.concat: too many elements"},
    {LUA_TABLIBNAME, "unpack", cost_unpack_table, "table.unpack: too many elements"},
    {LUA_TABLIBNAME, "insert", cost_insert, "table.insert: too many elements to shift"},
    {LUA_TABLIBNAME, "remove", cost_remove, "table.remove: too many elements to shift"},
    {LUA_TABLIBNAME, "move", cost_move, "table.move: too many elements"},
    {LUA_TABLIBNAME, "sort", cost_sort, "table.sort: too many elements"},
    {LUA_UTF8LIBNAME, "len", cost_utf8_range, "utf8.len: too much work"},
    {LUA_UTF8LIBNAME, "codepoint", cost_utf8_range, "utf8.codepoint: too much work"},
    {LUA_UTF8LIBNAME, "offset", cost_bytes, "utf8.offset: too much work"},
    {LUA_UTF8LIBNAME, "char", cost_nargs, "utf8.char: too much work"},
    {NULL, "tonumber", cost_tonumber, "tonumber: too much work"},
};

/* The guarded function: upvalue 1 the library's function, 2 the index of its guard. It
 * runs the library's function in this frame (no extra call level), so "bad argument #2
 * to 'rep'" and error positions read as they always did. [-?, +?, e] */
static int guarded(lua_State *L)
{
    const guard_t *g = &guards[lua_tointeger(L, lua_upvalueindex(2))];
    lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
    luabox__charge(L, g->cost(L), g->what);
    return f(L);
}

/* string.rep(s, n [, sep]): the library's loop runs n times even when the result is empty
 * (string.rep("", math.maxinteger) never returns); an empty result is made here, anything
 * else is charged for its copies first. [-3, +1, e] */
static int guarded_rep(lua_State *L)
{
    lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
    int t1 = lua_type(L, 1), t3 = lua_type(L, 3);
    bool text = (t1 == LUA_TSTRING || t1 == LUA_TNUMBER) &&
                (t3 == LUA_TNONE || t3 == LUA_TNIL || t3 == LUA_TSTRING || t3 == LUA_TNUMBER);
    int isint;
    lua_Integer n = lua_tointegerx(L, 2, &isint);
    size_t l = arg_len(L, 1), lsep = arg_len(L, 3);
    if (text && isint && (n <= 0 || l + lsep == 0)) {
        lua_pushliteral(L, "");
        return 1;
    }
    if (isint && n > 0 && l + lsep > 0 && (size_t)n <= luabox__mem_left(L) / (l + lsep)) {
        /* The bytes are charged when the result is allocated; what is left is the loop's
         * count. A result over the memory budget fails there, before any loop. */
        luabox__charge(L, (size_t)n / 16, "string.rep: too many copies");
    }
    return f(L);
}

/* The message handler xpcall installs: upvalue 1 is the script's handler. An error the
 * budget raised comes from inside the count hook, where Lua runs no hook, so the
 * script's handler would run unbounded: it is not called then, and the error goes on as
 * it is. Any other error is handed to it as usual (and it runs under the budget). */
static int guarded_handler(lua_State *L)
{
    if (luabox__expired(L)) {
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int xpcall_done(lua_State *L, int status, lua_KContext base)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)base;
}

/* xpcall(f, msgh, ...) with msgh guarded. [-(n), +?, -] */
static int guarded_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1); /* the first result when f returns */
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* true and f go below f's arguments */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done);
    return xpcall_done(L, status, 2);
}

/* setmetatable(t, mt) without __gc: a finalizer runs with hooks off whenever the
 * collector or the state's close calls it, so it could run forever. [-2, +1, e] */
static int guarded_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) {
            return luaL_error(L, "setmetatable: __gc is not available in a sandboxed script "
                                 "(a finalizer would run outside its budget)");
        }
        lua_pop(L, 1);
    }
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* coroutine.close(co) leaves a coroutine the budget stopped as it is: closing it would
 * run its to-be-closed variables with hooks off. [-1, +1|2, e] */
static int guarded_close(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    if (co != NULL && luabox__stopped_thread(co)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "coroutine was stopped by its budget; it is not closed");
        return 2;
    }
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* The function coroutine.wrap returns: upvalue 1 is the coroutine. Resumes it with the
 * arguments and returns what it yields or returns; an error ends the coroutine (closing
 * its to-be-closed variables unless the budget stopped it) and is raised again here,
 * with this call's position before a string message. [-n, +?, e] */
static int wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int nargs = lua_gettop(L);
    int status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD) {
        return luaL_error(L, "cannot resume dead coroutine");
    }
    if (status == LUA_OK && lua_gettop(co) == 0) {
        return luaL_error(L, "cannot resume dead coroutine");
    }
    if (!lua_checkstack(co, nargs)) {
        return luaL_error(L, "too many arguments to resume");
    }
    lua_xmove(L, co, nargs);
    int nres;
    status = lua_resume(co, L, nargs, &nres);
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            return luaL_error(L, "too many results to resume");
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    if (!luabox__stopped_thread(co)) {
        status = lua_resetthread(co); /* closes its to-be-closed variables, under the budget */
    }
    lua_xmove(co, L, 1);
    if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

/* coroutine.wrap(f) [-1, +1, m] */
static int guarded_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, wrapped, 1);
    return 1;
}

/* Replaces lib.name (the global table when lib is NULL) by fn with upvalues (the
 * original, extra). */
static void replace(lua_State *L, const char *lib, const char *name, lua_CFunction fn,
                    lua_Integer extra)
{
    if (lib != NULL) {
        lua_getglobal(L, lib);
    }
    else {
        lua_pushglobaltable(L);
    }
    lua_getfield(L, -1, name);
    lua_CFunction orig = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    if (orig != NULL) {
        lua_pushcfunction(L, orig);
        lua_pushinteger(L, extra);
        lua_pushcclosure(L, fn, 2);
        lua_setfield(L, -2, name);
    }
    lua_pop(L, 1);
}

void luabox__guard_libs(lua_State *L)
{
    for (size_t i = 0; i < sizeof(guards) / sizeof(guards[0]); i++) {
        replace(L, guards[i].lib, guards[i].name, guarded, (lua_Integer)i);
    }
    replace(L, LUA_STRLIBNAME, "rep", guarded_rep, 0);
    replace(L, NULL, "setmetatable", guarded_setmetatable, 0);
    replace(L, LUA_COLIBNAME, "close", guarded_close, 0);
    lua_getglobal(L, LUA_COLIBNAME);
    lua_pushcfunction(L, guarded_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);
    luabox__open_patterns(L);
    lua_pushcfunction(L, guarded_xpcall);
    lua_setglobal(L, "xpcall");
}
