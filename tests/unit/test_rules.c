/* Unit tests of the rule engine (rules.h) on a real core over a temporary database, with
 * the shipped schema and a simulated clock: each protection of the sandbox stops what it
 * promises while other rules go on, errors name the line, a rule's writes go through the
 * validated write path, reloads keep the last good version and the state, timers and
 * schedules fire on time, chains of rules are bounded, and state survives a restart. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "sprig/rules.h"
#include "testutil.h"

#define T0 (1767571200LL * 1000000000) /* 2026-01-05T00:00:00Z, a Monday */
#define SEC 1000000000LL

typedef struct fx {
    char dir[PATH_MAX];
    char path[PATH_MAX];
    uv_loop_t loop;
    sprig_core_t *c;
    sprig_schema_t *schema;
    sprig_rules_t *e;
    int64_t now;
    int logs;
} fx_t;

static int64_t fx_clock(void *arg)
{
    return ((fx_t *)arg)->now;
}

static void fx_log(const char *rule, int warn, const char *msg, void *arg)
{
    (void)rule, (void)warn, (void)msg;
    ((fx_t *)arg)->logs++;
}

static void start_engine(fx_t *f)
{
    sprig_rules_opts_t o = {.clock = fx_clock,
                            .clock_arg = f,
                            .log = fx_log,
                            .log_arg = f,
                            .insn_max = 2000000,
                            .mem_max = 4u << 20};
    assert_int_equal(sprig_rules_start(f->c, &o, &f->e), 0);
    sprig_rules_settle(f->e);
}

static void create(fx_t *f, const char *id, const char *type, const char *parent)
{
    sprig_error_t err = {{0}};
    int rc = sprig_core_create(f->c, id, type, parent != NULL ? parent : sprig_core_root_id(f->c),
                               NULL, 0, NULL, NULL, &err);
    if (rc != 0) {
        print_message("%s\n", err.msg);
    }
    assert_int_equal(rc, 0);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->now = T0;
    setenv("TZ", "UTC", 1);
    tzset();
    assert_int_equal(tu_tmpdir(f->dir), 0);
    tu_path(f->path, f->dir, "rules.db");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    sprig_core_opts_t o = {.db_path = f->path, .wall = fx_clock, .wall_arg = f};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_open(&f->loop, &o, &f->c, &err), 0);
    char shipped[PATH_MAX];
    const char *dirs[1] = {tu_source_path(shipped, "schema")};
    assert_int_equal(sprig_schema_load(dirs, 1, &f->schema, NULL, NULL), 0);
    sprig_core_set_schema(f->c, f->schema);
    create(f, "plant", "group", NULL);
    create(f, "out", "group", "plant");
    create(f, "temp", "signalGenerator", "plant");
    start_engine(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    sprig_rules_stop(f->e);
    assert_int_equal(sprig_core_close(f->c), 0);
    assert_int_equal(tu_loop_finish(&f->loop), 0);
    sprig_schema_free(f->schema);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

/* Adds rule `id` with source src (file point `id`.lua) and loads it. */
static void add_rule(fx_t *f, const char *id, const char *src)
{
    char file[80];
    snprintf(file, sizeof(file), "%s.lua", id);
    sprig_point_t pts[] = {{.type = "script", .text = src}, {.type = "file", .text = file}};
    sprig_error_t err = {{0}};
    assert_int_equal(
        sprig_core_create(f->c, id, "rule", sprig_core_root_id(f->c), pts, 2, NULL, NULL, &err), 0);
    sprig_rules_settle(f->e);
}

static void edit_rule(fx_t *f, const char *id, const char *src)
{
    sprig_point_t p = {.type = "script", .text = src};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_write(f->c, id, &p, 1, NULL, &err), 0);
    sprig_rules_settle(f->e);
}

/* Writes temp's measured value, as its driver would. */
static void report(fx_t *f, double v)
{
    sprig_point_t p = {.type = "value", .value = v, .origin = "temp"};
    sprig_error_t err = {{0}};
    f->now += SEC / 10;
    assert_int_equal(sprig_core_write(f->c, "temp", &p, 1, NULL, &err), 0);
    sprig_rules_settle(f->e);
}

static const sprig_point_t *point(fx_t *f, const char *node, const char *type)
{
    sprig_tree_t *t = sprig_core_tree(f->c);
    sprig_node_t *n = sprig_tree_node(t, node);
    const sprig_point_t *p = n != NULL ? sprig_tree_point(t, n, type, "0") : NULL;
    return p != NULL && !p->tombstone ? p : NULL;
}

static double value(fx_t *f, const char *node, const char *type)
{
    const sprig_point_t *p = point(f, node, type);
    return p != NULL ? p->value : -1;
}

static const char *error_of(fx_t *f, const char *rule)
{
    const sprig_point_t *p = point(f, rule, "error");
    return p != NULL ? p->text : "";
}

static void assert_contains(const char *s, const char *part)
{
    if (strstr(s, part) == NULL) {
        print_message("\"%s\" does not contain \"%s\"\n", s, part);
        fail();
    }
}

static const char counter[] = "on({node='temp', point='value'}, function(ev)\n"
                              "  state.n = (state.n or 0) + 1\n"
                              "  set('out', 'n', state.n)\n"
                              "end)\n";

/* --- protections -------------------------------------------------------------------- */

static void t_runaway_stopped(void **state)
{
    fx_t *f = *state;
    add_rule(f, "count", counter);
    add_rule(f, "spin", "on({node='temp', point='value'}, function()\n  while true do end\nend)\n");
    add_rule(f, "spin2",
             "on({node='temp', point='value'}, function()\n"
             "  while true do pcall(function() while true do end end) end\n"
             "end)\n");
    report(f, 1);
    assert_contains(error_of(f, "spin"), "stopped: spin.lua:2: runs too long");
    assert_contains(error_of(f, "spin2"), "stopped: spin2.lua:2: runs too long");
    assert_int_equal((int)value(f, "out", "n"), 1);
    /* The daemon goes on: the next points reach the other rule; the stopped ones stay down. */
    report(f, 2);
    report(f, 3);
    assert_int_equal((int)value(f, "out", "n"), 3);
    sprig_rules_stats_t st;
    sprig_rules_stats(f->e, &st);
    assert_int_equal(st.loaded, 1);
    assert_int_equal(st.errors, 2);
    /* A new script starts it again. */
    edit_rule(f, "spin", "on({node='temp', point='value'}, function() set('out', 's', 1) end)");
    assert_string_equal(error_of(f, "spin"), "");
    report(f, 4);
    assert_int_equal((int)value(f, "out", "s"), 1);
}

static void t_time_budget(void **state)
{
    fx_t *f = *state;
    sprig_rules_stop(f->e);
    sprig_rules_opts_t o = {.clock = fx_clock,
                            .clock_arg = f,
                            .log = fx_log,
                            .log_arg = f,
                            .insn_max = 1L << 40,
                            .time_max_ms = 30};
    assert_int_equal(sprig_rules_start(f->c, &o, &f->e), 0);
    add_rule(f, "slow",
             "on({node='temp'}, function()\n  local x = 0\n  while true do x = x + 1 end\nend)");
    report(f, 1);
    assert_contains(error_of(f, "slow"), "runs too long (over 30 ms)");
}

static void t_memory_bomb(void **state)
{
    fx_t *f = *state;
    add_rule(f, "count", counter);
    add_rule(f, "bomb",
             "on({node='temp', point='value'}, function()\n"
             "  local t = {}\n"
             "  while true do t[#t + 1] = string.rep('x', 1 << 16) .. #t end\n"
             "end)\n");
    report(f, 1);
    assert_contains(error_of(f, "bomb"), "stopped: bomb.lua:3: not enough memory");
    report(f, 2);
    assert_int_equal((int)value(f, "out", "n"), 2);
}

static void t_sandbox(void **state)
{
    fx_t *f = *state;
    static const struct {
        const char *src, *says;
    } cases[] = {
        {"os.execute('touch /tmp/sprig-pwned')", "os.execute is not available in a rule"},
        {"io.open('/etc/passwd')", "io is not available in a rule"},
        {"require('os')", "require is not available in a rule"},
        {"assert(load('\\27Lua\\84\\0\\25\\147'))", "load: bytecode (a binary chunk) is refused"},
        {"assert(load('return 1', 'x', 'b'))", "load: bytecode (a binary chunk) is refused"},
        {"debug.sethook(function() end, '', 1)", "debug is not available in a rule"},
        {"dofile('/etc/passwd')", "dofile is not available in a rule"},
        {"package.loadlib('libc.so.6', 'system')", "package is not available in a rule"},
        {"string.dump(tostring)", "attempt to call a nil value (field 'dump')"},
        {"print('x')", "print is not available in a rule (use log(...))"},
        {"collectgarbage('stop')", "collectgarbage is not available in a rule"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char id[16], src[256];
        snprintf(id, sizeof(id), "esc%zu", i);
        snprintf(src, sizeof(src), "local a = 1\n%s\n", cases[i].src);
        add_rule(f, id, src);
        char want[128];
        snprintf(want, sizeof(want), "%s.lua:2: %s", id, cases[i].says);
        assert_contains(error_of(f, id), want);
    }
    sprig_rules_stats_t st;
    sprig_rules_stats(f->e, &st);
    assert_int_equal(st.loaded, 0);
    assert_int_equal(access("/tmp/sprig-pwned", F_OK), -1);
    /* Loading source text stays possible, inside the same budgets. */
    add_rule(f, "okload", "local f = assert(load('return 6 * 7'))\nset('out', 'answer', f())\n");
    assert_string_equal(error_of(f, "okload"), "");
    assert_int_equal((int)value(f, "out", "answer"), 42);
}

static void t_syntax_error_line(void **state)
{
    fx_t *f = *state;
    add_rule(f, "syn", "local a = 1\nlocal b = 2\nlocal c = = 3\n");
    assert_contains(error_of(f, "syn"), "syn.lua:3:");
    assert_contains(error_of(f, "syn"), "unexpected symbol near '='");
}

static void t_schema_refused_write(void **state)
{
    fx_t *f = *state;
    add_rule(f, "bad",
             "on({node='temp', point='value'}, function()\n"
             "  set('temp', 'sampleRate', 5000)\n"
             "end)\n");
    report(f, 1);
    const char *e = error_of(f, "bad");
    assert_contains(e, "bad.lua:2: set: ");
    assert_contains(e, "sampleRate");
    assert_contains(e, "5000");
    assert_true(point(f, "temp", "sampleRate") == NULL || value(f, "temp", "sampleRate") != 5000);
    /* A rule may not write a measured value: only the node's driver may. */
    add_rule(f, "meas",
             "on({node='temp', point='value'}, function()\n"
             "  set('temp', 'value', 1)\n"
             "end)\n");
    report(f, 2);
    assert_contains(error_of(f, "meas"), "meas.lua:2: set: ");
    assert_int_equal((int)value(f, "temp", "value"), 2);
}

/* A rule writes data, not the system (DESIGN.md section 7): it may not change any rule's
 * script, file or disabled (its own neither), a sync node's connection, nor a serial
 * parser (code). Each refusal
 * names the node, the point and the rule, and nothing is written. */
static void t_rule_cannot_change_system(void **state)
{
    fx_t *f = *state;
    sprig_point_t uri = {.type = "uri", .text = "mqtt://127.0.0.1:1883"};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_create(f->c, "link", "sync", sprig_core_root_id(f->c), &uri, 1,
                                       NULL, NULL, &err),
                     0);
    sprig_point_t port = {.type = "port", .text = "/dev/null"};
    assert_int_equal(sprig_core_create(f->c, "ser", "serial", sprig_core_root_id(f->c), &port, 1,
                                       NULL, NULL, &err),
                     0);
    add_rule(f, "victim", counter);
    static const struct {
        const char *node, *type, *value;
    } writes[] = {
        {"victim", "script", "'on({node=\"temp\"}, function() end)'"},
        {"victim", "file", "'other.lua'"},
        {"victim", "disabled", "true"},
        {"attacker", "script", "''"},
        {"attacker", "disabled", "true"},
        {"link", "uri", "'mqtt://evil:1883'"},
        {"link", "deviceId", "'other'"},
        {"link", "passwordFile", "'/etc/shadow'"},
        {"link", "disabled", "true"},
        {"ser", "parser", "'return function() end'"},
    };
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        char src[256];
        snprintf(src, sizeof(src),
                 "on({node='temp', point='value'}, function()\n"
                 "  set('%s', '%s', %s)\n"
                 "end)\n",
                 writes[i].node, writes[i].type, writes[i].value);
        if (i == 0) {
            add_rule(f, "attacker", src);
        }
        else {
            edit_rule(f, "attacker", src);
        }
        const char *before = point(f, writes[i].node, writes[i].type) != NULL
                                 ? point(f, writes[i].node, writes[i].type)->text
                                 : NULL;
        char *kept = before != NULL ? strdup(before) : NULL;
        report(f, (double)i);
        char want[160];
        snprintf(want, sizeof(want),
                 "attacker.lua:2: set: node %s: point \"%s\" is changed by people only, not by "
                 "rule \"attacker\"",
                 writes[i].node, writes[i].type);
        assert_contains(error_of(f, "attacker"), want);
        const sprig_point_t *now = point(f, writes[i].node, writes[i].type);
        if (kept != NULL) {
            assert_non_null(now);
            assert_string_equal(now->text, kept);
        }
        else if (strcmp(writes[i].type, "disabled") == 0) {
            assert_true(now == NULL || now->value == 0);
        }
        else {
            assert_null(now);
        }
        free(kept);
    }
    /* The victim still runs its own code. */
    assert_string_equal(point(f, "victim", "script")->text, counter);
    /* A person may. */
    sprig_point_t off = {.type = "disabled", .value = 1};
    assert_int_equal(sprig_core_write(f->c, "link", &off, 1, NULL, &err), 0);
}

/* A run error is cleared by the next good run; it does not stop the rule. */
static void t_run_error_clears(void **state)
{
    fx_t *f = *state;
    add_rule(f, "flaky",
             "on({node='temp', point='value'}, function(ev)\n"
             "  if ev.value < 0 then error('negative: ' .. ev.value) end\n"
             "  set('out', 'v', ev.value)\n"
             "end)\n");
    report(f, -1);
    assert_contains(error_of(f, "flaky"), "flaky.lua:2: negative: -1");
    report(f, 5);
    assert_string_equal(error_of(f, "flaky"), "");
    assert_int_equal((int)value(f, "out", "v"), 5);
}

/* --- reloads and state -------------------------------------------------------------- */

static void t_reload(void **state)
{
    fx_t *f = *state;
    add_rule(f, "r", counter);
    report(f, 1);
    report(f, 1);
    assert_int_equal((int)value(f, "out", "n"), 2);
    /* A broken edit: the error names the line, the old version runs on. */
    edit_rule(f, "r", "on({node='temp'}, function()\n  set('out', 'n', \nend)\n");
    assert_contains(error_of(f, "r"), "r.lua:3:");
    report(f, 1);
    assert_int_equal((int)value(f, "out", "n"), 3);
    /* An edit whose top level raises is refused the same way. */
    edit_rule(f, "r", "error('not today')");
    assert_contains(error_of(f, "r"), "r.lua:1: not today");
    report(f, 1);
    assert_int_equal((int)value(f, "out", "n"), 4);
    /* The running version saved again (the refused edit taken back): no error left. */
    edit_rule(f, "r", counter);
    assert_string_equal(error_of(f, "r"), "");
    report(f, 1);
    assert_int_equal((int)value(f, "out", "n"), 5);
    /* A good edit takes over, with the state of the old one. */
    edit_rule(f, "r",
              "on({node='temp', point='value'}, function()\n"
              "  state.n = state.n + 1\n"
              "  set('out', 'n', state.n + 1000)\n"
              "end)\n");
    assert_string_equal(error_of(f, "r"), "");
    report(f, 1);
    assert_int_equal((int)value(f, "out", "n"), 1006);
    /* Disabled stops it; enabled starts it again. */
    sprig_point_t d = {.type = "disabled", .value = 1};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_write(f->c, "r", &d, 1, NULL, &err), 0);
    sprig_rules_settle(f->e);
    report(f, 1);
    assert_int_equal((int)value(f, "out", "n"), 1006);
    d.value = 0;
    assert_int_equal(sprig_core_write(f->c, "r", &d, 1, NULL, &err), 0);
    sprig_rules_settle(f->e);
    report(f, 1);
    assert_int_equal((int)value(f, "out", "n"), 1007);
}

static void t_state_survives_restart(void **state)
{
    fx_t *f = *state;
    add_rule(f, "r", counter);
    add_rule(f, "kept",
             "state.list = state.list or {}\n"
             "on({node='temp', point='value'}, function(ev)\n"
             "  table.insert(state.list, {v = ev.value, s = 'a\"b\\n\\0c'})\n"
             "  state.f = 0.1; state.big = 2^60; state.t = true\n"
             "end)\n");
    report(f, 1);
    report(f, 2.5);
    sprig_rules_stop(f->e); /* saves state */
    f->e = NULL;
    assert_non_null(point(f, "r", "state"));
    assert_int_equal((int)value(f, "r", "runs"), 2);
    start_engine(f);
    report(f, 1);
    assert_int_equal((int)value(f, "out", "n"), 3);
    add_rule(f, "check", "on({node='temp', point='value'}, function() end)\n");
    /* The other rule's state reads back exactly. */
    edit_rule(f, "kept",
              "assert(#state.list == 3, #state.list)\n"
              "assert(state.list[2].v == 2.5 and state.list[1].s == 'a\"b\\n\\0c')\n"
              "assert(state.f == 0.1 and math.type(state.big) == 'float' and state.t)\n"
              "set('out', 'kept', 1)\n");
    assert_string_equal(error_of(f, "kept"), "");
    assert_int_equal((int)value(f, "out", "kept"), 1);
}

static void t_state_big(void **state)
{
    fx_t *f = *state;
    add_rule(f, "big",
             "state.b = {}\n"
             "for i = 1, 2000 do state.b[i] = i * 0.1 end\n"
             "state.s = {}\n"
             "for i = 1, 100 do state.s['k' .. i] = string.rep('y', 50) end\n");
    sprig_rules_save(f->e);
    assert_string_equal(error_of(f, "big"), "");
    edit_rule(f, "big",
              "assert(#state.b == 2000 and state.b[2000] == 200.0)\n"
              "assert(state.s.k77 == string.rep('y', 50))\n"
              "state.huge = string.rep('z', 70000)\n");
    assert_string_equal(error_of(f, "big"), "");
    sprig_rules_save(f->e);
    assert_contains(error_of(f, "big"), "state: over 65536 bytes serialized");
}

static void t_state_not_keepable(void **state)
{
    fx_t *f = *state;
    add_rule(f, "fn", "state.cb = tostring\n");
    sprig_rules_save(f->e);
    assert_contains(error_of(f, "fn"), "state.cb: a function cannot be kept in state");
}

/* --- timers ------------------------------------------------------------------------- */

static void advance_to(fx_t *f, int64_t target)
{
    for (int i = 0; i < 100000; i++) {
        int64_t due = sprig_rules_next_due(f->e);
        if (due > target) {
            break;
        }
        f->now = due > f->now ? due : f->now;
        sprig_rules_advance(f->e);
    }
    f->now = target;
    sprig_rules_advance(f->e);
}

static void t_timers(void **state)
{
    fx_t *f = *state;
    add_rule(f, "tick",
             "local n = 0\n"
             "every(1000, function() n = n + 1; set('out', 'ticks', n) end)\n"
             "after(2500, function() set('out', 'once', now()) end)\n"
             "local h = every(100, function() set('out', 'never', 1) end)\n"
             "cancel(h); cancel(h)\n"
             "at({time='07:30', days={'tue'}}, function() set('out', 'at', now()) end)\n");
    assert_string_equal(error_of(f, "tick"), "");
    advance_to(f, T0 + 10 * SEC);
    assert_int_equal((int)value(f, "out", "ticks"), 10);
    assert_true(value(f, "out", "once") == (double)(T0 + 2500000000LL) / 1e9);
    assert_null(point(f, "out", "never"));
    assert_null(point(f, "out", "at"));
    /* Monday 07:30 is not on the list; Tuesday 07:30 is. */
    advance_to(f, T0 + 86400 * SEC);
    assert_null(point(f, "out", "at"));
    advance_to(f, T0 + (86400 + 7 * 3600 + 1800) * SEC);
    assert_true(value(f, "out", "at") == (double)(T0 + (86400 + 7 * 3600 + 1800) * SEC) / 1e9);
    /* Bad timer arguments name the function and the value. */
    add_rule(f, "badt", "every(5, function() end)");
    assert_contains(error_of(f, "badt"), "every: the time 5 ms must be 10 to");
    add_rule(f, "bada", "at('25:00', function() end)");
    assert_contains(error_of(f, "bada"), "at: the time 25:00 must be");
    add_rule(f, "badd", "at({time='07:00', days={'someday'}}, function() end)");
    assert_contains(error_of(f, "badd"), "at: day someday is not one of");
}

/* --- reading, writing, chains ------------------------------------------------------- */

static void t_read_api(void **state)
{
    fx_t *f = *state;
    create(f, "t2", "signalGenerator", "plant");
    sprig_point_t p = {.type = "signalType", .text = "square"};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_write(f->c, "t2", &p, 1, NULL, &err), 0);
    report(f, 7);
    add_rule(f, "rd",
             "local v, t = get('temp', 'value')\n"
             "assert(v == 7 and t == '', 'get')\n"
             "assert(get('temp', 'nothing') == nil and get('nobody', 'value') == nil)\n"
             "assert(nodetype('temp') == 'signalGenerator' and nodetype('x') == nil)\n"
             "local c = children('plant')\n"
             "assert(#c == 3 and c[1] == 'out', #c)\n"
             "assert(#children('plant', 'signalGenerator') == 2)\n"
             "assert(parent('temp') == 'plant')\n"
             "local f = find('signalGenerator', {signalType = 'square'})\n"
             "assert(#f == 1 and f[1] == 't2')\n"
             "assert(#find('signalGenerator') == 2)\n"
             "assert(rule.id == 'rd' and rule.file == 'rd.lua')\n"
             "assert(os.time() == 1767571200)\n"
             "set('out', 'ok', true)\n");
    assert_string_equal(error_of(f, "rd"), "");
    assert_int_equal((int)value(f, "out", "ok"), 1);
    add_rule(f, "badget", "get(42, 'value')");
    assert_contains(error_of(f, "badget"), "get: the node id must be a string (got number)");
    add_rule(f, "badon", "on({nod='temp'}, function() end)");
    assert_contains(error_of(f, "badon"), "on: unknown filter field nod");
}

/* ev is read on demand: every field while the handler runs, none after; ev:copy() and
 * pairs give a plain table to keep. */
static void t_event_fields(void **state)
{
    fx_t *f = *state;
    add_rule(f, "ev",
             "local kept\n"
             "on({node='temp', point='value'}, function(ev)\n"
             "  if kept then\n"
             "    local ok, err = pcall(function() return kept.value end)\n"
             "    assert(not ok and err:find('only readable while its handler runs'), err)\n"
             "  end\n"
             "  kept = ev\n"
             "  assert(ev.node == 'temp' and ev.type == 'signalGenerator')\n"
             "  assert(ev.point == 'value' and ev.key == '0' and ev.text == '')\n"
             "  assert(ev.origin == 'temp' and ev.deleted == false)\n"
             "  assert(ev.time == now() and ev.nothing == nil)\n"
             "  local c = ev:copy()\n"
             "  local n = 0\n"
             "  for k, v in pairs(ev) do n = n + 1; assert(c[k] == v, k) end\n"
             "  assert(n == 9, n)\n"
             "  state.last = c\n"
             "  set('out', 'v', ev.value)\n"
             "end)\n");
    report(f, 3);
    report(f, 4);
    assert_string_equal(error_of(f, "ev"), "");
    assert_int_equal((int)value(f, "out", "v"), 4);
    sprig_rules_save(f->e);
    assert_string_equal(error_of(f, "ev"), "");
    add_rule(f, "evstate", "on({node='temp', point='value'}, function(ev) state.ev = ev end)");
    report(f, 5);
    sprig_rules_save(f->e);
    assert_contains(error_of(f, "evstate"), "state.ev: a userdata cannot be kept in state");
}

static void t_set_skips_same_and_own_writes(void **state)
{
    fx_t *f = *state;
    add_rule(f, "own",
             "on({node='out'}, function(ev)\n"
             "  state.seen = (state.seen or 0) + 1\n"
             "  set('out', 'echo', 1)\n"
             "  set('out', 'seen', state.seen)\n"
             "end)\n");
    sprig_point_t p = {.type = "x", .value = 1};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_write(f->c, "out", &p, 1, NULL, &err), 0);
    /* Its own writes do not wake it: one outside change, one run. */
    assert_int_equal((int)value(f, "out", "seen"), 1);
    int64_t t = point(f, "out", "echo")->time;
    p.value = 2;
    assert_int_equal(sprig_core_write(f->c, "out", &p, 1, NULL, &err), 0);
    assert_int_equal((int)value(f, "out", "seen"), 2);
    /* echo = 1 again is not written again. */
    assert_true(point(f, "out", "echo")->time == t);
    assert_string_equal(point(f, "out", "echo")->origin, "own");
}

static void t_chain_bounded(void **state)
{
    fx_t *f = *state;
    add_rule(f, "ping",
             "on({node='out', point='b'}, function(ev) set('out', 'a', ev.value + 1) end)");
    add_rule(f, "pong",
             "on({node='out', point='a'}, function(ev) set('out', 'b', ev.value + 1) end)");
    sprig_point_t p = {.type = "a", .value = 0};
    sprig_error_t err = {{0}};
    assert_int_equal(sprig_core_write(f->c, "out", &p, 1, NULL, &err), 0);
    double a = value(f, "out", "a"), b = value(f, "out", "b");
    assert_true(a > 10 && a < 40 && b > 10 && b < 40);
    const char *e1 = error_of(f, "ping"), *e2 = error_of(f, "pong");
    assert_true(strstr(e1, "deeper than 16") != NULL || strstr(e2, "deeper than 16") != NULL);
    /* Chains on another rule's active point. */
    add_rule(f, "hot", "on({node='temp', point='value'}, function(ev) active(ev.value > 25) end)");
    add_rule(f, "fan",
             "on({node='hot', point='active'}, function(ev)\n"
             "  set('out', 'fan', ev.value)\n"
             "end)");
    report(f, 30);
    assert_int_equal((int)value(f, "out", "fan"), 1);
    report(f, 20);
    assert_int_equal((int)value(f, "out", "fan"), 0);
}

static void t_notify(void **state)
{
    fx_t *f = *state;
    add_rule(f, "alarm",
             "on({node='temp', point='value'}, function(ev)\n"
             "  notify('too hot: ' .. ev.value, {severity = 'alarm', subject = 'T'})\n"
             "end)\n");
    for (int i = 0; i < 10; i++) {
        report(f, 30 + i);
    }
    assert_string_equal(error_of(f, "alarm"), "");
    report(f, 99);
    assert_contains(error_of(f, "alarm"), "notify: more than 10 notifications in a minute");
    int found = 0;
    sprig_tree_t *t = sprig_core_tree(f->c);
    for (sprig_edge_t *e = sprig_node_children(sprig_tree_root(t)); e != NULL;
         e = sprig_edge_next_child(e)) {
        sprig_node_t *n = sprig_edge_down(e);
        if (strcmp(sprig_node_type(n), "notification") == 0) {
            found++;
            assert_string_equal(point(f, sprig_node_id(n), "source")->text, "alarm");
            assert_string_equal(point(f, sprig_node_id(n), "severity")->text, "alarm");
        }
    }
    assert_int_equal(found, 10);
    f->now += 61 * SEC;
    report(f, 31);
    assert_string_equal(error_of(f, "alarm"), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_runaway_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(t_time_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(t_memory_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(t_sandbox, setup, teardown),
        cmocka_unit_test_setup_teardown(t_syntax_error_line, setup, teardown),
        cmocka_unit_test_setup_teardown(t_schema_refused_write, setup, teardown),
        cmocka_unit_test_setup_teardown(t_rule_cannot_change_system, setup, teardown),
        cmocka_unit_test_setup_teardown(t_run_error_clears, setup, teardown),
        cmocka_unit_test_setup_teardown(t_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(t_state_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(t_state_big, setup, teardown),
        cmocka_unit_test_setup_teardown(t_state_not_keepable, setup, teardown),
        cmocka_unit_test_setup_teardown(t_timers, setup, teardown),
        cmocka_unit_test_setup_teardown(t_read_api, setup, teardown),
        cmocka_unit_test_setup_teardown(t_event_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(t_set_skips_same_and_own_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(t_chain_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(t_notify, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
