/* Typed node schemas: the loader and the checks (see schema.h).
 *
 * Each file runs once in a fresh sandbox (luabox.h: safe libraries only, a 32 MiB
 * allocation budget and a 20-million-instruction budget per file). `nodetype "name" { spec }`
 * parses the spec into C at once. A built table has no lines, so an error in it is reported at
 * the line the file's text gives the point or attribute (schema_src.c), else at the nodetype
 * line. When every file has run, types are resolved: extends (known, acyclic), parents
 * (known), inherited points. Errors are "FILE:LINE: message", as many as the files produce. */
#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/luabox.h"
#include "sprig/schema.h"
#include "sprig/util.h"
#include "schema_internal.h"


typedef struct load_ctx {
    sprig_schema_t *s;
    void (*report)(const char *msg, void *arg);
    void *arg;
    int errors;
    const char *file;
    const char *text; /* the file's source, while it runs */
    size_t len;
    schema_src_t *src; /* its tokens, made at the first error that needs a line */
    bool src_tried;
    const char *tname; /* the type being declared, and the line of its nodetype call */
    int tline;
} load_ctx_t;

static int report(load_ctx_t *l, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int report(load_ctx_t *l, const char *file, int line, const char *fmt, ...)
{
    char msg[600];
    int n = snprintf(msg, sizeof(msg), "%s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    l->errors++;
    if (l->report != NULL) {
        l->report(msg, l->arg);
    }
    return -EINVAL;
}

/* --- ownership of the compiled tables ---------------------------------------------- */

static void *keep(sprig_schema_t *s, void *p)
{
    if (p == NULL) {
        return NULL;
    }
    if (s->nblk == s->capblk) {
        size_t cap = s->capblk != 0 ? s->capblk * 2 : 64;
        void **b = sprig_realloc(s->blocks, cap * sizeof(*b));
        if (b == NULL) {
            sprig_free(p);
            return NULL;
        }
        s->blocks = b;
        s->capblk = cap;
    }
    s->blocks[s->nblk++] = p;
    return p;
}

static const char *kstr(sprig_schema_t *s, const char *str)
{
    return str != NULL ? keep(s, sprig_strdup(str)) : NULL;
}

void sprig_schema_free(sprig_schema_t *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nblk; i++) {
        sprig_free(s->blocks[i]);
    }
    sprig_free(s->blocks);
    sprig_free(s->types);
    sprig_free(s);
}

/* --- the sandbox (luabox.c) --------------------------------------------------------- */

/* The line of the Lua code that called the running C function. */
static int caller_line(lua_State *L)
{
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar)) {
        return ar.currentline;
    }
    return 0;
}

static int fail(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(lua_State *L, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return luaL_error(L, "%s", msg); /* luaL_error puts the caller's FILE:LINE: first */
}

/* The line, in the spec of the type being declared, of its attribute attr (point NULL), of
 * its point (attr NULL), or of an attribute of its point; the nodetype line when the text
 * does not show it. */
static int spec_line(load_ctx_t *l, const char *point, const char *attr)
{
    if (!l->src_tried) {
        l->src_tried = true;
        l->src = schema__src_open(l->text, l->len);
    }
    const char *keys[4];
    size_t k = 0;
    if (point != NULL) {
        keys[k++] = "points";
        keys[k++] = point;
    }
    if (attr != NULL) {
        keys[k++] = attr;
    }
    keys[k] = NULL;
    return schema__src_line(l->src, l->tline, l->tname, keys);
}

static int fail_at(lua_State *L, const char *point, const char *attr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Raises "FILE:LINE: message" at the line of the point or attribute (spec_line). */
static int fail_at(lua_State *L, const char *point, const char *attr, const char *fmt, ...)
{
    char msg[512];
    load_ctx_t *l = sprig_luabox_user(L);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lua_pushfstring(L, "%s:%d: %s", l->file, spec_line(l, point, attr), msg);
    return lua_error(L);
}

/* --- parsing a spec ----------------------------------------------------------------- */

static const char *const kind_names[] = {"number", "integer", "bool", "text", "enum", NULL};

/* Reads a list of id strings at the top of the stack, attribute `what` of point (NULL: of
 * the type); NULL-terminated, kept. */
static const char *const *id_list(lua_State *L, sprig_schema_t *s, const char *point,
                                  const char *what)
{
    if (!lua_istable(L, -1)) {
        fail_at(L, point, what, "%s must be a list of names", what);
    }
    lua_Integer n = luaL_len(L, -1);
    if (n < 1 || n > 1000) {
        fail_at(L, point, what, "%s must list 1 to 1000 names", what);
    }
    const char **out = keep(s, sprig_calloc((size_t)n + 1, sizeof(*out)));
    if (out == NULL) {
        fail(L, "out of memory");
    }
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, -1, i);
        const char *v = lua_tostring(L, -1);
        if (lua_type(L, -1) != LUA_TSTRING || !sprig_id_valid(v)) {
            fail_at(L, point, what, "%s[%d] must be a name of 1-64 bytes of [A-Za-z0-9._:-]", what,
                    (int)i);
        }
        out[i - 1] = kstr(s, v);
        lua_pop(L, 1);
    }
    return out;
}

bool schema__in_list(const char *const *list, const char *v)
{
    for (; list != NULL && *list != NULL; list++) {
        if (strcmp(*list, v) == 0) {
            return true;
        }
    }
    return false;
}

/* Parses the point spec at the top of the stack into p. */
static void parse_point(lua_State *L, sprig_schema_t *s, const char *tname, const char *pname,
                        sprig_schema_point_t *p)
{
    static const char *const attrs[] = {"kind",        "min",    "max",   "unit",  "default",
                                        "required",    "owner",  "local", "array", "map",
                                        "description", "values", NULL};
    if (!lua_istable(L, -1)) {
        fail_at(L, pname, NULL, "type %s: point \"%s\" must be a table { kind = ... }", tname,
                pname);
    }
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (k == NULL || !schema__in_list(attrs, k)) {
            fail_at(L, pname, k, "type %s: point \"%s\" has unknown attribute %s%s%s", tname, pname,
                    k != NULL ? "\"" : "", k != NULL ? k : "(not a name)", k != NULL ? "\"" : "");
        }
        lua_pop(L, 1);
    }
    p->name = kstr(s, pname);
    lua_getfield(L, -1, "kind");
    const char *kind = lua_tostring(L, -1);
    int k = 0;
    while (kind != NULL && kind_names[k] != NULL && strcmp(kind, kind_names[k]) != 0) {
        k++;
    }
    if (kind == NULL || lua_type(L, -1) != LUA_TSTRING || kind_names[k] == NULL) {
        fail_at(L, pname, "kind",
                "type %s: point \"%s\" kind %s%s%s is not number, integer, bool, text or enum",
                tname, pname, kind != NULL ? "\"" : "", kind != NULL ? kind : "(missing)",
                kind != NULL ? "\"" : "");
    }
    p->kind = (sprig_kind_t)k;
    lua_pop(L, 1);
    bool numeric = p->kind == SPRIG_KIND_NUMBER || p->kind == SPRIG_KIND_INTEGER;
    const char *bounds[2] = {"min", "max"};
    for (int b = 0; b < 2; b++) {
        lua_getfield(L, -1, bounds[b]);
        if (!lua_isnil(L, -1)) {
            if (!numeric) {
                fail_at(L, pname, bounds[b],
                        "type %s: point \"%s\" has %s, but a %s point has no range", tname, pname,
                        bounds[b], kind_names[k]);
            }
            if (lua_type(L, -1) != LUA_TNUMBER || !isfinite(lua_tonumber(L, -1))) {
                fail_at(L, pname, bounds[b], "type %s: point \"%s\" %s must be a finite number",
                        tname, pname, bounds[b]);
            }
            if (b == 0) {
                p->has_min = true, p->min = lua_tonumber(L, -1);
            }
            else {
                p->has_max = true, p->max = lua_tonumber(L, -1);
            }
        }
        lua_pop(L, 1);
    }
    if (p->has_min && p->has_max && p->min > p->max) {
        fail_at(L, pname, NULL, "type %s: point \"%s\" min %g is above max %g", tname, pname,
                p->min, p->max);
    }
    lua_getfield(L, -1, "values");
    if (!lua_isnil(L, -1)) {
        if (p->kind != SPRIG_KIND_ENUM) {
            fail_at(L, pname, "values",
                    "type %s: point \"%s\" has values, but only an enum point has", tname, pname);
        }
        p->values = id_list(L, s, pname, "values");
    }
    else if (p->kind == SPRIG_KIND_ENUM) {
        fail_at(L, pname, NULL, "type %s: enum point \"%s\" needs values = { ... }", tname, pname);
    }
    lua_pop(L, 1);
    const char *texts[2] = {"unit", "description"};
    for (int i = 0; i < 2; i++) {
        lua_getfield(L, -1, texts[i]);
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) {
            fail_at(L, pname, texts[i], "type %s: point \"%s\" %s must be a string", tname, pname,
                    texts[i]);
        }
        const char *v = kstr(s, lua_tostring(L, -1));
        if (i == 0) {
            p->unit = v;
        }
        else {
            p->description = v;
        }
        lua_pop(L, 1);
    }
    const char *flags[3] = {"required", "local", "array"};
    for (int i = 0; i < 3; i++) {
        lua_getfield(L, -1, flags[i]);
        if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
            fail_at(L, pname, flags[i], "type %s: point \"%s\" %s must be true or false", tname,
                    pname, flags[i]);
        }
        bool v = lua_toboolean(L, -1);
        if (i == 0) {
            p->required = v;
        }
        else if (i == 1) {
            p->local = v;
        }
        else if (v) {
            p->keys = SPRIG_KEYS_ARRAY;
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, -1, "map");
    if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
        if (p->keys == SPRIG_KEYS_ARRAY) {
            fail_at(L, pname, NULL, "type %s: point \"%s\" cannot be both array and map", tname,
                    pname);
        }
        p->keys = SPRIG_KEYS_MAP;
        if (lua_istable(L, -1)) {
            p->map_keys = id_list(L, s, pname, "map");
        }
        else if (!lua_isboolean(L, -1)) {
            fail_at(L, pname, "map", "type %s: point \"%s\" map must be true or a list of keys",
                    tname, pname);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "owner");
    const char *owner = lua_tostring(L, -1);
    if (!lua_isnil(L, -1) && (lua_type(L, -1) != LUA_TSTRING ||
                              (strcmp(owner, "driver") != 0 && strcmp(owner, "any") != 0 &&
                               strcmp(owner, "people") != 0))) {
        fail_at(L, pname, "owner",
                "type %s: point \"%s\" owner must be \"driver\", \"people\" or \"any\"", tname,
                pname);
    }
    p->owner_driver = owner != NULL && strcmp(owner, "driver") == 0;
    p->owner_people = owner != NULL && strcmp(owner, "people") == 0;
    lua_pop(L, 1);
    lua_getfield(L, -1, "default");
    if (!lua_isnil(L, -1)) {
        int lt = lua_type(L, -1);
        p->has_default = true;
        if (p->kind == SPRIG_KIND_TEXT || p->kind == SPRIG_KIND_ENUM) {
            if (lt != LUA_TSTRING) {
                fail_at(L, pname, "default",
                        "type %s: point \"%s\" default must be a string for a %s point", tname,
                        pname, kind_names[k]);
            }
            p->default_text = kstr(s, lua_tostring(L, -1));
            if (p->kind == SPRIG_KIND_ENUM && !schema__in_list(p->values, p->default_text)) {
                fail_at(L, pname, "default",
                        "type %s: point \"%s\" default \"%s\" is not one of its values", tname,
                        pname, p->default_text);
            }
        }
        else if (p->kind == SPRIG_KIND_BOOL) {
            if (lt != LUA_TBOOLEAN) {
                fail_at(L, pname, "default", "type %s: point \"%s\" default must be true or false",
                        tname, pname);
            }
            p->default_value = lua_toboolean(L, -1) ? 1 : 0;
        }
        else {
            double v = lua_tonumber(L, -1);
            if (lt != LUA_TNUMBER || !isfinite(v)) {
                fail_at(L, pname, "default", "type %s: point \"%s\" default must be a number",
                        tname, pname);
            }
            if (p->kind == SPRIG_KIND_INTEGER && v != floor(v)) {
                fail_at(L, pname, "default", "type %s: point \"%s\" default %g is not an integer",
                        tname, pname, v);
            }
            if ((p->has_min && v < p->min) || (p->has_max && v > p->max)) {
                fail_at(L, pname, "default",
                        "type %s: point \"%s\" default %g is outside its range", tname, pname, v);
            }
            p->default_value = v;
        }
    }
    lua_pop(L, 1);
}

static int cmp_points(const void *a, const void *b)
{
    return strcmp(((const sprig_schema_point_t *)a)->name, ((const sprig_schema_point_t *)b)->name);
}

/* The closure `nodetype "name"` returns: parses { spec }. Upvalues: name, line. */
static int declare(lua_State *L)
{
    load_ctx_t *l;
    l = sprig_luabox_user(L);
    sprig_schema_t *s = l->s;
    const char *name = lua_tostring(L, lua_upvalueindex(1));
    int line = (int)lua_tointeger(L, lua_upvalueindex(2));
    l->tname = name;
    l->tline = line;
    static const char *const attrs[] = {"description", "parents", "extends",
                                        "open",        "points",  NULL};
    if (!lua_istable(L, 1)) {
        return fail(L, "nodetype \"%s\" needs a table: nodetype \"%s\" { ... }", name, name);
    }
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->types[i]->t.name, name) == 0) {
            return fail(L, "type %s is declared twice (first at %s:%d)", name, s->types[i]->t.file,
                        s->types[i]->t.line);
        }
    }
    lua_settop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (k == NULL || !schema__in_list(attrs, k)) {
            return fail_at(L, NULL, k, "type %s has unknown attribute %s", name,
                           k != NULL ? k : "(not a name)");
        }
        lua_pop(L, 1);
    }
    type_rec_t *tr = keep(s, sprig_calloc(1, sizeof(*tr)));
    if (tr == NULL) {
        return fail(L, "out of memory");
    }
    tr->t.name = kstr(s, name);
    tr->t.file = kstr(s, l->file);
    tr->t.line = line;
    lua_getfield(L, 1, "description");
    tr->t.description = kstr(s, lua_tostring(L, -1));
    lua_getfield(L, 1, "extends");
    if (!lua_isnil(L, -1) &&
        (lua_type(L, -1) != LUA_TSTRING || !sprig_id_valid(lua_tostring(L, -1)))) {
        return fail_at(L, NULL, "extends", "type %s: extends must be a type name", name);
    }
    tr->t.extends = kstr(s, lua_tostring(L, -1));
    tr->extends_line = tr->t.extends != NULL ? spec_line(l, NULL, "extends") : line;
    lua_getfield(L, 1, "open");
    tr->t.open = lua_toboolean(L, -1);
    lua_settop(L, 1);
    lua_getfield(L, 1, "parents");
    if (!lua_isnil(L, -1)) {
        tr->t.parents = id_list(L, s, NULL, "parents");
        tr->parents_line = spec_line(l, NULL, "parents");
    }
    lua_settop(L, 1);
    lua_getfield(L, 1, "points");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1)) {
            return fail_at(L, NULL, "points",
                           "type %s: points must be a table of name = { kind = ... }", name);
        }
        size_t n = 0;
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            n++;
            lua_pop(L, 1);
        }
        tr->own = keep(s, sprig_calloc(n + 1, sizeof(*tr->own)));
        if (tr->own == NULL) {
            return fail(L, "out of memory");
        }
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            const char *pname = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            if (pname == NULL || !sprig_id_valid(pname)) {
                /* A key that is no string has no line of its own: the points table's. */
                return fail_at(L, pname, pname != NULL ? NULL : "points",
                               "type %s: point name %s is not 1-64 bytes of [A-Za-z0-9._:-]", name,
                               pname != NULL ? pname : "(not a string)");
            }
            sprig_schema_point_t *p = &tr->own[tr->nown++];
            parse_point(L, s, name, pname, p);
            p->declared_in = tr->t.name;
            lua_pop(L, 1);
        }
    }
    /* Lua's tables have no order: keep points by name, so output and the first missing
     * required point named are the same on every run. */
    if (tr->nown > 1) {
        qsort(tr->own, tr->nown, sizeof(*tr->own), cmp_points);
    }
    if (s->n == s->cap) {
        size_t cap = s->cap != 0 ? s->cap * 2 : 32;
        type_rec_t **ts = sprig_realloc(s->types, cap * sizeof(*ts));
        if (ts == NULL) {
            return fail(L, "out of memory");
        }
        s->types = ts;
        s->cap = cap;
    }
    s->types[s->n++] = tr;
    return 0;
}

/* nodetype "name": checks the name and returns the closure that takes the spec. */
static int nodetype(lua_State *L)
{
    const char *name = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
    if (name == NULL || !sprig_id_valid(name)) {
        return fail(L, "nodetype needs a type name of 1-64 bytes of [A-Za-z0-9._:-], got %s",
                    name != NULL ? name : luaL_typename(L, 1));
    }
    lua_pushvalue(L, 1);
    lua_pushinteger(L, caller_line(L));
    lua_pushcclosure(L, declare, 2);
    return 1;
}

/* Runs one file in a fresh sandbox. */
static void run_file(load_ctx_t *l, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        report(l, path, 0, "cannot be read");
        return;
    }
    char *text = sprig_malloc(1 << 20);
    size_t n = text != NULL ? fread(text, 1, 1 << 20, f) : 0;
    bool big = text != NULL && n == (1 << 20);
    fclose(f);
    if (text == NULL || big) {
        report(l, path, 0, text == NULL ? "out of memory" : "is over 1 MiB");
        sprig_free(text);
        return;
    }
    l->file = path;
    l->text = text;
    l->len = n;
    l->src = NULL;
    l->src_tried = false;
    sprig_luabox_t *box = NULL;
    /* A schema file declares types: a second of work is far more than any needs. */
    sprig_luabox_opts_t bo = {.user = l, .time_max_ms = 1000};
    sprig_error_t err;
    if (sprig_luabox_open(&bo, &box) != 0) {
        report(l, path, 0, "out of memory");
        sprig_free(text);
        return;
    }
    lua_State *L = sprig_luabox_state(box);
    lua_pushcfunction(L, nodetype);
    lua_setglobal(L, "nodetype");
    if (sprig_luabox_load(box, path, text, n, &err) != 0 ||
        sprig_luabox_call(box, 0, 0, &err) != 0) {
        /* Messages start "FILE:LINE:" already. */
        l->errors++;
        if (l->report != NULL) {
            l->report(err.msg, l->arg);
        }
    }
    sprig_luabox_close(box);
    schema__src_free(l->src);
    l->src = NULL;
    l->text = NULL;
    sprig_free(text);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every *.lua file of dir in name order. */
static void run_dir(load_ctx_t *l, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        report(l, dir, 0, "schema folder cannot be read");
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0 || e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            char **nn = sprig_realloc(names, cap * sizeof(*nn));
            if (nn == NULL) {
                break;
            }
            names = nn;
        }
        names[n++] = sprig_strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        run_file(l, path);
        sprig_free(names[i]);
    }
    sprig_free(names);
}

/* --- resolving ---------------------------------------------------------------------- */

static type_rec_t *find(const sprig_schema_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->types[i]->t.name, name) == 0) {
            return s->types[i];
        }
    }
    return NULL;
}

/* Gives tr its full point list: its ancestors' points, then its own (which override). */
static int resolve(load_ctx_t *l, type_rec_t *tr)
{
    sprig_schema_t *s = l->s;
    if (tr->resolved == 2) {
        return 0;
    }
    if (tr->resolved == 1) {
        return report(l, tr->t.file, tr->extends_line, "type %s extends itself through %s",
                      tr->t.name, tr->t.extends);
    }
    tr->resolved = 1;
    type_rec_t *base = NULL;
    if (tr->t.extends != NULL) {
        base = find(s, tr->t.extends);
        if (base == NULL) {
            tr->resolved = 2;
            return report(l, tr->t.file, tr->extends_line, "type %s extends unknown type %s",
                          tr->t.name, tr->t.extends);
        }
        if (resolve(l, base) != 0) {
            tr->resolved = 2;
            return -EINVAL;
        }
    }
    size_t nb = base != NULL ? base->t.npoints : 0;
    sprig_schema_point_t *all = keep(s, sprig_calloc(nb + tr->nown + 1, sizeof(*all)));
    if (all == NULL) {
        return -ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < nb; i++) {
        all[n++] = base->t.points[i];
    }
    for (size_t i = 0; i < tr->nown; i++) {
        size_t k = 0;
        while (k < n && strcmp(all[k].name, tr->own[i].name) != 0) {
            k++;
        }
        all[k] = tr->own[i];
        n += k == n;
    }
    tr->t.points = all;
    tr->t.npoints = n;
    if (base != NULL && !tr->t.open) {
        tr->t.open = base->t.open;
    }
    if (base != NULL && tr->t.parents == NULL) {
        tr->t.parents = base->t.parents;
    }
    if (base != NULL && tr->t.description == NULL) {
        tr->t.description = base->t.description;
    }
    tr->resolved = 2;
    return 0;
}

static int cmp_types(const void *a, const void *b)
{
    return strcmp((*(type_rec_t *const *)a)->t.name, (*(type_rec_t *const *)b)->t.name);
}

/* True when dirs[i] is a folder already among dirs[0..i-1], by identity (device and inode),
 * not by name: the shipped folder given again as `./schema/`, through a symlink or by an
 * absolute path is loaded once, not declared twice. A folder that cannot be found is never
 * a repeat, so its error is reported. */
static bool seen_before(const char *const *dirs, size_t i)
{
    struct stat a, b;
    if (stat(dirs[i], &a) != 0 || !S_ISDIR(a.st_mode)) {
        return false;
    }
    for (size_t k = 0; k < i; k++) {
        if (stat(dirs[k], &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            return true;
        }
    }
    return false;
}

int sprig_schema_load(const char *const *dirs, size_t ndirs, sprig_schema_t **out,
                      void (*rep)(const char *msg, void *arg), void *arg)
{
    load_ctx_t l = {.report = rep, .arg = arg};
    *out = NULL;
    if ((l.s = sprig_calloc(1, sizeof(*l.s))) == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < ndirs; i++) {
        if (!seen_before(dirs, i)) {
            run_dir(&l, dirs[i]);
        }
    }
    for (size_t i = 0; i < l.s->n; i++) {
        type_rec_t *tr = l.s->types[i];
        resolve(&l, tr);
        for (const char *const *p = tr->t.parents; p != NULL && *p != NULL; p++) {
            if (find(l.s, *p) == NULL) {
                report(&l, tr->t.file, tr->parents_line, "type %s: parent type %s is not declared",
                       tr->t.name, *p);
            }
        }
    }
    if (l.errors != 0) {
        sprig_schema_free(l.s);
        return l.errors;
    }
    qsort(l.s->types, l.s->n, sizeof(*l.s->types), cmp_types);
    *out = l.s;
    return 0;
}
