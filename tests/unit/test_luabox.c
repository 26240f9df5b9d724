/* Unit tests of the Lua sandbox (luabox.h): the budgets stop what they promise to stop,
 * a script's own pcall cannot swallow the stop, only safe libraries are there, source text
 * only, errors name the line, and a box is usable again after a stopped call. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <lauxlib.h>

#include "sprig/luabox.h"

/* Loads and runs text in box; returns what sprig_luabox_call (or load) returned. */
static int run(sprig_luabox_t *box, const char *text, sprig_error_t *err)
{
    int rc = sprig_luabox_load(box, "t.lua", text, strlen(text), err);
    return rc != 0 ? rc : sprig_luabox_call(box, 0, 0, err);
}

static sprig_luabox_t *open_box(long insns, size_t mem, bool os_time, void *user)
{
    sprig_luabox_t *box = NULL;
    sprig_luabox_opts_t o = {.mem_max = mem, .insn_max = insns, .os_time = os_time, .user = user};
    assert_int_equal(sprig_luabox_open(&o, &box), 0);
    return box;
}

static void t_runaway_stopped(void **state)
{
    (void)state;
    sprig_error_t err = {{0}};
    sprig_luabox_t *box = open_box(1000000, 0, false, NULL);
    assert_int_equal(run(box, "local x = 1\nwhile true do x = x + 1 end\n", &err), -ETIMEDOUT);
    assert_non_null(strstr(err.msg, "t.lua:2: runs too long"));
    /* A script's own pcall cannot swallow it. */
    assert_int_equal(
        run(box, "while true do\n  pcall(function() while true do end end)\nend\n", &err),
        -ETIMEDOUT);
    assert_non_null(strstr(err.msg, "runs too long"));
    /* The budget is per call: the box works again. */
    assert_int_equal(run(box, "x = 40 + 2", &err), 0);
    lua_getglobal(sprig_luabox_state(box), "x");
    assert_int_equal(lua_tointeger(sprig_luabox_state(box), -1), 42);
    lua_pop(sprig_luabox_state(box), 1);
    sprig_luabox_close(box);
}

static void t_time_budget(void **state)
{
    (void)state;
    sprig_error_t err = {{0}};
    sprig_luabox_t *box = NULL;
    sprig_luabox_opts_t o = {.insn_max = 1L << 40, .time_max_ms = 50};
    assert_int_equal(sprig_luabox_open(&o, &box), 0);
    assert_int_equal(run(box, "local x = 0\nwhile true do\n  pcall(function() x = x + 1 end)\nend",
                         &err),
                     -ETIMEDOUT);
    assert_non_null(strstr(err.msg, "runs too long (over 50 ms)"));
    assert_int_equal(run(box, "y = 1", &err), 0);
    sprig_luabox_close(box);
}

static void t_memory_budget(void **state)
{
    (void)state;
    sprig_error_t err = {{0}};
    sprig_luabox_t *box = open_box(0, 4u << 20, false, NULL);
    assert_int_equal(run(box, "local t = {}\nlocal s = string.rep('x', 64 << 20)\n", &err),
                     -ENOMEM);
    assert_non_null(strstr(err.msg, "t.lua:2: not enough memory"));
    assert_true(sprig_luabox_mem(box) < (4u << 20));
    assert_int_equal(run(box, "local t = {} for i = 1, 1e9 do t[i] = i end", &err), -ENOMEM);
    assert_int_equal(run(box, "y = 1", &err), 0);
    sprig_luabox_close(box);
}

static void t_safe_libraries(void **state)
{
    (void)state;
    sprig_error_t err = {{0}};
    sprig_luabox_t *box = open_box(0, 0, false, NULL);
    static const char *const absent[] = {"io",   "os",       "debug",  "package",        "require",
                                         "load", "loadfile", "dofile", "collectgarbage", NULL};
    lua_State *L = sprig_luabox_state(box);
    for (const char *const *a = absent; *a != NULL; a++) {
        lua_getglobal(L, *a);
        if (!lua_isnil(L, -1)) {
            print_message("  %s is reachable\n", *a);
        }
        assert_true(lua_isnil(L, -1));
        lua_pop(L, 1);
    }
    assert_int_equal(run(box,
                         "assert(string.dump == nil)\nassert(string.format('%d', 3) == '3')\n"
                         "assert(math.floor(2.5) == 2 and table.concat({1, 2}) == '12')\n"
                         "assert(utf8.char(72) == 'H' and coroutine.wrap)\n",
                         &err),
                     0);
    assert_int_equal(run(box, "os.execute('true')", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "t.lua:1:"));
    sprig_luabox_close(box);

    box = open_box(0, 0, true, NULL);
    assert_int_equal(run(box,
                         "assert(type(os.time()) == 'number' and os.clock() >= 0)\n"
                         "assert(type(os.date('!%Y')) == 'string')\n"
                         "assert(os.execute == nil and os.remove == nil and os.exit == nil)\n",
                         &err),
                     0);
    sprig_luabox_close(box);
}

static void t_source_only(void **state)
{
    (void)state;
    sprig_error_t err = {{0}};
    sprig_luabox_t *box = open_box(0, 0, false, NULL);
    static const char bytecode[] = "\x1bLua\x54\x00";
    assert_int_equal(sprig_luabox_load(box, "b.lua", bytecode, sizeof(bytecode) - 1, &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "binary"));
    assert_int_equal(run(box, "x = = 1", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "t.lua:1:"));
    assert_int_equal(run(box, "\n\nerror('boom')", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "t.lua:3: boom"));
    assert_int_equal(run(box, "error({})", &err), -EINVAL);
    assert_string_equal(err.msg, "(error object is a table value)");
    assert_int_equal(lua_gettop(sprig_luabox_state(box)), 1); /* the message handler */
    sprig_luabox_close(box);
}

static int get_user(lua_State *L)
{
    lua_pushinteger(L, *(int *)sprig_luabox_user(L));
    return 1;
}

static void t_user_and_results(void **state)
{
    (void)state;
    int user = 7;
    sprig_error_t err = {{0}};
    sprig_luabox_t *box = open_box(0, 0, false, &user);
    lua_State *L = sprig_luabox_state(box);
    lua_register(L, "user", get_user);
    const char *text = "local a = ... return user() * a, 'ok'";
    assert_int_equal(sprig_luabox_load(box, "u.lua", text, strlen(text), &err), 0);
    lua_pushinteger(L, 6);
    assert_int_equal(sprig_luabox_call(box, 1, 2, &err), 0);
    assert_int_equal(lua_gettop(L), 3); /* the message handler, then the results */
    assert_int_equal(lua_tointeger(L, 2), 42);
    assert_string_equal(lua_tostring(L, 3), "ok");
    lua_settop(L, 0);
    /* With the stack cleared the box still calls (the handler goes in for that call). */
    assert_int_equal(sprig_luabox_load(box, "u.lua", text, strlen(text), &err), 0);
    lua_pushinteger(L, 2);
    assert_int_equal(sprig_luabox_call(box, 1, 1, &err), 0);
    assert_int_equal(lua_gettop(L), 1);
    assert_int_equal(lua_tointeger(L, 1), 14);
    assert_int_equal(sprig_luabox_load(box, "u.lua", "error('x')", 10, &err), 0);
    assert_int_equal(sprig_luabox_call(box, 0, 0, &err), -EINVAL);
    assert_int_equal(lua_gettop(L), 1);
    sprig_luabox_close(box);
    sprig_luabox_close(NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A script that runs Lua's C code for a long time, with hooks off, or both: in a box with
 * a rule's budget (5 M instructions, 100 ms, 16 MiB) it must end with rc and a message
 * holding want. How long it took is printed; the bound asserted is generous (the
 * machine is shared), the point is that it ends: each of these ran forever before. */
typedef struct hostile {
    const char *name, *text;
    int rc;
    const char *want;
} hostile_t;

static const hostile_t hostile[] = {
    {"string.rep of an empty string", "x = string.rep('', math.maxinteger)\nassert(x == '')", 0,
     NULL},
    {"string.rep empty with empty sep", "assert(('').rep('', 1 << 62, '') == '')", 0, NULL},
    {"string.rep with an empty string and a bad separator (found by fuzz_luabox)",
     "assert(not pcall(string.rep, '', 3, {}))", 0, NULL},
    {"errors in __close inside a recursing xpcall handler (found by fuzz_luabox)",
     "local n = 0\nxpcall(function() error('x') end, function(e)\n  while n ~= 7 do\n"
     "    do local c <close> = setmetatable({}, {__close = function() error('y') end})\n"
     "      setmetatable({}, {__gc = true})\n    end\n  end\n  return e\nend)",
     -ETIMEDOUT, "runs too long"},
    {"memory refused in a loop with a full heap",
     "local t = {}\nfor i = 1, 3e5 do t[i] = i end\n"
     "while true do pcall(string.rep, 'x', 1e9) end", -ETIMEDOUT, "t.lua:3: runs too long"},
    {"table.move of 2^63 elements", "\ntable.move({}, 1, math.maxinteger - 1, 2)", -ETIMEDOUT,
     "t.lua:2: table.move: too many elements (over budget)"},
    {"table.move caught by pcall",
     "while true do\n  pcall(table.move, {}, 1, math.maxinteger - 1, 2)\nend", -ETIMEDOUT,
     "table.move: too many elements (over budget)"},
    {"table.insert with __len and C metamethods",
     "local t = setmetatable({}, {__len = function() return math.maxinteger - 1 end,\n"
     "  __index = rawget, __newindex = rawset})\ntable.insert(t, 1, 1)",
     -ETIMEDOUT, "t.lua:3: table.insert: too many elements to shift (over budget)"},
    {"table.concat over a huge range", "table.concat(setmetatable({}, {__index = function() "
     "return 'x' end}), '', 1, math.maxinteger)", -ETIMEDOUT, "(over budget)"},
    {"table.unpack over a huge range", "table.unpack({}, 1, 1 << 40)", -ETIMEDOUT,
     "t.lua:1: table.unpack: too many elements (over budget)"},
    {"xpcall whose handler loops",
     "xpcall(function() while true do end end,\n  function() while true do end end)",
     -ETIMEDOUT, "t.lua:1: runs too long (over"},
    {"xpcall of an error whose handler loops",
     "xpcall(function() error('x') end, function()\n  while true do end\nend)", -ETIMEDOUT,
     "t.lua:2: runs too long (over"},
    {"nested xpcall handlers",
     "local function h() while true do xpcall(function() while true do end end, h) end end\n"
     "xpcall(h, h)",
     -ETIMEDOUT, "runs too long"},
    {"a finalizer", "keep = setmetatable({}, {__gc = function() while true do end end})",
     -EINVAL, "t.lua:1: setmetatable: __gc is not available"},
    {"a finalizer named false first", "keep = setmetatable({}, {__gc = false})", -EINVAL,
     "__gc is not available"},
    {"a finalizer added later", "local mt = {}\nkeep = setmetatable({}, mt)\n"
     "mt.__gc = function() while true do end end\nkeep = nil", 0, NULL},
    {"__close that loops while unwinding",
     "do\n  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
     "  while true do end\nend",
     -ETIMEDOUT, "runs too long"},
    {"__close in a coroutine that dies",
     "local co = coroutine.wrap(function()\n  local x <close> = setmetatable({}, {__close = "
     "function() while true do end end})\n  while true do end\nend)\nco()",
     -ETIMEDOUT, "runs too long"},
    {"coroutines resumed forever",
     "local co = coroutine.create(function() while true do end end)\n"
     "while true do coroutine.resume(co) co = coroutine.create(function() while true do end "
     "end) end",
     -ETIMEDOUT, "runs too long"},
    {"upper of 3 MB in a loop", "local s = string.rep('a', 3000000)\nwhile true do\n"
     "  local u = s:upper()\nend", -ETIMEDOUT, "t.lua:3:"},
    {"equal 5 MB strings compared", "local a, b = string.rep('a', 5e6), string.rep('a', 5e6)\n"
     "while a == b do end", -ETIMEDOUT, "runs too long"},
    {"concatenation of big strings", "local s = string.rep('a', 4e6)\nwhile true do\n"
     "  local t = s .. s\nend", -ETIMEDOUT, "runs too long"},
    {"tonumber of 8 MB", "local s = string.rep('1', 8e6)\nwhile true do tonumber(s) end",
     -ETIMEDOUT, "(over"},
    {"string.byte of everything", "local s = string.rep('a', 8e6)\nlocal n = 0\n"
     "while true do n = n + select('#', s:byte(1, 100000)) end", -ETIMEDOUT, "over"},
    {"sort with a looping comparator", "local t = {3, 2, 1}\ntable.sort(t, function(a, b)\n"
     "  while true do end\nend)", -ETIMEDOUT, "t.lua:3: runs too long"},
};

static void t_hostile(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        const hostile_t *h = &hostile[i];
        sprig_error_t err = {{0}};
        sprig_luabox_t *box = NULL;
        sprig_luabox_opts_t o = {.insn_max = 5000000, .time_max_ms = 100, .mem_max = 16u << 20};
        assert_int_equal(sprig_luabox_open(&o, &box), 0);
        double t0 = now_s();
        int rc = run(box, h->text, &err);
        double t1 = now_s();
        sprig_luabox_close(box); /* no finalizer of the script may run here */
        double t2 = now_s();
        fprintf(stderr, "  %-45s %7.1f ms (close %.1f ms): %s\n", h->name, (t1 - t0) * 1e3,
                      (t2 - t1) * 1e3, rc == 0 ? "ok" : err.msg);
        assert_int_equal(rc, h->rc);
        if (h->want != NULL) {
            assert_non_null(strstr(err.msg, h->want));
        }
        assert_true(t2 - t0 < 3.0);
    }
}

/* The time budget alone (no instruction limit): loops of C work that counts, of big
 * allocations, and of instructions that are slow without counting (comparing long
 * strings) end within a few hundred ms of a 100 ms budget; they ran 37 s and more when
 * the clock was read every 10,000 instructions. */
static void t_time_granularity(void **state)
{
    (void)state;
    static const char *const loops[] = {
        "local s = string.rep('a', 3000000)\nwhile true do local u = s:upper() end",
        "local s = string.rep('a', 4e6)\nwhile true do local t = s .. s end",
        "local a, b = string.rep('a', 5e6), string.rep('a', 5e6)\nwhile a == b do end",
        "local s = string.rep('1', 8e6)\nwhile true do tonumber(s) end",
        "local t = {}\nfor i = 1, 2e5 do t[i] = i end\nwhile true do table.concat(t, ',') end",
        "local s = string.rep('x', 1e6)\nwhile true do s:reverse():sub(2, -2):lower() end",
    };
    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++) {
        sprig_error_t err = {{0}};
        sprig_luabox_t *box = NULL;
        sprig_luabox_opts_t o = {.insn_max = 1L << 40, .time_max_ms = 100, .mem_max = 32u << 20};
        assert_int_equal(sprig_luabox_open(&o, &box), 0);
        double t0 = now_s();
        int rc = run(box, loops[i], &err);
        double ms = (now_s() - t0) * 1e3;
        fprintf(stderr, "  loop %zu stopped after %.1f ms: %s\n", i, ms, err.msg);
        sprig_luabox_close(box);
        assert_int_equal(rc, -ETIMEDOUT);
        assert_non_null(strstr(err.msg, "(over 100 ms)"));
        assert_true(ms < 1000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_runaway_stopped),  cmocka_unit_test(t_memory_budget),
        cmocka_unit_test(t_time_budget),
        cmocka_unit_test(t_safe_libraries),   cmocka_unit_test(t_source_only),
        cmocka_unit_test(t_user_and_results), cmocka_unit_test(t_hostile),
        cmocka_unit_test(t_time_granularity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
