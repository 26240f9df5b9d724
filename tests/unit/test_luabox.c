/* Unit tests of the Lua sandbox (luabox.h): the budgets stop what they promise to stop,
 * a script's own pcall cannot swallow the stop, only safe libraries are there, source text
 * only, errors name the line, and a box is usable again after a stopped call. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_runaway_stopped),  cmocka_unit_test(t_memory_budget),
        cmocka_unit_test(t_time_budget),
        cmocka_unit_test(t_safe_libraries),   cmocka_unit_test(t_source_only),
        cmocka_unit_test(t_user_and_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
