/* The `state` table of a rule, kept across reloads and restarts (scripts/README.md,
 * "Per-rule state"): serialized as a Lua table constructor of numbers, strings, booleans
 * and tables (no functions, at most 16 deep and 64 KiB), and read back in the rule's own
 * sandbox, under its budgets, with an empty environment: the text is data only. */
#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rules_internal.h"
#include "sprig/alloc.h"
#include "sprig/err.h"

/* The text being built lives in a userdata at a fixed stack slot, so that a raise in the
 * middle (a value that cannot be kept) leaves nothing to free, and the stack may be used
 * freely meanwhile (a luaL_Buffer may not: it expects to stay on top). */
typedef struct dbuf {
    char *p;
    size_t len, cap;
    int slot;
} dbuf_t;

static void add(lua_State *L, dbuf_t *b, const char *s, size_t n)
{
    if (b->len + n > RULE_STATE_MAX) {
        luaL_error(L, "state: over %d bytes serialized; keep less in it", RULE_STATE_MAX);
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
        char *p = lua_newuserdatauv(L, cap, 0);
        memcpy(p, b->p, b->len);
        lua_replace(L, b->slot);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void adds(lua_State *L, dbuf_t *b, const char *s)
{
    add(L, b, s, strlen(s));
}

static void dump_string(lua_State *L, dbuf_t *b, const char *s, size_t len)
{
    add(L, b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, esc[2] = '\0';
        }
        else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof(esc), "\\%03u", c);
        }
        else {
            esc[0] = (char)c, esc[1] = '\0';
        }
        adds(L, b, esc);
    }
    add(L, b, "\"", 1);
}

static void dump_value(lua_State *L, dbuf_t *b, int idx, int depth, const char *path)
{
    char num[64];
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        adds(L, b, lua_toboolean(L, idx) ? "true" : "false");
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            snprintf(num, sizeof(num), LUA_INTEGER_FMT, lua_tointeger(L, idx));
        }
        else {
            double v = lua_tonumber(L, idx);
            if (isnan(v)) {
                snprintf(num, sizeof(num), "(0/0)");
            }
            else if (isinf(v)) {
                snprintf(num, sizeof(num), v > 0 ? "1e999" : "-1e999");
            }
            else {
                snprintf(num, sizeof(num), "%.17g", v);
                if (strpbrk(num, ".en") == NULL) {
                    strcat(num, ".0");
                }
            }
        }
        adds(L, b, num);
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        dump_string(L, b, s, len);
        return;
    }
    case LUA_TTABLE:
        break;
    default:
        luaL_error(L,
                   "%s: a %s cannot be kept in state (only numbers, strings, booleans and "
                   "tables of them)",
                   path, luaL_typename(L, idx));
        return;
    }
    if (depth > 16) {
        luaL_error(L,
                   "%s: tables nested deeper than 16 cannot be kept in state (does a table "
                   "hold itself?)",
                   path);
    }
    luaL_checkstack(L, 4, "state: nested too deep");
    adds(L, b, "{");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        char sub[160];
        int kt = lua_type(L, -2);
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) {
            luaL_error(L, "%s: a key of type %s cannot be kept in state", path,
                       luaL_typename(L, -2));
        }
        if (kt == LUA_TSTRING) {
            snprintf(sub, sizeof(sub), "%s.%.60s", path, lua_tostring(L, -2));
        }
        else {
            lua_pushvalue(L, -2);
            snprintf(sub, sizeof(sub), "%s[%.60s]", path, luaL_tolstring(L, -1, NULL));
            lua_pop(L, 2);
        }
        adds(L, b, "[");
        dump_value(L, b, -2, depth + 1, sub);
        adds(L, b, "]=");
        dump_value(L, b, -1, depth + 1, sub);
        adds(L, b, ",");
        lua_pop(L, 1);
    }
    adds(L, b, "}");
}

/* [-0, +1, e]: the serialized form of the global `state`. Reading the global may run the
 * script's own metamethods of _G: this runs inside a budgeted call for that reason. */
static int dump_protected(lua_State *L)
{
    lua_settop(L, 0);
    lua_getglobal(L, "state");
    if (!lua_istable(L, 1)) {
        return luaL_error(L, "state must be a table (got %s)", luaL_typename(L, 1));
    }
    dbuf_t b = {.cap = 256, .slot = 2};
    b.p = lua_newuserdatauv(L, b.cap, 0);
    dump_value(L, &b, 1, 0, "state");
    lua_pushlstring(L, b.p, b.len);
    return 1;
}

int rules__state_dump(sprig_luabox_t *box, char **out, sprig_error_t *err)
{
    lua_State *L = sprig_luabox_state(box);
    *out = NULL;
    lua_pushcfunction(L, dump_protected);
    int rc = sprig_luabox_call(box, 0, 1, err);
    if (rc != 0) {
        return rc;
    }
    *out = sprig_strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (*out == NULL) {
        return sprig_error_set(err, -ENOMEM, "state: out of memory");
    }
    return 0;
}

int rules__state_load(sprig_luabox_t *box, const char *text, sprig_error_t *err)
{
    lua_State *L = sprig_luabox_state(box);
    if (text[0] == '\0') {
        lua_newtable(L);
        return 0;
    }
    size_t len = strlen(text);
    char *src = sprig_malloc(len + 8);
    if (src == NULL) {
        lua_newtable(L);
        return sprig_error_set(err, -ENOMEM, "state: out of memory");
    }
    memcpy(src, "return ", 7);
    memcpy(src + 7, text, len + 1);
    int rc = sprig_luabox_load(box, "state", src, len + 7, err);
    sprig_free(src);
    if (rc == 0) {
        lua_newtable(L); /* an empty _ENV: the text is data, nothing else */
        lua_setupvalue(L, -2, 1);
        rc = sprig_luabox_call(box, 0, 1, err);
    }
    if (rc == 0 && !lua_istable(L, -1)) {
        lua_pop(L, 1);
        rc = sprig_error_set(err, -EINVAL, "state: the saved text is not a table");
    }
    if (rc != 0) {
        char msg[sizeof(err->msg)];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        sprig_error_set(err, -EINVAL, "the saved state cannot be read (%s); starting empty", msg);
        lua_newtable(L);
        return -EINVAL;
    }
    return 0;
}
