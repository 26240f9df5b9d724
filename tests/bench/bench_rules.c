/* Benchmark: a threshold rule (hysteresis, writes `active` when it flips) driven by
 * 1,000,000 point changes, three ways in one run:
 *   raw    lua_pcall of the same Lua function in a plain lua_State, with an event table
 *          filled in place for each call (the floor: what calling Lua costs at all);
 *   bus    each change published on the bus, as the write path publishes it: the rule
 *          engine's own cost (matching, the event table, the budgeted call);
 *   write  each change written through sprig_core_write (check, merge, hashes, store
 *          batch, bus, rule), until the last batch is durable: end to end.
 * Prints invocations per second of each and the ratio bus/raw (goal: at least 1/3).
 * Not a test: figures go in the README.
 *
 * usage: bench_rules [CHANGES [bus]]  ("bus": skip the write run, for profiling) */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sprig/core.h"
#include "sprig/err.h"
#include "sprig/rules.h"

#define BENCH_NAME "bench_rules"
#include "bench.h"

#define FLIP_EVERY 100 /* the value crosses the band every 100 changes */

static const char rule_src[] =
    "local HIGH, LOW = 80, 75\n"
    "local hot = false\n"
    "local function threshold(ev)\n"
    "  if ev.value >= HIGH and not hot then hot = true; active(true)\n"
    "  elseif ev.value <= LOW and hot then hot = false; active(false) end\n"
    "end\n"
    "on({node = 'temp', point = 'value'}, threshold)\n";

/* The same function for the raw run; active() only counts. */
static const char raw_src[] = "local HIGH, LOW = 80, 75\n"
                              "local hot = false\n"
                              "flips = 0\n"
                              "local function active(v) flips = flips + 1 end\n"
                              "return function(ev)\n"
                              "  if ev.value >= HIGH and not hot then hot = true; active(true)\n"
                              "  elseif ev.value <= LOW and hot then hot = false; active(false) end\n"
                              "end\n";

static double sample(long i)
{
    return (i / FLIP_EVERY) % 2 == 0 ? 70.0 + (double)(i % 7) : 85.0 + (double)(i % 5);
}

static double run_raw(long n)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadstring(L, raw_src) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        die("raw", lua_tostring(L, -1));
    }
    int fn = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 9);
    int ev = luaL_ref(L, LUA_REGISTRYINDEX);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
        lua_rawgeti(L, LUA_REGISTRYINDEX, ev);
        lua_pushnumber(L, sample(i));
        lua_setfield(L, -2, "value");
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            die("raw", lua_tostring(L, -1));
        }
    }
    double dt = now_s() - t0;
    lua_getglobal(L, "flips");
    printf("raw lua_pcall:      %ld calls in %.3f s = %.0f calls/s (%lld flips)\n", n, dt, n / dt,
           (long long)lua_tointeger(L, -1));
    lua_close(L);
    return n / dt;
}

static bool durable;

static void on_durable(uint64_t batch, int status, void *arg)
{
    (void)batch, (void)status, (void)arg;
    durable = true;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n <= 0) {
        die("usage", "bench_rules [CHANGES]");
    }
    char dir[] = "/tmp/sprig-bench-rules-XXXXXX", db[64];
    if (mkdtemp(dir) == NULL) {
        die("mkdtemp", "cannot make a scratch folder");
    }
    snprintf(db, sizeof(db), "%s/b.db", dir);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sprig_core_t *c;
    sprig_error_t err;
    sprig_core_opts_t co = {.db_path = db};
    if (sprig_core_open(&loop, &co, &c, &err) != 0) {
        die("core", err.msg);
    }
    const char *root = sprig_core_root_id(c);
    sprig_point_t rp[] = {{.type = "script", .text = rule_src}};
    if (sprig_core_create(c, "temp", "group", root, NULL, 0, NULL, NULL, &err) != 0 ||
        sprig_core_create(c, "threshold", "rule", root, rp, 1, NULL, NULL, &err) != 0) {
        die("tree", err.msg);
    }
    sprig_rules_t *rules;
    if (sprig_rules_start(c, NULL, &rules) != 0) {
        die("rules", "out of memory");
    }
    sprig_rules_settle(rules);
    sprig_rules_stats_t st0, st1;
    sprig_rules_stats(rules, &st0);
    if (st0.loaded != 1) {
        die("rules", "the threshold rule did not load");
    }

    double raw = run_raw(n);

    /* bus: the event the write path would publish, published directly. */
    sprig_point_t p = {.type = "value", .key = "0", .text = "", .origin = ""};
    sprig_event_t ev = {.node = "temp", .node_type = "group", .point = &p};
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        p.value = sample(i);
        p.time = i + 1;
        sprig_bus_publish(sprig_core_bus(c), &ev);
        if (i % 65536 == 0) {
            uv_run(&loop, UV_RUN_NOWAIT); /* let the store take the flips' batches */
        }
    }
    double bus_dt = now_s() - t0;
    sprig_rules_stats(rules, &st1);
    double bus = n / bus_dt;
    printf("rule via bus:       %ld invocations in %.3f s = %.0f invocations/s (%llu runs)\n", n,
           bus_dt, bus, (unsigned long long)(st1.runs - st0.runs));

    /* write: the full write path, until durable. */
    bool skip = argc > 2 && strcmp(argv[2], "bus") == 0;
    t0 = now_s();
    sprig_point_t wp = {.type = "value"};
    for (long i = 0; i < n && !skip; i++) {
        wp.value = sample(i);
        if (sprig_core_write(c, "temp", &wp, 1, NULL, &err) != 0) {
            die("write", err.msg);
        }
        if (i % 4096 == 0) {
            uv_run(&loop, UV_RUN_NOWAIT);
        }
    }
    durable = false;
    sprig_core_when_durable(c, sprig_core_batch(c), on_durable, NULL);
    for (int i = 0; i < 100000 && !durable; i++) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    double w_dt = now_s() - t0;
    sprig_rules_stats_t st2;
    sprig_rules_stats(rules, &st2);
    printf("rule via write:     %ld writes+invocations in %.3f s = %.0f /s, durable (%llu runs)\n",
           n, w_dt, n / w_dt, (unsigned long long)(st2.runs - st1.runs));
    printf("ratio bus/raw:      %.2f (goal >= 0.33)\n", bus / raw);
    if (st2.errors != 0) {
        die("rules", "the rule reported errors");
    }

    sprig_rules_stop(rules);
    sprig_core_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    remove_db(db);
    rmdir(dir);
    return 0;
}
