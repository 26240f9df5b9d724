/* The Lua API a rule sees (scripts/README.md, "The rule API"), the rule library loaded
 * before every script, and the serializer of the `state` table. Every binding runs inside
 * a protected call of the rule's box: misuse raises with the function and the value named;
 * nothing malloc'd is held across a call that may raise. */
#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luabox_internal.h"
#include "rules_internal.h"
#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/util.h"

/* The rule library (scripts/lib/rules.lua), embedded at build time. */
extern const char sprig_rules_library[];
extern const size_t sprig_rules_library_len;

#define WHERE_MAX 16
#define MS_MAX (366LL * 24 * 3600 * 1000)

static rule_box_t *rb_of(lua_State *L)
{
    return sprig_luabox_user(L);
}

static sprig_core_t *core_of(lua_State *L)
{
    return rb_of(L)->rule->eng->core;
}

static const char *rid(lua_State *L)
{
    return sprig_node_id(rb_of(L)->rule->node);
}

/* A string argument that must be a node id or point type: [-0, +0, v] */
static const char *check_id(lua_State *L, int arg, const char *fn, const char *what)
{
    if (lua_type(L, arg) != LUA_TSTRING) {
        return luaL_error(L, "%s: %s must be a string (got %s)", fn, what, luaL_typename(L, arg)),
               NULL;
    }
    const char *s = lua_tostring(L, arg);
    if (!sprig_id_valid(s)) {
        luaL_error(L, "%s: %s \"%s\" is not 1-64 bytes of [A-Za-z0-9._:-]", fn, what, s);
    }
    return s;
}

static const char *opt_id(lua_State *L, int arg, const char *fn, const char *what)
{
    return lua_isnoneornil(L, arg) ? NULL : check_id(L, arg, fn, what);
}

static sprig_node_t *node_arg(lua_State *L, int arg, const char *fn)
{
    return sprig_tree_node(sprig_core_tree(core_of(L)), check_id(L, arg, fn, "the node id"));
}

/* --- subscriptions and timers ------------------------------------------------------- */

/* on(filter, fn) -> handle  [-2, +1, e] */
static int l_on(lua_State *L)
{
    static const char *const fields[] = {"node", "type", "point", "key"};
    const char *val[4] = {NULL, NULL, NULL, NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        int k = -1;
        for (int i = 0; i < 4 && lua_type(L, -2) == LUA_TSTRING; i++) {
            if (strcmp(lua_tostring(L, -2), fields[i]) == 0) {
                k = i;
            }
        }
        if (k < 0) {
            lua_pushvalue(L, -2);
            return luaL_error(L, "on: unknown filter field %s (use node, type, point, key)",
                              luaL_tolstring(L, -1, NULL));
        }
        lua_pop(L, 1);
    }
    int any = 0;
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, 1, fields[i]);
        char what[32];
        snprintf(what, sizeof(what), "filter.%s", fields[i]);
        val[i] = opt_id(L, -1, "on", what);
        any |= val[i] != NULL;
        lua_pop(L, 1); /* the filter table keeps the string alive */
    }
    if (!any) {
        return luaL_error(L, "on: the filter needs at least one of node, type, point, key");
    }
    lua_pushvalue(L, 2);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    rule_box_t *rb = rb_of(L);
    rule_hook_t *h = rules__hook_add(rb);
    if (h == NULL) {
        return luaL_error(L, "on: out of memory");
    }
    h->fnref = ref;
    char **dst[4] = {&h->node, &h->ntype, &h->ptype, &h->key};
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, 1, fields[i]);
        if (val[i] != NULL && (*dst[i] = sprig_strdup(lua_tostring(L, -1))) == NULL) {
            h->dead = true;
            return luaL_error(L, "on: out of memory");
        }
        lua_pop(L, 1);
    }
    rb->rule->eng->index_dirty = true;
    lua_pushinteger(L, h->handle);
    return 1;
}

static rule_hook_t *add_timer(lua_State *L, int fn_arg, int64_t due, int64_t period)
{
    luaL_checktype(L, fn_arg, LUA_TFUNCTION);
    lua_pushvalue(L, fn_arg);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    rule_hook_t *h = rules__hook_add(rb_of(L));
    if (h == NULL) {
        luaL_error(L, "out of memory adding a timer");
        return NULL;
    }
    h->fnref = ref;
    h->timer = true;
    h->due = due;
    h->period = period;
    rules__rearm(rb_of(L)->rule->eng);
    return h;
}

static int64_t check_ms(lua_State *L, const char *fn, long long min)
{
    if (!lua_isnumber(L, 1)) {
        return luaL_error(L, "%s: the time must be a number of milliseconds (got %s)", fn,
                          luaL_typename(L, 1));
    }
    double ms = lua_tonumber(L, 1);
    if (!(ms >= (double)min) || ms > (double)MS_MAX) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s: the time %s ms must be %lld to %lld ms", fn,
                 lua_tostring(L, 1), min, (long long)MS_MAX);
        return luaL_error(L, "%s", msg);
    }
    return (int64_t)(ms * 1e6);
}

/* every(ms, fn) -> handle  [-2, +1, e] */
static int l_every(lua_State *L)
{
    int64_t ns = check_ms(L, "every", 10);
    rule_hook_t *h = add_timer(L, 2, rules__now(rb_of(L)->rule->eng) + ns, ns);
    lua_pushinteger(L, h->handle);
    return 1;
}

/* after(ms, fn) -> handle  [-2, +1, e] */
static int l_after(lua_State *L)
{
    int64_t ns = check_ms(L, "after", 0);
    rule_hook_t *h = add_timer(L, 2, rules__now(rb_of(L)->rule->eng) + ns, 0);
    lua_pushinteger(L, h->handle);
    return 1;
}

static int parse_hhmm(const char *s)
{
    int h, m, sec = 0, n = 0;
    if ((sscanf(s, "%2d:%2d%n", &h, &m, &n) == 2 && s[n] == '\0') ||
        (sscanf(s, "%2d:%2d:%2d%n", &h, &m, &sec, &n) == 3 && s[n] == '\0')) {
        if (h >= 0 && h < 24 && m >= 0 && m < 60 && sec >= 0 && sec < 60 && s[2] == ':') {
            return h * 3600 + m * 60 + sec;
        }
    }
    return -1;
}

/* at(spec, fn) -> handle  [-2, +1, e] */
static int l_at(lua_State *L)
{
    static const char *const names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    unsigned days = 0x7f;
    const char *time;
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_getfield(L, 1, "time");
        time = lua_tostring(L, -1);
        lua_getfield(L, 1, "days");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_istable(L, -1), 1, "at: days must be a list of weekdays");
            days = 0;
            lua_Integer n = luaL_len(L, -1);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, -1, i);
                const char *d = lua_tostring(L, -1);
                int k = 0;
                while (k < 7 && (d == NULL || strcmp(d, names[k]) != 0)) {
                    k++;
                }
                if (k == 7) {
                    return luaL_error(L, "at: day %s is not one of mon tue wed thu fri sat sun",
                                      luaL_tolstring(L, -1, NULL));
                }
                days |= 1u << k;
                lua_pop(L, 1);
            }
            if (days == 0) {
                return luaL_error(L, "at: days is empty; name at least one weekday");
            }
        }
    }
    else {
        time = lua_tostring(L, 1);
    }
    int secs = time != NULL ? parse_hhmm(time) : -1;
    if (secs < 0) {
        return luaL_error(L,
                          "at: the time %s must be \"HH:MM\" or \"HH:MM:SS\" (00:00 to 23:59:59)",
                          time != NULL ? time : "(none)");
    }
    sprig_rules_t *e = rb_of(L)->rule->eng;
    rule_hook_t *h = add_timer(L, 2, rules__at_next(secs, days, rules__now(e)), 0);
    h->at_secs = secs;
    h->days = days;
    rules__rearm(e);
    lua_pushinteger(L, h->handle);
    return 1;
}

/* cancel(handle)  [-1, +0, v] */
static int l_cancel(lua_State *L)
{
    rules__hook_cancel(rb_of(L), (int)luaL_checkinteger(L, 1));
    return 0;
}

/* now() -> seconds  [-0, +1, -] */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, (double)rules__now(rb_of(L)->rule->eng) / 1e9);
    return 1;
}

/* --- reading ------------------------------------------------------------------------ */

/* get(node, type [, key]) -> value, text, time | nil  [-3, +3, v] */
static int l_get(lua_State *L)
{
    sprig_node_t *n = node_arg(L, 1, "get");
    const char *type = check_id(L, 2, "get", "the point type");
    const char *key = opt_id(L, 3, "get", "the key");
    const sprig_point_t *p =
        n != NULL ? sprig_tree_point(sprig_core_tree(core_of(L)), n, type, key) : NULL;
    if (p == NULL || p->tombstone) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, p->value);
    lua_pushstring(L, p->text);
    lua_pushnumber(L, (double)p->time / 1e9);
    return 3;
}

/* nodetype(node) -> type | nil  [-1, +1, v] */
static int l_nodetype(lua_State *L)
{
    sprig_node_t *n = node_arg(L, 1, "nodetype");
    if (n == NULL) {
        lua_pushnil(L);
    }
    else {
        lua_pushstring(L, sprig_node_type(n));
    }
    return 1;
}

/* children(node [, type]) -> {ids}  [-2, +1, m] */
static int l_children(lua_State *L)
{
    sprig_node_t *n = node_arg(L, 1, "children");
    const char *type = opt_id(L, 2, "children", "the node type");
    /* The tree lists the newest child first: number them from the end. */
    lua_Integer count = 0;
    size_t visited = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            /* The walk is C: it counts against the rule's budget like instructions. */
            luabox__charge(L, visited * 2, "children: too much work");
            lua_createtable(L, (int)count, 0);
        }
        for (sprig_edge_t *e = n != NULL ? sprig_node_children(n) : NULL; e != NULL;
             e = sprig_edge_next_child(e)) {
            sprig_node_t *c = sprig_edge_down(e);
            visited++;
            if (sprig_edge_tombstone(e) ||
                (type != NULL && strcmp(type, sprig_node_type(c)) != 0)) {
                continue;
            }
            if (pass == 0) {
                count++;
            }
            else {
                lua_pushstring(L, sprig_node_id(c));
                lua_rawseti(L, -2, count--);
            }
        }
    }
    return 1;
}

/* parent(node) -> id | nil  [-1, +1, v] */
static int l_parent(lua_State *L)
{
    sprig_node_t *n = node_arg(L, 1, "parent");
    sprig_edge_t *e = n != NULL ? sprig_node_live_parent(n) : NULL;
    if (e != NULL) {
        lua_pushstring(L, sprig_node_id(sprig_edge_up(e)));
    }
    else {
        lua_pushnil(L);
    }
    return 1;
}

typedef struct find_ctx {
    lua_State *L;
    sprig_tree_t *tree;
    const char *type;
    size_t n;
    struct {
        const char *ptype, *text;
        double value;
    } w[WHERE_MAX];
    lua_Integer found;
} find_ctx_t;

static int find_one(sprig_node_t *n, void *arg)
{
    find_ctx_t *f = arg;
    if (strcmp(sprig_node_type(n), f->type) != 0 || !sprig_node_live(f->tree, n)) {
        return 0;
    }
    for (size_t i = 0; i < f->n; i++) {
        const sprig_point_t *p = sprig_tree_point(f->tree, n, f->w[i].ptype, "0");
        if (p == NULL || p->tombstone ||
            (f->w[i].text != NULL ? strcmp(p->text, f->w[i].text) != 0
                                  : p->value != f->w[i].value)) {
            return 0;
        }
    }
    lua_pushstring(f->L, sprig_node_id(n));
    lua_rawseti(f->L, -2, ++f->found);
    return 0;
}

/* find(type [, where]) -> {ids}  [-2, +1, v] */
static int l_find(lua_State *L)
{
    find_ctx_t f = {.L = L, .tree = sprig_core_tree(core_of(L))};
    f.type = check_id(L, 1, "find", "the node type");
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 2) != 0) {
            if (f.n == WHERE_MAX) {
                return luaL_error(L, "find: where holds more than %d conditions", WHERE_MAX);
            }
            f.w[f.n].ptype = check_id(L, -2, "find", "a point type in where");
            switch (lua_type(L, -1)) {
            case LUA_TNUMBER:
                f.w[f.n].value = lua_tonumber(L, -1);
                break;
            case LUA_TBOOLEAN:
                f.w[f.n].value = lua_toboolean(L, -1);
                break;
            case LUA_TSTRING:
                f.w[f.n].text = lua_tostring(L, -1); /* kept alive by the where table */
                break;
            default:
                return luaL_error(L, "find: where.%s must be a number, boolean or string (got %s)",
                                  f.w[f.n].ptype, luaL_typename(L, -1));
            }
            f.n++;
            lua_pop(L, 1);
        }
    }
    /* Every node of the tree is looked at, in C: charged against the rule's budget. */
    luabox__charge(L, sprig_tree_node_count(f.tree) * (4 + 2 * (size_t)f.n), "find: too much work");
    lua_newtable(L);
    sprig_tree_each_node(f.tree, find_one, &f);
    return 1;
}

/* --- writing ------------------------------------------------------------------------ */

/* Reads a value argument as set() takes it into p; returns false for nil (delete). */
static bool value_arg(lua_State *L, int arg, const char *fn, sprig_point_t *p)
{
    size_t len;
    switch (lua_type(L, arg)) {
    case LUA_TNONE:
    case LUA_TNIL:
        p->tombstone = 1;
        return false;
    case LUA_TBOOLEAN:
        p->value = lua_toboolean(L, arg);
        return true;
    case LUA_TNUMBER:
        p->value = lua_tonumber(L, arg);
        return true;
    case LUA_TSTRING:
        p->text = lua_tolstring(L, arg, &len);
        if (strlen(p->text) != len) {
            luaL_error(L, "%s: the text holds a NUL byte", fn);
        }
        return true;
    default:
        luaL_error(L, "%s: the value must be a number, boolean, string or nil (got %s)", fn,
                   luaL_typename(L, arg));
        return false;
    }
}

/* Writes p to node as the rule unless the node already holds the same. */
static void write_point(lua_State *L, const char *fn, const char *node, sprig_point_t *p)
{
    sprig_core_t *c = core_of(L);
    sprig_node_t *n = sprig_tree_node(sprig_core_tree(c), node);
    const sprig_point_t *cur =
        n != NULL ? sprig_tree_point(sprig_core_tree(c), n, p->type, p->key) : NULL;
    const char *text = p->text != NULL ? p->text : "";
    if (cur != NULL && (p->tombstone ? cur->tombstone != 0
                                     : !cur->tombstone && cur->value == p->value &&
                                           strcmp(cur->text, text) == 0)) {
        return;
    }
    if (cur == NULL && p->tombstone) {
        return;
    }
    sprig_error_t err;
    p->origin = rid(L);
    if (sprig_core_write(c, node, p, 1, NULL, &err) != 0) {
        luaL_error(L, "%s: %s", fn, err.msg);
    }
}

/* set(node, type, value [, key])  [-4, +0, e] */
static int l_set(lua_State *L)
{
    const char *node = check_id(L, 1, "set", "the node id");
    sprig_point_t p = {.type = check_id(L, 2, "set", "the point type")};
    p.key = opt_id(L, 4, "set", "the key");
    value_arg(L, 3, "set", &p);
    write_point(L, "set", node, &p);
    return 0;
}

/* active(on)  [-1, +0, e] */
static int l_active(lua_State *L)
{
    luaL_checkany(L, 1);
    sprig_point_t p = {.type = "active", .value = lua_toboolean(L, 1)};
    write_point(L, "active", rid(L), &p);
    return 0;
}

/* notify(text [, opts]) -> id  [-2, +1, e] */
static int l_notify(lua_State *L)
{
    rule_t *r = rb_of(L)->rule;
    const char *text = luaL_checkstring(L, 1);
    const char *severity = "info", *subject = NULL;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "severity");
        severity = lua_isnil(L, -1) ? severity : luaL_checkstring(L, -1);
        lua_getfield(L, 2, "subject");
        subject = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    }
    int64_t now = rules__now(r->eng);
    if (now - r->notify_since >= 60 * (int64_t)1000000000) {
        r->notify_since = now;
        r->notify_count = 0;
    }
    if (r->notify_count >= RULE_NOTIFY_MAX) {
        return luaL_error(L, "notify: more than %d notifications in a minute; \"%s\" is dropped",
                          RULE_NOTIFY_MAX, text);
    }
    sprig_core_t *c = core_of(L);
    sprig_edge_t *pe = sprig_node_live_parent(r->node);
    const char *parent = pe != NULL ? sprig_node_id(sprig_edge_up(pe)) : sprig_core_root_id(c);
    sprig_point_t pts[4] = {
        {.type = "message", .text = text},
        {.type = "source", .text = rid(L)},
        {.type = "severity", .text = severity},
        {.type = "subject", .text = subject},
    };
    char id[SPRIG_ID_MAX + 1];
    sprig_error_t err;
    if (sprig_core_create(c, NULL, "notification", parent, pts, subject != NULL ? 4 : 3, rid(L), id,
                          &err) != 0) {
        return luaL_error(L, "notify: %s", err.msg);
    }
    r->notify_count++;
    lua_pushstring(L, id);
    return 1;
}

/* log(fmt, ...) and warn(fmt, ...): upvalue 1 is string.format, 2 the level  [-n, +0, e] */
static int l_log(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, 1);
    rules__log(rb_of(L)->rule, (int)lua_tointeger(L, lua_upvalueindex(2)), lua_tostring(L, -1));
    return 0;
}

/* --- events, state ------------------------------------------------------------------ */

static const char *const ev_names[] = {"node", "type", "point",  "key",     "value",
                                       "text", "time", "origin", "deleted", NULL};

/* Pushes field i of f. */
static void push_field(lua_State *L, const ev_fields_t *f, int i)
{
    switch (i) {
    case 0:
        lua_pushstring(L, f->node);
        break;
    case 1:
        lua_pushstring(L, f->ntype);
        break;
    case 2:
        lua_pushstring(L, f->ptype);
        break;
    case 3:
        lua_pushstring(L, f->key);
        break;
    case 4:
        lua_pushnumber(L, f->value);
        break;
    case 5:
        lua_pushstring(L, f->text);
        break;
    case 6:
        lua_pushnumber(L, (double)f->time / 1e9);
        break;
    case 7:
        lua_pushstring(L, f->origin);
        break;
    default:
        lua_pushboolean(L, f->tombstone);
        break;
    }
}

/* The current event of the box, or a raise naming the field when ev outlived its call. */
static const ev_fields_t *live_event(lua_State *L, const char *field)
{
    rule_box_t *rb = rb_of(L);
    if (rb->ev == NULL || lua_touserdata(L, 1) != rb->ev_table) {
        luaL_error(L,
                   "ev.%s is only readable while its handler runs; keep the fields you need "
                   "(local v = ev.value) or a copy (state.last = ev:copy())",
                   field);
    }
    return rb->ev;
}

/* Pushes a plain table of every field of the event at 1.  [-0, +1, e] */
static void push_copy(lua_State *L)
{
    const ev_fields_t *f = live_event(L, "copy");
    lua_createtable(L, 0, 9);
    for (int i = 0; ev_names[i] != NULL; i++) {
        push_field(L, f, i);
        lua_setfield(L, -2, ev_names[i]);
    }
}

/* ev:copy() -> a plain table of the event's fields, to keep.  [-1, +1, e] */
static int l_ev_copy(lua_State *L)
{
    push_copy(L);
    return 1;
}

/* __index of an event (a light userdata): reads the field from the event being handled,
 * so every field reads the same way, and fails the same way once the handler has
 * returned. The keys are told apart by the address of their interned
 * string (the upvalues 1-9 keep them alive).  [-2, +1, e] */
static int l_ev_index(lua_State *L)
{
    const void *k = lua_topointer(L, 2);
    const rule_box_t *rb = rb_of(L);
    for (int i = 0; ev_names[i] != NULL; i++) {
        if (k == rb->ev_keys[i]) {
            push_field(L, live_event(L, ev_names[i]), i);
            return 1;
        }
    }
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "copy") == 0) {
        lua_pushcfunction(L, l_ev_copy);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

/* __pairs of an event table: the fields of a copy.  [-1, +3, e] */
static int l_ev_pairs(lua_State *L)
{
    lua_getglobal(L, "next");
    push_copy(L);
    lua_pushnil(L);
    return 3;
}

void rules__push_event(rule_box_t *rb, const ev_fields_t *f)
{
    /* A light userdata holding a number that no earlier event had: nothing to allocate,
     * and a kept ev is told apart from the current one. */
    static uintptr_t seq;
    seq = seq + 1 != 0 ? seq + 1 : 1;
    rb->ev = f;
    rb->ev_table = (const void *)seq;
    lua_pushlightuserdata(sprig_luabox_state(rb->box), (void *)seq);
}

/* --- opening ------------------------------------------------------------------------ */

/* Makes os.time() and os.date() read the rule clock (simulated in offline tests), and
 * turns the use of what the sandbox leaves out into an error that says so, rather than
 * "attempt to index a nil value". */
static const char prelude[] =
    "local time, date, now, floor, error = os.time, os.date, now, math.floor, error\n"
    "os.time = function(t) if t == nil then return floor(now()) end return time(t) end\n"
    "os.date = function(f, t) return date(f, t or floor(now())) end\n"
    "local absent = {io = 'no files', debug = 'no debug hooks', package = 'no modules',\n"
    "  require = 'no modules', dofile = 'no files', loadfile = 'no files',\n"
    "  collectgarbage = 'the memory budget manages it', print = 'use log(...)'}\n"
    "setmetatable(_G, {__index = function(_, k)\n"
    "  if absent[k] then error(k .. ' is not available in a rule (' .. absent[k] .. ')', 2) end\n"
    "end})\n"
    "setmetatable(os, {__index = function(_, k)\n"
    "  error('os.' .. tostring(k) .. ' is not available in a rule (only os.time, os.clock, '\n"
    "    .. 'os.date)', 2)\n"
    "end})\n";

/* load(text [, name [, mode [, env]]]) -> function | nil, message: source text only.
 * [-4, +1|2, m] */
static int l_load(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strchr(mode, 'b') != NULL || (len > 0 && s[0] == LUA_SIGNATURE[0])) {
        lua_pushnil(L);
        lua_pushstring(L, "load: bytecode (a binary chunk) is refused in a rule; only source "
                          "text may be loaded");
        return 2;
    }
    luabox__charge(L, len / 4, "load: too much source");
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (!lua_isnone(L, 4)) {
        lua_pushvalue(L, 4);
        if (lua_setupvalue(L, -2, 1) == NULL) {
            lua_pop(L, 1);
        }
    }
    return 1;
}

int rules__api_open(rule_box_t *rb, sprig_error_t *err)
{
    static const luaL_Reg api[] = {
        {"on", l_on},         {"every", l_every},       {"after", l_after},
        {"at", l_at},         {"cancel", l_cancel},     {"now", l_now},
        {"get", l_get},       {"nodetype", l_nodetype}, {"children", l_children},
        {"parent", l_parent}, {"find", l_find},         {"set", l_set},
        {"active", l_active}, {"notify", l_notify},     {"load", l_load},
        {NULL, NULL},
    };
    lua_State *L = sprig_luabox_state(rb->box);
    lua_pushglobaltable(L);
    luaL_setfuncs(L, api, 0);
    for (int warn = 0; warn < 2; warn++) {
        lua_getglobal(L, "string");
        lua_getfield(L, -1, "format");
        lua_remove(L, -2);
        lua_pushinteger(L, warn);
        lua_pushcclosure(L, l_log, 2);
        lua_setfield(L, -2, warn ? "warn" : "log");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    for (int i = 0; ev_names[i] != NULL; i++) {
        lua_pushstring(L, ev_names[i]); /* short strings: interned, one address each */
        rb->ev_keys[i] = lua_topointer(L, -1);
    }
    lua_pushcclosure(L, l_ev_index, 9);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_ev_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "event");
    lua_setfield(L, -2, "__name");
    /* Events are the only light userdata a rule sees: their one metatable is this. */
    lua_pushlightuserdata(L, NULL);
    lua_insert(L, -2);
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, sprig_node_id(rb->rule->node));
    lua_setfield(L, -2, "id");
    const sprig_point_t *fp =
        sprig_tree_point(sprig_core_tree(rb->rule->eng->core), rb->rule->node, "file", "0");
    lua_pushstring(L, fp != NULL && !fp->tombstone ? fp->text : "");
    lua_setfield(L, -2, "file");
    lua_setglobal(L, "rule");
    lua_newtable(L); /* the library's state, until the rule's own is set */
    lua_setglobal(L, "state");
    int rc = sprig_luabox_load(rb->box, "prelude", prelude, sizeof(prelude) - 1, err);
    if (rc == 0) {
        rc = sprig_luabox_call(rb->box, 0, 0, err);
    }
    if (rc == 0) {
        rc = sprig_luabox_load(rb->box, "lib/rules.lua", sprig_rules_library,
                               sprig_rules_library_len, err);
    }
    if (rc == 0) {
        rc = sprig_luabox_call(rb->box, 0, 0, err);
    }
    return rc;
}
