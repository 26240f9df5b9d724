/* Benchmark: the sandbox's pattern matcher (runtime/luabox_pattern.c) against Lua's own
 * string functions, on patterns rules and serial parsers use. The same Lua loop runs
 * CALLS times three ways:
 *   stock   a plain lua_State with the stock libraries;
 *   hooked  the same with a count hook every 1,000 instructions that does nothing, as a
 *           box has one: with any hook set, Lua 5.4 takes a slower path at every
 *           instruction (about 3 ns more here), which is the box's cost, not the matcher's;
 *   box     a box (a budget too large to matter), so the hook and the charges run as they
 *           do for a rule.
 * Each line prints calls per second and the slowdown of the functions, hooked / box (goal:
 * at most 1.5x), and of the whole loop, stock / box. Not a test: figures go in the README.
 *
 * usage: bench_pattern [CALLS]   (default 1,000,000) */
#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/err.h"
#include "sprig/luabox.h"

#define BENCH_NAME "bench_pattern"
#include "bench.h"

typedef struct kase {
    const char *name;
    const char *body; /* the loop body; s is the subject, n the count of calls */
    const char *subject;
} kase_t;

static const kase_t cases[] = {
    {"match ^(%w+)=(%d+)$", "local k, v = match(s, '^(%w+)=(%d+)$')", "temperature=42"},
    {"match %d+", "local d = match(s, '%d+')", "pump 3 ran at 1450 rpm, 61 C"},
    {"find %d+ (no match)", "local i = find(s, '%d+')", "pump ran at full speed, warm"},
    {"gsub %s -> _", "local r = gsub(s, '%s', '_')", "the quick brown fox jumps over it"},
    {"gsub ' ' -> ''", "local r = gsub(s, ' ', '')", "the quick brown fox jumps over it"},
    {"gmatch %a+ (7 words)", "for w in gmatch(s, '%a+') do end",
     "the quick brown fox jumps over it"},
    {"match CSV line", "local a, b, c = match(s, '^([^,]*),([^,]*),([^,]*)$')",
     "2026-12-01T10:00:00Z,pump-1,42.5"},
    {"find plain", "local i = find(s, 'fox', 1, true)", "the quick brown fox jumps over it"},
};

static const char prelude[] = "local s, n = ...\n"
                              "local find, match, gmatch, gsub = string.find, string.match,\n"
                              "  string.gmatch, string.gsub\n"
                              "for i = 1, n do\n";

static void make_script(char *out, size_t cap, const kase_t *k)
{
    snprintf(out, cap, "%s  %s\nend\n", prelude, k->body);
}

static void idle_hook(lua_State *L, lua_Debug *ar)
{
    (void)L, (void)ar;
}

static double run_stock(const kase_t *k, long n, bool hooked)
{
    char script[1024];
    make_script(script, sizeof(script), k);
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (hooked) {
        lua_sethook(L, idle_hook, LUA_MASKCOUNT, 1000);
    }
    if (luaL_loadbufferx(L, script, strlen(script), "=bench", "t") != LUA_OK) {
        die("stock", lua_tostring(L, -1));
    }
    lua_pushstring(L, k->subject);
    lua_pushinteger(L, n);
    double t0 = now_s();
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        die("stock", lua_tostring(L, -1));
    }
    double dt = now_s() - t0;
    lua_close(L);
    return n / dt;
}

static double run_box(const kase_t *k, long n)
{
    char script[1024];
    make_script(script, sizeof(script), k);
    sprig_luabox_t *box;
    sprig_luabox_opts_t o = {.insn_max = 1L << 50};
    sprig_error_t err;
    if (sprig_luabox_open(&o, &box) != 0) {
        die("box", "out of memory");
    }
    if (sprig_luabox_load(box, "bench", script, strlen(script), &err) != 0) {
        die("box", err.msg);
    }
    lua_State *L = sprig_luabox_state(box);
    lua_pushstring(L, k->subject);
    lua_pushinteger(L, n);
    double t0 = now_s();
    if (sprig_luabox_call(box, 2, 0, &err) != 0) {
        die("box", err.msg);
    }
    double dt = now_s() - t0;
    sprig_luabox_close(box);
    return n / dt;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n <= 0) {
        die("usage", "bench_pattern [CALLS]");
    }
    printf("%-22s %11s %11s %11s %9s %9s\n", "calls/s", "stock", "hooked", "box", "hooked/box",
           "stock/box");
    double worst = 0, sum = 0, worst_all = 0;
    size_t count = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < count; i++) {
        double stock = run_stock(&cases[i], n, false);
        double hooked = run_stock(&cases[i], n, true);
        double box = run_box(&cases[i], n);
        double slow = hooked / box;
        worst = slow > worst ? slow : worst;
        worst_all = stock / box > worst_all ? stock / box : worst_all;
        sum += slow;
        printf("%-22s %11.0f %11.0f %11.0f %9.2fx %8.2fx\n", cases[i].name, stock, hooked, box,
               slow, stock / box);
    }
    printf("slowdown of the functions (hooked/box): mean %.2fx, worst %.2fx (goal <= 1.5x); "
           "of the whole loop (stock/box): worst %.2fx\n",
           sum / (double)count, worst, worst_all);
    return 0;
}
