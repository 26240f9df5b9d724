/* Unit tests of the sandbox's pattern matcher (luabox_pattern.c): string.find, match, gmatch
 * and gsub in a box give what Lua 5.4's own give, results and error messages alike, for
 * tens of thousands of random subjects and patterns (and hand-picked corner cases), run
 * side by side in a plain lua_State with the stock libraries; and each of the patterns
 * that would stall the daemon ends within a rule's budget with "pattern too complex (over
 * budget)" at its line, whatever pcall the script wraps around it.
 *
 * SPRIG_PATTERN_SEED and SPRIG_PATTERN_CASES (environment) change the random run's seed
 * and size; a mismatch prints the call, both results and the seed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lualib.h>

#include "sprig/luabox.h"

/* The same chunk runs in both states, named t.lua in both, so error positions agree too.
 * It calls one function and returns its results as one string: types, values, count. */
static const char driver[] =
    "local op, s, p, a, b, kind = ...\n"
    "local function ser(...)\n"
    "  local out = {}\n"
    "  for i = 1, select('#', ...) do\n"
    "    local v = select(i, ...)\n"
    "    if type(v) == 'string' then out[i] = string.format('%q', v)\n"
    "    elseif math.type(v) then out[i] = math.type(v) .. ' ' .. tostring(v)\n"
    "    else out[i] = tostring(v) end\n"
    "  end\n"
    "  return select('#', ...) .. '(' .. table.concat(out, ', ') .. ')'\n"
    "end\n"
    "local repl_table = {a = '<A>', b = false, c = 1.5, ab = 7, ['1'] = 'one', x = {},\n"
    "  [''] = 'E', [1] = 'p1', [2] = true, ['a-'] = 'dash'}\n"
    "local function repl_fn(...)\n"
    "  local v = ...\n"
    "  if v == 'b' or v == '' then return nil\n"
    "  elseif v == 'x' then return {}\n"
    "  elseif v == 'c' then return false\n"
    "  elseif v == '1' then return 2.5\n"
    "  elseif math.type(v) == 'integer' then return v * 10\n"
    "  else return select('#', ...) .. '<' .. table.concat({...}, '|') .. '>' end\n"
    "end\n"
    "if op == 'find' then return ser(string.find(s, p, a, b))\n"
    "elseif op == 'method' then return ser(s:find(p, a, b))\n"
    "elseif op == 'match' then return ser(string.match(s, p, a))\n"
    "elseif op == 'gmatch' then\n"
    "  local it, parts = string.gmatch(s, p, a), {}\n"
    "  for i = 1, 200 do\n"
    "    local r = table.pack(it())\n"
    "    if r.n == 0 then parts[#parts + 1] = ser(it()) break end\n"
    "    parts[#parts + 1] = ser(table.unpack(r, 1, r.n))\n"
    "  end\n"
    "  return table.concat(parts, ' ')\n"
    "elseif op == 'gsub' then\n"
    "  local r = a\n"
    "  if kind == 't' then r = repl_table elseif kind == 'f' then r = repl_fn\n"
    "  elseif kind == 'n' then r = nil elseif kind == 'B' then r = true end\n"
    "  return ser(string.gsub(s, p, r, b))\n"
    "end\n"
    "error('no op ' .. tostring(op))\n";

typedef enum { V_NIL, V_INT, V_BOOL, V_STR } vkind_t;

typedef struct val {
    vkind_t kind;
    long long i;
    const char *s;
    size_t len;
} val_t;

/* One call: op is find, method (s:find), match, gmatch or gsub; a is init (or gsub's
 * replacement string), b plain (or gsub's n); kind is gsub's replacement: s (a), t (a
 * table), f (a function), n (nil), B (true). */
typedef struct call {
    const char *op;
    const char *s;
    size_t ls;
    const char *p;
    size_t lp;
    val_t a, b;
    char kind;
} call_t;

typedef struct result {
    bool ok;
    size_t len;
    char text[8192];
} result_t;

typedef struct pair {
    lua_State *stock;
    int stock_fn;
    sprig_luabox_t *box;
    int box_fn;
} pair_t;

static void push_val(lua_State *L, const val_t *v)
{
    switch (v->kind) {
    case V_NIL:
        lua_pushnil(L);
        break;
    case V_INT:
        lua_pushinteger(L, v->i);
        break;
    case V_BOOL:
        lua_pushboolean(L, v->i != 0);
        break;
    case V_STR:
        lua_pushlstring(L, v->s, v->len);
        break;
    }
}

static void push_call(lua_State *L, const call_t *c)
{
    char kind[2] = {c->kind != 0 ? c->kind : 's', 0};
    lua_pushstring(L, c->op);
    lua_pushlstring(L, c->s, c->ls);
    lua_pushlstring(L, c->p, c->lp);
    push_val(L, &c->a);
    push_val(L, &c->b);
    lua_pushstring(L, kind);
}

static void set_result(result_t *r, bool ok, const char *text, size_t len)
{
    r->ok = ok;
    r->len = len < sizeof(r->text) ? len : sizeof(r->text) - 1;
    memcpy(r->text, text, r->len);
    r->text[r->len] = '\0';
}

static void run_stock(pair_t *pr, const call_t *c, result_t *r)
{
    lua_State *L = pr->stock;
    lua_rawgeti(L, LUA_REGISTRYINDEX, pr->stock_fn);
    push_call(L, c);
    int rc = lua_pcall(L, 6, 1, 0);
    size_t len = 0;
    const char *text = lua_tolstring(L, -1, &len);
    if (rc != LUA_OK && len > 511) {
        len = 511; /* what a sprig_error_t holds */
    }
    set_result(r, rc == LUA_OK, text != NULL ? text : "?", text != NULL ? len : 1);
    lua_pop(L, 1);
}

static void run_box(pair_t *pr, const call_t *c, result_t *r)
{
    lua_State *L = sprig_luabox_state(pr->box);
    sprig_error_t err = {{0}};
    lua_rawgeti(L, LUA_REGISTRYINDEX, pr->box_fn);
    push_call(L, c);
    int rc = sprig_luabox_call(pr->box, 6, 1, &err);
    if (rc != 0) {
        assert_int_equal(rc, -EINVAL); /* never the budget, never memory */
        set_result(r, false, err.msg, strlen(err.msg));
        return;
    }
    size_t len = 0;
    const char *text = lua_tolstring(L, -1, &len);
    set_result(r, true, text, len);
    lua_pop(L, 1);
}

static void pair_open(pair_t *pr)
{
    pr->stock = luaL_newstate();
    assert_non_null(pr->stock);
    luaL_openlibs(pr->stock);
    assert_int_equal(luaL_loadbufferx(pr->stock, driver, sizeof(driver) - 1, "=t.lua", "t"),
                     LUA_OK);
    pr->stock_fn = luaL_ref(pr->stock, LUA_REGISTRYINDEX);
    sprig_luabox_opts_t o = {.insn_max = 1L << 40, .mem_max = 256u << 20};
    assert_int_equal(sprig_luabox_open(&o, &pr->box), 0);
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_luabox_load(pr->box, "t.lua", driver, sizeof(driver) - 1, &err), 0);
    pr->box_fn = luaL_ref(sprig_luabox_state(pr->box), LUA_REGISTRYINDEX);
}

static void pair_close(pair_t *pr)
{
    lua_close(pr->stock);
    sprig_luabox_close(pr->box);
}

/* Prints bytes with C escapes. */
static void print_bytes(const char *label, const char *s, size_t len)
{
    char out[1024];
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < sizeof(out); i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 32 && c < 127 && c != '\\' && c != '"') {
            out[n++] = (char)c;
        }
        else {
            n += (size_t)snprintf(out + n, sizeof(out) - n, "\\x%02x", c);
        }
    }
    out[n] = '\0';
    print_message("  %s \"%s\"\n", label, out);
}

static void print_val(const char *label, const val_t *v)
{
    switch (v->kind) {
    case V_NIL:
        print_message("  %s nil\n", label);
        break;
    case V_INT:
        print_message("  %s %lld\n", label, v->i);
        break;
    case V_BOOL:
        print_message("  %s %s\n", label, v->i ? "true" : "false");
        break;
    case V_STR:
        print_bytes(label, v->s, v->len);
        break;
    }
}

static unsigned long long seed_used;

/* Runs c in both states; fails the test, printing both sides, when they differ. The box's
 * result is left in *box. */
static void compare(pair_t *pr, const call_t *c, result_t *box)
{
    static result_t stock;
    run_stock(pr, c, &stock);
    run_box(pr, c, box);
    if (stock.ok == box->ok && stock.len == box->len &&
        memcmp(stock.text, box->text, stock.len) == 0) {
        return;
    }
    print_message("mismatch in %s (seed %llu):\n", c->op, seed_used);
    print_bytes("subject", c->s, c->ls);
    print_bytes("pattern", c->p, c->lp);
    print_val("a", &c->a);
    print_val("b", &c->b);
    print_message("  kind %c\n", c->kind != 0 ? c->kind : 's');
    print_bytes(stock.ok ? "stock ->" : "stock error", stock.text, stock.len);
    print_bytes(box->ok ? "box   ->" : "box   error", box->text, box->len);
    fail();
}

static const val_t nil = {V_NIL, 0, NULL, 0};

static val_t int_val(long long i)
{
    val_t v = {V_INT, i, NULL, 0};
    return v;
}

static val_t bool_val(bool b)
{
    val_t v = {V_BOOL, b, NULL, 0};
    return v;
}

static val_t str_val(const char *s)
{
    val_t v = {V_STR, 0, s, strlen(s)};
    return v;
}

/* Compares one call given with NUL-terminated strings; returns the box's result text. */
static const char *check(pair_t *pr, const char *op, const char *s, const char *p, val_t a, val_t b,
                         char kind)
{
    static result_t box;
    call_t c = {op, s, strlen(s), p, strlen(p), a, b, kind};
    compare(pr, &c, &box);
    return box.text;
}

/* ------------------------------------------------------------------------------------ */
/* Random calls from a small grammar. */

static unsigned long long rng;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)((rng >> 11) % n);
}

static bool chance(unsigned percent)
{
    return rnd(100) < percent;
}

static char pick(const char *from)
{
    return from[rnd((unsigned)strlen(from))];
}

typedef struct text {
    char b[512];
    size_t n;
} text_t;

static void put(text_t *t, const char *s)
{
    size_t l = strlen(s);
    if (t->n + l < sizeof(t->b)) {
        memcpy(t->b + t->n, s, l);
        t->n += l;
    }
}

static void putc_(text_t *t, char c)
{
    if (t->n + 1 < sizeof(t->b)) {
        t->b[t->n++] = c;
    }
}

static void gen_subject(text_t *t)
{
    static const char alphabet[] = "aaabbbcAB12  ()[]%.-^$x_";
    unsigned len = chance(10) ? 0 : rnd(chance(20) ? 40 : 14);
    t->n = 0;
    for (unsigned i = 0; i < len; i++) {
        if (chance(2)) {
            putc_(t, chance(50) ? '\0' : (char)0xe9);
        }
        else {
            putc_(t, pick(alphabet));
        }
    }
}

static void gen_set(text_t *t)
{
    putc_(t, '[');
    if (chance(25)) {
        putc_(t, '^');
    }
    if (chance(10)) {
        putc_(t, ']'); /* a ']' first is a member */
    }
    for (unsigned i = 0, n = 1 + rnd(3); i < n; i++) {
        switch (rnd(7)) {
        case 0:
        case 1:
            putc_(t, pick("abc12 .()-^$"));
            break;
        case 2:
            putc_(t, pick("ab1"));
            putc_(t, '-');
            putc_(t, pick("abc2"));
            break;
        case 3:
            putc_(t, '%');
            putc_(t, pick("adswpzAWZ"));
            break;
        case 4:
            putc_(t, '%');
            putc_(t, pick("]%-[."));
            break;
        case 5:
            putc_(t, '-');
            break;
        default:
            putc_(t, chance(20) ? '\0' : pick("x_"));
            break;
        }
    }
    putc_(t, ']');
}

static void gen_items(text_t *t, int depth, unsigned max);

static void gen_item(text_t *t, int depth)
{
    unsigned r = rnd(100);
    bool single = true;
    if (r < 24) {
        if (chance(4)) {
            putc_(t, chance(50) ? '\0' : (char)0xe9); /* a pattern may hold any byte */
        }
        else {
            putc_(t, pick("aabbcAB12 x_"));
        }
    }
    else if (r < 29) {
        putc_(t, '%');
        putc_(t, pick("().%[]-*+?^$"));
    }
    else if (r < 37) {
        putc_(t, '.');
    }
    else if (r < 51) {
        putc_(t, '%');
        putc_(t, pick("acdglpsuwxzACDGLPSUWXZ"));
    }
    else if (r < 63) {
        gen_set(t);
    }
    else if (r < 74 && depth < 3) {
        single = false;
        putc_(t, '(');
        if (!chance(15)) {
            gen_items(t, depth + 1, 3);
        }
        putc_(t, ')');
    }
    else if (r < 78) {
        static const char *const pairs[] = {"()", "ab", "[]", "''", "aa", "(]"};
        single = false;
        put(t, "%b");
        put(t, pairs[rnd(6)]);
    }
    else if (r < 84) {
        single = false;
        put(t, "%f");
        gen_set(t);
    }
    else if (r < 89) {
        single = false;
        putc_(t, '%');
        putc_(t, pick("1123"));
    }
    else if (r < 92) {
        single = false;
        putc_(t, pick("^$"));
    }
    else {
        putc_(t, pick("]*+?-"));
    }
    if (single && chance(40)) {
        putc_(t, pick("*+-?"));
    }
}

static void gen_items(text_t *t, int depth, unsigned max)
{
    for (unsigned i = 0, n = rnd(max + 1); i < n; i++) {
        gen_item(t, depth);
    }
}

/* Breaks a pattern in one of the ways Lua reports (or does not, when never reached). */
static void mutate(text_t *t)
{
    static const char *const tails[] = {"%",   "[ab", "[^", "[", "%fa", "%f",  "%b",
                                        "%bx", "%0",  "%9", ")", "(",   "(()", "[%"};
    switch (rnd(4)) {
    case 0:
        t->n = t->n > 0 ? rnd((unsigned)t->n) : 0;
        break;
    case 1:
        put(t, tails[rnd(sizeof(tails) / sizeof(tails[0]))]);
        break;
    case 2: {
        text_t rest = *t;
        size_t at = t->n > 0 ? rnd((unsigned)t->n + 1) : 0;
        t->n = at;
        put(t, tails[rnd(sizeof(tails) / sizeof(tails[0]))]);
        for (size_t i = at; i < rest.n; i++) {
            putc_(t, rest.b[i]);
        }
        break;
    }
    default:
        put(t, "(");
        break;
    }
}

static void gen_pattern(text_t *t)
{
    t->n = 0;
    if (chance(25)) {
        putc_(t, '^');
    }
    gen_items(t, 0, 5);
    if (chance(20)) {
        putc_(t, '$');
    }
    if (chance(10)) {
        mutate(t);
    }
}

static void gen_template(text_t *t)
{
    static const char *const parts[] = {"x", "-", "%0", "%1", "%2", "%3", "%%", "[", "ab"};
    t->n = 0;
    for (unsigned i = 0, n = rnd(4); i < n; i++) {
        put(t, parts[rnd(sizeof(parts) / sizeof(parts[0]))]);
    }
    if (chance(5)) {
        put(t, chance(50) ? "%x" : "%");
    }
}

static val_t gen_init(void)
{
    if (chance(60)) {
        return nil;
    }
    if (chance(10)) {
        return int_val(chance(50) ? 1000 : -1000);
    }
    return int_val((long long)rnd(37) - 16);
}

typedef struct tally {
    unsigned calls, errors, matched;
} tally_t;

/* The distinct error messages seen (without "t.lua:N: "), with how often. */
typedef struct messages {
    unsigned n;
    char text[40][96];
    unsigned count[40];
} messages_t;

static void note_message(messages_t *ms, const char *msg)
{
    const char *colon = strstr(msg, ": ");
    const char *text = colon != NULL ? colon + 2 : msg;
    char key[96];
    size_t len = strlen(text) < sizeof(key) - 1 ? strlen(text) : sizeof(key) - 1;
    memcpy(key, text, len);
    key[len] = '\0';
    for (unsigned i = 0; i < ms->n; i++) {
        if (strcmp(ms->text[i], key) == 0) {
            ms->count[i]++;
            return;
        }
    }
    if (ms->n < 40) {
        memcpy(ms->text[ms->n], key, sizeof(key));
        ms->count[ms->n++] = 1;
    }
}

static void t_random_against_stock(void **state)
{
    (void)state;
    const char *env_seed = getenv("SPRIG_PATTERN_SEED");
    const char *env_cases = getenv("SPRIG_PATTERN_CASES");
    seed_used = env_seed != NULL ? strtoull(env_seed, NULL, 10) : 20261201ULL;
    unsigned cases = env_cases != NULL ? (unsigned)strtoul(env_cases, NULL, 10) : 100000;
    rng = seed_used * 2654435761ULL + 88172645463325252ULL;
    pair_t pr;
    pair_open(&pr);
    static const char *const ops[] = {"find", "method", "match", "gmatch", "gsub"};
    static const unsigned weight[] = {22, 5, 20, 20, 33};
    tally_t tally[5] = {{0}};
    static messages_t msgs;
    text_t subject, pattern, tmpl;
    static result_t box;
    for (unsigned n = 0; n < cases; n++) {
        unsigned w = rnd(100), op = 0;
        while (w >= weight[op]) {
            w -= weight[op++];
        }
        gen_subject(&subject);
        gen_pattern(&pattern);
        call_t c = {ops[op], subject.b, subject.n, pattern.b, pattern.n, nil, nil, 's'};
        if (op <= 3) {
            c.a = gen_init();
            if (op <= 1 && !chance(70)) {
                c.b = bool_val(chance(50));
            }
        }
        else {
            unsigned k = rnd(100);
            c.kind = k < 60 ? 's' : k < 75 ? 't' : k < 90 ? 'f' : k < 93 ? 'n' : k < 95 ? 'B' : 's';
            if (k >= 95) {
                c.a = int_val(7); /* a number as the replacement string */
            }
            else {
                gen_template(&tmpl);
                c.a.kind = V_STR;
                c.a.s = tmpl.b;
                c.a.len = tmpl.n;
            }
            if (chance(30)) {
                c.b = int_val((long long)rnd(6) - 1);
            }
        }
        compare(&pr, &c, &box);
        tally[op].calls++;
        if (!box.ok) {
            tally[op].errors++;
            note_message(&msgs, box.text);
        }
        else if (strncmp(box.text, "1(nil)", 6) != 0 && strcmp(box.text, "0()") != 0) {
            tally[op].matched++;
        }
    }
    for (int i = 0; i < 5; i++) {
        print_message("  %-6s %5u calls, %5u raised an error, %5u gave a result\n", ops[i],
                      tally[i].calls, tally[i].errors, tally[i].matched);
    }
    for (unsigned i = 0; i < msgs.n; i++) {
        print_message("  %5u x %s\n", msgs.count[i], msgs.text[i]);
    }
    pair_close(&pr);
}

/* ------------------------------------------------------------------------------------ */
/* Hand-picked corner cases, compared with stock and, where it says more, with the value. */

static void t_corner_cases(void **state)
{
    (void)state;
    pair_t pr;
    pair_open(&pr);
    /* Empty pattern, empty subject, init beyond the end and before the start. */
    assert_string_equal(check(&pr, "find", "abc", "", nil, nil, 0), "2(integer 1, integer 0)");
    assert_string_equal(check(&pr, "find", "abc", "", int_val(4), nil, 0),
                        "2(integer 4, integer 3)");
    assert_string_equal(check(&pr, "find", "abc", "", int_val(5), nil, 0), "1(nil)");
    assert_string_equal(check(&pr, "find", "", "", nil, nil, 0), "2(integer 1, integer 0)");
    assert_string_equal(check(&pr, "match", "", "x*", nil, nil, 0), "1(\"\")");
    check(&pr, "find", "abc", "b", int_val(-100), nil, 0);
    check(&pr, "find", "abc", "b", int_val(-1), nil, 0);
    check(&pr, "find", "abc", "c", int_val(-1), bool_val(true), 0);
    check(&pr, "match", "abc", ".", int_val(10), nil, 0);
    check(&pr, "gmatch", "abc", ".", int_val(10), nil, 0);
    check(&pr, "gmatch", "abc", ".", int_val(-2), nil, 0);
    check(&pr, "find", "abc", "b", int_val(INT64_MIN), nil, 0);
    check(&pr, "find", "abc", "b", int_val(INT64_MAX), nil, 0);
    /* '^' not at the start and '$' not at the end are themselves. */
    assert_string_equal(check(&pr, "find", "a^b", "a^b", nil, nil, 0), "2(integer 1, integer 3)");
    assert_string_equal(check(&pr, "match", "a$b", "(a$)b", nil, nil, 0), "1(\"a$\")");
    check(&pr, "match", "ab", "^^a", nil, nil, 0);
    check(&pr, "find", "a$", "a$$", nil, nil, 0);
    check(&pr, "gmatch", "^a^a", "^a", nil, nil, 0); /* no anchor in gmatch */
    check(&pr, "gsub", "aaa", "^a", str_val("x"), nil, 's');
    /* Frontiers and balances. */
    assert_string_equal(check(&pr, "gmatch", "THE (quick) fox", "%f[%a]%a+", nil, nil, 0),
                        "1(\"THE\") 1(\"quick\") 1(\"fox\") 0()");
    check(&pr, "gsub", "hello world", "%f[%w]%w+", str_val("<%0>"), nil, 's');
    check(&pr, "find", "abc", "%f[%z]", nil, nil, 0);
    check(&pr, "find", "abc", "%f[%W]", nil, nil, 0);
    check(&pr, "find", "abc", "%f[^a]", nil, nil, 0);
    assert_string_equal(check(&pr, "match", "x(a(b)c", "%b()", nil, nil, 0), "1(\"(b)\")");
    assert_string_equal(check(&pr, "match", "((a)", "%b()", nil, nil, 0), "1(\"(a)\")");
    assert_string_equal(check(&pr, "match", "(((", "%b()", nil, nil, 0), "1(nil)");
    check(&pr, "match", "'a'b'", "%b''", nil, nil, 0);
    check(&pr, "gsub", "f(a(b)) g(c)", "%b()", str_val("[]"), nil, 's');
    /* Position, nested and empty captures; back-references. */
    assert_string_equal(check(&pr, "match", "hello", "()ll()", nil, nil, 0),
                        "2(integer 3, integer 5)");
    assert_string_equal(check(&pr, "find", "key=val", "((%w+)=(%w+))", nil, nil, 0),
                        "5(integer 1, integer 7, \"key=val\", \"key\", \"val\")");
    check(&pr, "match", "abc", "()", nil, nil, 0);
    check(&pr, "match", "abc", "(()b())", nil, nil, 0);
    check(&pr, "match", "abc", "((((a))))", nil, nil, 0);
    assert_string_equal(check(&pr, "match", "say \"hi\" and 'yo'", "([\"'])(.-)%1", nil, nil, 0),
                        "2(\"\\\"\", \"hi\")");
    check(&pr, "match", "aa", "()%1", nil, nil, 0);
    check(&pr, "match", "aa", "(a)%0", nil, nil, 0);
    check(&pr, "match", "aa", "(a%1)", nil, nil, 0);
    check(&pr, "gsub", "abc", "()", str_val("%1"), nil, 's');
    check(&pr, "gsub", "abc", "(b)()", str_val("%2%1"), nil, 's');
    check(&pr, "gsub", "abc", "b", str_val("%1"), nil, 's');
    check(&pr, "gsub", "abc", "b", str_val("%2"), nil, 's');
    /* gsub: empty matches, the count, n, replacements that keep the match. */
    assert_string_equal(check(&pr, "gsub", "abc", "", str_val("-"), nil, 's'),
                        "2(\"-a-b-c-\", integer 4)");
    assert_string_equal(check(&pr, "gsub", "abc", "%w", str_val("%0%0"), int_val(2), 's'),
                        "2(\"aabbc\", integer 2)");
    check(&pr, "gsub", "abc", "%w", str_val("x"), int_val(0), 's');
    check(&pr, "gsub", "abc", "%w", str_val("x"), int_val(-3), 's');
    check(&pr, "gsub", "a b c x", "%w", nil, nil, 't');
    check(&pr, "gsub", "a b c 1", "%w", nil, nil, 'f');
    check(&pr, "gsub", "ab", "()", nil, nil, 't');
    check(&pr, "gsub", "ab", "()", nil, nil, 'f');
    check(&pr, "gsub", "hello world", "(o)", str_val("[%%%1]"), nil, 's');
    check(&pr, "gsub", "abc", "b*", str_val("-"), nil, 's');
    check(&pr, "gsub", "", "", str_val("-"), nil, 's');
    check(&pr, "gsub", "abc", "x*", str_val("-"), int_val(2), 's');
    /* gmatch: an empty match right after the previous one is skipped. */
    assert_string_equal(check(&pr, "gmatch", "", "x*", nil, nil, 0), "1(\"\") 0()");
    check(&pr, "gmatch", "abc", "b*", nil, nil, 0);
    check(&pr, "gmatch", "a,b,,c", "([^,]*)", nil, nil, 0);
    check(&pr, "gmatch", "k1=v1, k2=v2", "(%w+)=(%w+)", nil, nil, 0);
    check(&pr, "gmatch", "abcabc", "()b", int_val(3), nil, 0);
    /* Malformed patterns, where reached (and not, where not). */
    check(&pr, "find", "abc", "a%", nil, nil, 0);
    check(&pr, "find", "abc", "x%", nil, nil, 0);
    check(&pr, "find", "abc", "%", nil, nil, 0);
    check(&pr, "find", "abc", "[a", nil, nil, 0);
    check(&pr, "find", "abc", "x[", nil, nil, 0);
    check(&pr, "find", "", "[a", nil, nil, 0);
    check(&pr, "find", "abc", "[]", nil, nil, 0);
    check(&pr, "find", "a]c", "[]]", nil, nil, 0);
    check(&pr, "find", "a]c", "[^]]", nil, nil, 0);
    check(&pr, "find", "abc", "[%", nil, nil, 0);
    check(&pr, "find", "abc", "[%]", nil, nil, 0);
    check(&pr, "find", "a-c", "[a-]", nil, nil, 0);
    check(&pr, "find", "abc", "a%f", nil, nil, 0);
    check(&pr, "find", "abc", "%fa", nil, nil, 0);
    check(&pr, "find", "abc", "%b", nil, nil, 0);
    check(&pr, "find", "abc", "%ba", nil, nil, 0);
    check(&pr, "find", "abc", "a)", nil, nil, 0);
    check(&pr, "find", "abc", "(a", nil, nil, 0);
    check(&pr, "match", "abc", "(a", nil, nil, 0);
    check(&pr, "gsub", "abc", "(a", str_val("x"), nil, 's');
    check(&pr, "gsub", "abc", "(a", str_val("%1"), nil, 's');
    check(&pr, "gsub", "abc", "(a", nil, nil, 'f');
    check(&pr, "gsub", "abc", "a", str_val("%"), nil, 's');
    check(&pr, "gsub", "abc", "a", str_val("%y"), nil, 's');
    check(&pr, "gsub", "abc", "%w", nil, nil, 'n');
    check(&pr, "gsub", "abc", "%w", nil, nil, 'B');
    check(&pr, "gsub", "x", "x", nil, nil, 't');
    check(&pr, "find", "abc", "%0", nil, nil, 0);
    check(&pr, "find", "abc", "(a)%2", nil, nil, 0);
    /* Captures: 32 are fine, 33 are too many. */
    char many[200] = "", subject[64] = "";
    for (int i = 0; i < 32; i++) {
        strcat(many, "(a)");
        strcat(subject, "a");
    }
    check(&pr, "match", subject, many, nil, nil, 0);
    strcat(many, "(a)");
    strcat(subject, "a");
    check(&pr, "match", subject, many, nil, nil, 0);
    check(&pr, "find", "a", "()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()",
          nil, nil, 0);
    /* Nesting: Lua's limit of 200 levels, at the same place. */
    for (int n = 198; n <= 202; n++) {
        char p[1024] = "", s[256] = "";
        for (int i = 0; i < n; i++) {
            strcat(p, "a?");
            strcat(s, "a");
        }
        check(&pr, "match", s, p, nil, nil, 0);
        p[0] = '\0';
        for (int i = 0; i < n; i++) {
            strcat(p, i % 2 ? "a*" : "a-");
        }
        check(&pr, "match", s, p, nil, nil, 0);
    }
    /* Captures nest too: an open and a close are a level each. */
    for (int caps = 0; caps <= 32; caps += 8) {
        for (int n = 196 - 3 * caps; n <= 202 - 3 * caps; n++) {
            char p[1024] = "", s[256] = "";
            for (int i = 0; i < caps; i++) {
                strcat(p, "(a?)");
                strcat(s, "a");
            }
            for (int i = 0; i < n; i++) {
                strcat(p, "a?");
                strcat(s, "a");
            }
            check(&pr, "match", s, p, nil, nil, 0);
        }
    }
    /* The first item behind up to 32 opening parentheses: an error the first try meets
     * still comes, wherever the item matches. */
    for (int n = 31; n <= 33; n++) {
        char p[64] = "";
        for (int i = 0; i < n; i++) {
            strcat(p, "(");
        }
        strcat(p, "a");
        check(&pr, "match", "bbb", p, nil, nil, 0);
        check(&pr, "match", "bba", p, nil, nil, 0);
        check(&pr, "gsub", "bbb", p, str_val("x"), nil, 's');
    }
    /* Arguments: numbers as strings, wrong types. */
    lua_State *L = sprig_luabox_state(pr.box);
    sprig_error_t err = {{0}};
    static const char args[] =
        "assert(string.find(12345, 34) == 3)\n"
        "assert(select(2, string.gsub(1000, 0, 1)) == 3)\n"
        "assert(not pcall(string.find))\n"
        "local ok, e = pcall(string.gsub, 'a', 'a')\n"
        "assert(e == \"bad argument #3 to 'string.gsub' (string/function/table expected, got no "
        "value)\", e)\n"
        "ok, e = pcall(string.find, 'a', 'a', 1.5)\n"
        "assert(e:find('number has no integer representation', 1, true), e)\n"
        "assert(('x'):find('x') == 1 and getmetatable('').__index == string)\n";
    assert_int_equal(sprig_luabox_load(pr.box, "a.lua", args, sizeof(args) - 1, &err), 0);
    if (sprig_luabox_call(pr.box, 0, 0, &err) != 0) {
        print_message("  %s\n", err.msg);
        fail();
    }
    /* The functions are the box's own, not Lua's. */
    static const char *const names[] = {"find", "match", "gmatch", "gsub"};
    for (int i = 0; i < 4; i++) {
        lua_getglobal(pr.stock, "string");
        lua_getfield(pr.stock, -1, names[i]);
        lua_getglobal(L, "string");
        lua_getfield(L, -1, names[i]);
        assert_true(lua_tocfunction(L, -1) != lua_tocfunction(pr.stock, -1));
        lua_pop(L, 2);
        lua_pop(pr.stock, 2);
    }
    pair_close(&pr);
}

/* ------------------------------------------------------------------------------------ */
/* The budget: what would stall the daemon ends within a rule's budget. */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct stall {
    const char *what;
    const char *script;
    int line; /* where the pattern call is */
} stall_t;

static void t_budget_ends_stalls(void **state)
{
    (void)state;
    static const stall_t stalls[] = {
        {"find", "local s = string.rep('a', 5000)\nlocal i = string.find(s, '.-.-.-.-.-.-b')\n", 2},
        {"match", "local s = string.rep('a', 5000)\nlocal m = s:match('.-.-.-.-.-.-b')\n", 2},
        {"gsub",
         "local s = string.rep('a', 5000)\nlocal r = string.gsub(s, '.-.-.-.-.-.-b', 'x')\n", 2},
        {"gmatch",
         "local s = string.rep('a', 5000)\nlocal n = 0\n"
         "for m in string.gmatch(s, '.-.-.-.-.-.-b') do n = n + 1 end\n",
         3},
        {"find with captures",
         "local s = string.rep('a', 5000)\nlocal i = s:find('(.-)(.-)(.-)(.-)(.-)(.-)b')\n", 2},
        /* One %b() over 3,000 '(' scans 4.5 million bytes (a few ms, about a million units);
         * inside .- it is cubic, and per event in a loop it adds up. */
        {"%b() after .-", "local s = string.rep('(', 3000)\nlocal i = s:find('.-%b()')\n", 2},
        {"%b() in a loop",
         "local s = string.rep('(', 3000)\nfor k = 1, 1000 do\n  local i = s:find('%b()')\nend\n",
         3},
        {"plain find of 500 KB in 1 MB, in a loop",
         "local hay = string.rep('a', 1 << 20)\nlocal needle = string.rep('a', 500 * 1024) .. 'b'\n"
         "while true do local i = string.find(hay, needle, 1, true) end\n",
         3},
        {"pcall around it",
         "local s = string.rep('a', 5000)\nlocal ok, e = pcall(string.find, s, '.-.-.-.-.-.-b')\n"
         "caught = e\n",
         2},
        {"pcall around gmatch's iterator",
         "local s = string.rep('a', 5000)\nlocal it = string.gmatch(s, '.-.-.-.-.-.-b')\n"
         "for i = 1, 3 do pcall(it) end\ncaught = true\n",
         3},
    };
    sprig_luabox_t *box = NULL;
    sprig_luabox_opts_t o = {.insn_max = 5000000, .time_max_ms = 100};
    assert_int_equal(sprig_luabox_open(&o, &box), 0);
    lua_State *L = sprig_luabox_state(box);
    for (size_t i = 0; i < sizeof(stalls) / sizeof(stalls[0]); i++) {
        const stall_t *st = &stalls[i];
        sprig_error_t err = {{0}};
        assert_int_equal(sprig_luabox_load(box, "t.lua", st->script, strlen(st->script), &err), 0);
        double t0 = now_s();
        int rc = sprig_luabox_call(box, 0, 0, &err);
        double dt = now_s() - t0;
        print_message("  %-40s %7.1f ms: %s\n", st->what, dt * 1e3, err.msg);
        assert_int_equal(rc, -ETIMEDOUT);
        /* Over the instruction budget, or (in a slow sanitizer build) the time first. */
        char want[128], want_ms[128];
        snprintf(want, sizeof(want), "t.lua:%d: pattern too complex (over budget)", st->line);
        snprintf(want_ms, sizeof(want_ms), "t.lua:%d: pattern too complex (over 100 ms)",
                 st->line);
        if (strcmp(err.msg, want_ms) != 0) {
            assert_string_equal(err.msg, want);
        }
        assert_true(dt < 3.0);
        /* The script did not go on after its pcall. */
        lua_getglobal(L, "caught");
        assert_true(lua_isnil(L, -1));
        lua_pop(L, 1);
    }
    /* The box is usable again, and a plain search too long for Lua's own is fast here. */
    static const char fine[] =
        "local hay = string.rep('a', 1 << 20)\n"
        "local needle = string.rep('a', 500 * 1024) .. 'b'\n"
        "assert(string.find(hay, needle, 1, true) == nil)\n"
        "assert(string.find(hay .. 'b', needle, 1, true) == (1 << 20) - 500 * 1024 + 1)\n"
        "assert(('x'):rep(100):find('.-.-y') == nil)\n";
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_luabox_load(box, "t.lua", fine, sizeof(fine) - 1, &err), 0);
    assert_int_equal(sprig_luabox_call(box, 0, 0, &err), 0);
    sprig_luabox_close(box);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_corner_cases),
        cmocka_unit_test(t_random_against_stock),
        cmocka_unit_test(t_budget_ends_stalls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
