/* `sprig rule test RULE.lua [--fixture TREE.json] [--steps STEPS.lua]`: runs one rule
 * offline against a tree in a scratch database, with simulated time, printing what the
 * rule writes and logs; the steps file drives point changes and time and checks the
 * outcome with expect (scripts/README.md, "Testing a rule offline").
 * `sprig rule ls|show|enable|disable`: the rules of a running daemon, read and switched
 * through its HTTP API (cli_http.c), as their points say (scripts/README.md). */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_http.h"
#include "sprig/core.h"
#include "sprig/err.h"
#include "sprig/exchange.h"
#include "sprig/json.h"
#include "sprig/log.h"
#include "sprig/luabox.h"
#include "sprig/rules.h"
#include "sprig/util.h"

#define START_NS (1767571200LL * 1000000000) /* 2026-01-05T00:00:00Z, a Monday */
#define FILE_MAX (1 << 20)

typedef struct rt {
    uv_loop_t loop;
    sprig_core_t *core;
    sprig_rules_t *rules;
    sprig_schema_t *schema;
    int64_t now;
    int64_t start; /* the simulated time the test began at */
    char id[SPRIG_ID_MAX + 1];
    const char *steps_name;
    bool quiet;
    long writes;
    int checks, failed;
    char dir[64];
} rt_t;

static rt_t *rt_of(lua_State *L)
{
    return sprig_luabox_user(L);
}

static void test_usage(FILE *f)
{
    fputs("usage: sprig rule test RULE.lua [--fixture TREE.json] [--steps STEPS.lua]\n"
          "                       [--schema DIR] [--quiet]\n"
          "\n"
          "Runs a rule offline: against a tree in a scratch database (a root device \"root\"\n"
          "and the rule, or TREE.json, a document written by `sprig export`), with simulated\n"
          "time starting at 2026-01-05T00:00:00Z (a Monday; local time is UTC), or with a\n"
          "fixture on the second after its newest point. Prints every\n"
          "point the rule writes and every line it logs. STEPS.lua drives it: node{...},\n"
          "set, report, advance, clock, get, expect, expect_error, expect_notified, writes\n"
          "(see scripts/README.md).\n"
          "\n"
          "Exits 0 when every expect holds, 1 when one fails or the rule does not load,\n"
          "2 on bad arguments or files.\n"
          "\n"
          "flags:\n"
          "  --fixture FILE   the tree to start from (JSON, as `sprig export` writes it)\n"
          "  --steps FILE     Lua steps: point changes, time, expectations\n"
          "  --schema DIR     node types of your own, beside the shipped ones\n"
          "  --quiet          print only failures and the summary\n"
          "  -h, --help       show this help\n",
          f);
}

static int64_t rt_clock(void *arg)
{
    return ((rt_t *)arg)->now;
}

static void at_prefix(rt_t *t, char *buf, size_t n)
{
    snprintf(buf, n, "%+10.3fs", (double)(t->now - t->start) / 1e9);
}

static void on_log(const char *rule, int warn, const char *msg, void *arg)
{
    rt_t *t = arg;
    char at[32];
    at_prefix(t, at, sizeof(at));
    if (!t->quiet || warn) {
        printf("%s  %s %s: %s\n", at, warn ? "warn" : "log ", rule, msg);
    }
}

/* Prints every point the rule writes (not its own bookkeeping: runs, lastRun, state). */
static void on_write(const sprig_event_t *ev, void *arg)
{
    rt_t *t = arg;
    const sprig_point_t *p = ev->point;
    if (strcmp(p->origin, t->id) != 0) {
        return;
    }
    if (strcmp(ev->node, t->id) == 0 && ev->edge_up == NULL &&
        (strcmp(p->type, "runs") == 0 || strcmp(p->type, "lastRun") == 0 ||
         strcmp(p->type, "state") == 0)) {
        return;
    }
    t->writes++;
    if (t->quiet) {
        return;
    }
    char at[32], name[2 * SPRIG_ID_MAX + 4];
    at_prefix(t, at, sizeof(at));
    if (ev->edge_up != NULL) {
        printf("%s  add  %s (%s) under %s\n", at, ev->node, ev->node_type, ev->edge_up);
        return;
    }
    if (strcmp(p->key, "0") != 0) {
        snprintf(name, sizeof(name), "%s[%s]", p->type, p->key);
    }
    else {
        snprintf(name, sizeof(name), "%s", p->type);
    }
    if (p->tombstone) {
        printf("%s  set  %s %s deleted\n", at, ev->node, name);
    }
    else if (p->text[0] != '\0') {
        printf("%s  set  %s %s = \"%s\"\n", at, ev->node, name, p->text);
    }
    else {
        printf("%s  set  %s %s = %.10g\n", at, ev->node, name, p->value);
    }
}

/* --- the steps' functions ----------------------------------------------------------- */

static void settle(rt_t *t)
{
    sprig_rules_settle(t->rules);
    uv_run(&t->loop, UV_RUN_NOWAIT);
}

/* Moves the clock to target, running each timer at its own due time. */
static void run_until(rt_t *t, int64_t target)
{
    for (long i = 0; i < 10000000L; i++) {
        int64_t due = sprig_rules_next_due(t->rules);
        if (due > target) {
            break;
        }
        if (due > t->now) {
            t->now = due;
        }
        sprig_rules_advance(t->rules);
        if (i % 1024 == 0) {
            uv_run(&t->loop, UV_RUN_NOWAIT);
        }
    }
    t->now = target;
    sprig_rules_advance(t->rules);
    settle(t);
}

static void point_value(lua_State *L, int idx, sprig_point_t *p)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
        p->tombstone = 1;
        break;
    case LUA_TBOOLEAN:
        p->value = lua_toboolean(L, idx);
        break;
    case LUA_TNUMBER:
        p->value = lua_tonumber(L, idx);
        break;
    case LUA_TSTRING:
        p->text = lua_tostring(L, idx);
        break;
    default:
        luaL_error(L, "the value must be a number, boolean, string or nil (got %s)",
                   luaL_typename(L, idx));
    }
}

static int write_as(lua_State *L, const char *fn, bool driver)
{
    rt_t *t = rt_of(L);
    const char *node = luaL_checkstring(L, 1);
    sprig_point_t p = {.type = luaL_checkstring(L, 2), .key = luaL_optstring(L, 4, NULL)};
    point_value(L, 3, &p);
    p.origin = driver ? node : NULL;
    sprig_error_t err;
    if (sprig_core_write(t->core, node, &p, 1, NULL, &err) != 0) {
        return luaL_error(L, "%s: %s", fn, err.msg);
    }
    settle(t);
    return 0;
}

/* set(node, type, value [, key])  [-4, +0, e] */
static int s_set(lua_State *L)
{
    return write_as(L, "set", false);
}

/* report(node, type, value [, key])  [-4, +0, e] */
static int s_report(lua_State *L)
{
    return write_as(L, "report", true);
}

/* node{id=, type=, parent=, points={...}}  [-1, +0, e] */
static int s_node(lua_State *L)
{
    rt_t *t = rt_of(L);
    sprig_point_t pts[64];
    size_t n = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "id");
    lua_getfield(L, 1, "type");
    lua_getfield(L, 1, "parent");
    lua_getfield(L, 1, "points");
    const char *id = luaL_checkstring(L, 2);
    const char *type = luaL_checkstring(L, 3);
    const char *parent = luaL_optstring(L, 4, sprig_core_root_id(t->core));
    if (!lua_isnil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 5) != 0) {
            if (n == 64) {
                return luaL_error(L, "node: more than 64 points");
            }
            if (lua_type(L, -2) != LUA_TSTRING) {
                return luaL_error(L, "node %s: points must be named by their type", id);
            }
            pts[n] = (sprig_point_t){.type = lua_tostring(L, -2)};
            point_value(L, -1, &pts[n]);
            n++;
            lua_pop(L, 1); /* the table keeps the strings alive */
        }
    }
    sprig_error_t err;
    if (sprig_core_create(t->core, id, type, parent, pts, n, NULL, NULL, &err) != 0) {
        return luaL_error(L, "node: %s", err.msg);
    }
    settle(t);
    return 0;
}

static int64_t check_time_ms(lua_State *L)
{
    double ms = luaL_checknumber(L, 1);
    if (!(ms >= 0) || ms > 1e12) {
        luaL_error(L, "advance: %f ms must be 0 to 1e12", ms);
    }
    return (int64_t)(ms * 1e6);
}

/* advance(ms)  [-1, +0, e] */
static int s_advance(lua_State *L)
{
    rt_t *t = rt_of(L);
    run_until(t, t->now + check_time_ms(L));
    return 0;
}

/* clock(rfc3339)  [-1, +0, e] */
static int s_clock(lua_State *L)
{
    rt_t *t = rt_of(L);
    int64_t ns;
    sprig_error_t err;
    if (sprig_json_time_parse(luaL_checkstring(L, 1), &ns, &err) != 0) {
        return luaL_error(L, "clock: %s", err.msg);
    }
    if (ns < t->now) {
        return luaL_error(L, "clock: %s is before the simulated time; time may not go backwards",
                          lua_tostring(L, 1));
    }
    run_until(t, ns);
    return 0;
}

static const sprig_point_t *find_point(rt_t *t, const char *node, const char *type, const char *key)
{
    sprig_tree_t *tree = sprig_core_tree(t->core);
    sprig_node_t *n = sprig_tree_node(tree, node);
    const sprig_point_t *p = n != NULL ? sprig_tree_point(tree, n, type, key) : NULL;
    return p != NULL && !p->tombstone ? p : NULL;
}

/* get(node, type [, key]) -> value, text | nil  [-3, +2, e] */
static int s_get(lua_State *L)
{
    const sprig_point_t *p = find_point(rt_of(L), luaL_checkstring(L, 1), luaL_checkstring(L, 2),
                                        luaL_optstring(L, 3, NULL));
    if (p == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, p->value);
    lua_pushstring(L, p->text);
    return 2;
}

static void check(lua_State *L, bool ok, const char *fmt, ...)
{
    rt_t *t = rt_of(L);
    t->checks++;
    if (ok) {
        return;
    }
    t->failed++;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    luaL_where(L, 1);
    char at[32];
    at_prefix(t, at, sizeof(at));
    printf("%s  FAIL %s%s\n", at, lua_tostring(L, -1), msg);
    lua_pop(L, 1);
}

static void describe(const sprig_point_t *p, char *buf, size_t n)
{
    if (p == NULL) {
        snprintf(buf, n, "nothing");
    }
    else if (p->text[0] != '\0') {
        snprintf(buf, n, "\"%s\"", p->text);
    }
    else {
        snprintf(buf, n, "%.10g", p->value);
    }
}

/* expect(node, type, want [, key])  [-4, +0, e] */
static int s_expect(lua_State *L)
{
    const char *node = luaL_checkstring(L, 1), *type = luaL_checkstring(L, 2);
    const sprig_point_t *p = find_point(rt_of(L), node, type, luaL_optstring(L, 4, NULL));
    char has[256];
    describe(p, has, sizeof(has));
    bool ok;
    switch (lua_type(L, 3)) {
    case LUA_TNONE:
    case LUA_TNIL:
        ok = p == NULL;
        break;
    case LUA_TBOOLEAN:
        ok = p != NULL && (p->value != 0) == lua_toboolean(L, 3);
        break;
    case LUA_TNUMBER: {
        double want = lua_tonumber(L, 3);
        ok = p != NULL && fabs(p->value - want) <= 1e-9 * fmax(1.0, fabs(want));
        break;
    }
    case LUA_TSTRING:
        ok = p != NULL && strcmp(p->text, lua_tostring(L, 3)) == 0;
        break;
    default:
        return luaL_error(L, "expect: want must be a number, boolean, string or nil (got %s)",
                          luaL_typename(L, 3));
    }
    check(L, ok, "expect(%s, %s): wants %s, has %s", node, type,
          lua_isnil(L, 3) ? "nothing" : luaL_tolstring(L, 3, NULL), has);
    return 0;
}

/* expect_error(substring)  [-1, +0, e] */
static int s_expect_error(lua_State *L)
{
    rt_t *t = rt_of(L);
    const char *want = luaL_checkstring(L, 1);
    const sprig_point_t *p = find_point(t, t->id, "error", NULL);
    const char *has = p != NULL ? p->text : "";
    bool ok = want[0] == '\0' ? has[0] == '\0' : strstr(has, want) != NULL;
    check(L, ok, "expect_error(\"%s\"): the rule's error is \"%s\"", want, has);
    return 0;
}

typedef struct notified {
    rt_t *t;
    const char *want;
    bool found;
} notified_t;

static int notified_one(sprig_node_t *n, void *arg)
{
    notified_t *c = arg;
    if (strcmp(sprig_node_type(n), "notification") == 0) {
        const sprig_point_t *p = find_point(c->t, sprig_node_id(n), "message", NULL);
        c->found |= p != NULL && strstr(p->text, c->want) != NULL;
    }
    return 0;
}

/* expect_notified(substring)  [-1, +0, e] */
static int s_expect_notified(lua_State *L)
{
    notified_t c = {.t = rt_of(L), .want = luaL_checkstring(L, 1)};
    sprig_tree_each_node(sprig_core_tree(c.t->core), notified_one, &c);
    check(L, c.found, "expect_notified(\"%s\"): no notification says so", c.want);
    return 0;
}

/* writes() -> count  [-0, +1, -] */
static int s_writes(lua_State *L)
{
    lua_pushinteger(L, rt_of(L)->writes);
    return 1;
}

/* --- setting up --------------------------------------------------------------------- */

/* The newest point time in an export document (0 when it has none readable). */
static int64_t fixture_newest(const cJSON *doc)
{
    static const char *const lists[] = {"nodes", "edges"};
    int64_t newest = 0;
    for (int l = 0; l < 2; l++) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(doc, lists[l]);
        const cJSON *it, *p;
        cJSON_ArrayForEach(it, items)
        {
            cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(it, "points"))
            {
                const cJSON *tj = cJSON_GetObjectItemCaseSensitive(p, "time");
                int64_t ns;
                sprig_error_t err;
                if (cJSON_IsString(tj) && sprig_json_time_parse(tj->valuestring, &ns, &err) == 0 &&
                    ns > newest) {
                    newest = ns;
                }
            }
        }
    }
    return newest;
}

static char *read_file(const char *path, const char *flag)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "sprig rule test: %s %s cannot be read: %s\n", flag, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(FILE_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, FILE_MAX + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n > FILE_MAX) {
        fprintf(stderr, "sprig rule test: %s %s is over %d bytes\n", flag, path, FILE_MAX);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void print_schema_error(const char *msg, void *arg)
{
    (void)arg;
    fprintf(stderr, "sprig rule test: schema: %s\n", msg);
}

/* Runs the steps file; returns 0, or 1 when it raised (printed). */
static int run_steps(rt_t *t, const char *path, const char *src)
{
    static const luaL_Reg fns[] = {
        {"node", s_node},
        {"set", s_set},
        {"report", s_report},
        {"advance", s_advance},
        {"clock", s_clock},
        {"get", s_get},
        {"expect", s_expect},
        {"expect_error", s_expect_error},
        {"expect_notified", s_expect_notified},
        {"writes", s_writes},
        {NULL, NULL},
    };
    sprig_luabox_t *box = NULL;
    sprig_luabox_opts_t o = {.insn_max = 1L << 40, .time_max_ms = 120000, .user = t};
    sprig_error_t err;
    if (sprig_luabox_open(&o, &box) != 0) {
        fprintf(stderr, "sprig rule test: out of memory\n");
        return 1;
    }
    lua_State *L = sprig_luabox_state(box);
    lua_pushglobaltable(L);
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
    const char *slash = strrchr(path, '/');
    int rc = sprig_luabox_load(box, slash != NULL ? slash + 1 : path, src, strlen(src), &err);
    if (rc == 0) {
        rc = sprig_luabox_call(box, 0, 0, &err);
    }
    sprig_luabox_close(box);
    if (rc != 0) {
        char at[32];
        at_prefix(t, at, sizeof(at));
        printf("%s  FAIL the steps stopped: %s\n", at, err.msg);
        return 1;
    }
    return 0;
}

static int rule_test(int argc, char **argv)
{
    static const struct option opts[] = {
        {"fixture", required_argument, NULL, 'f'}, {"steps", required_argument, NULL, 's'},
        {"schema", required_argument, NULL, 'S'},  {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *fixture = NULL, *steps = NULL, *schema_dir = NULL;
    rt_t t = {.now = START_NS, .start = START_NS};
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'f':
            fixture = optarg;
            break;
        case 's':
            steps = optarg;
            break;
        case 'S':
            schema_dir = optarg;
            break;
        case 'q':
            t.quiet = true;
            break;
        case 'h':
            test_usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "sprig rule test: flag %s needs a value (see sprig rule test --help)\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "sprig rule test: unknown flag %s (see sprig rule test --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "sprig rule test: name one rule file (see sprig rule test --help)\n");
        return 2;
    }
    const char *path = argv[optind];
    const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
    size_t blen = strlen(base);
    if (blen < 5 || strcmp(base + blen - 4, ".lua") != 0 || blen - 4 > SPRIG_ID_MAX) {
        fprintf(stderr, "sprig rule test: %s: a rule file is NAME.lua with NAME a node id\n", path);
        return 2;
    }
    snprintf(t.id, sizeof(t.id), "%.*s", (int)(blen - 4), base);
    if (!sprig_id_valid(t.id)) {
        fprintf(stderr,
                "sprig rule test: %s: the name \"%s\" must be 1-64 bytes of [A-Za-z0-9._:-]\n",
                path, t.id);
        return 2;
    }
    char *src = read_file(path, "rule"), *steps_src = NULL, *fix_src = NULL;
    cJSON *doc = NULL;
    int code = 2;
    if (src == NULL || (steps != NULL && (steps_src = read_file(steps, "--steps")) == NULL) ||
        (fixture != NULL && (fix_src = read_file(fixture, "--fixture")) == NULL)) {
        goto out;
    }
    if (fix_src != NULL && (doc = cJSON_Parse(fix_src)) == NULL) {
        fprintf(stderr, "sprig rule test: --fixture %s is not JSON (near byte %ld)\n", fixture,
                (long)(cJSON_GetErrorPtr() - fix_src));
        goto out;
    }
    if (doc != NULL) {
        /* The fixture's points carry the times of the gateway it came from: the clock
         * starts on the next whole second after its newest one, so none is in the future. */
        int64_t newest = fixture_newest(doc);
        if (newest >= t.now) {
            t.now = t.start = (newest / 1000000000 + 1) * 1000000000;
        }
    }
    setenv("TZ", "UTC", 1);
    tzset();
    sprig_log_set_level(SPRIG_LOG_WARN);

    char shipped[PATH_MAX];
    const char *dirs[2] = {cli_schema_shipped_dir(shipped, sizeof(shipped)), schema_dir};
    if (sprig_schema_load(dirs, schema_dir != NULL ? 2 : 1, &t.schema, print_schema_error, NULL) !=
        0) {
        goto out;
    }
    snprintf(t.dir, sizeof(t.dir), "/tmp/sprig-rule-test-XXXXXX");
    if (mkdtemp(t.dir) == NULL) {
        fprintf(stderr, "sprig rule test: a scratch folder cannot be made: %s\n", strerror(errno));
        t.dir[0] = '\0';
        goto out;
    }
    char db[128];
    snprintf(db, sizeof(db), "%s/test.db", t.dir);
    const cJSON *root = doc != NULL ? cJSON_GetObjectItemCaseSensitive(doc, "root") : NULL;
    sprig_core_opts_t co = {.db_path = db,
                            .wall = rt_clock,
                            .wall_arg = &t,
                            .root_id = cJSON_IsString(root) ? root->valuestring : "root"};
    sprig_error_t err;
    uv_loop_init(&t.loop);
    if (sprig_core_open(&t.loop, &co, &t.core, &err) != 0) {
        fprintf(stderr, "sprig rule test: %s\n", err.msg);
        goto close;
    }
    sprig_core_set_schema(t.core, t.schema);
    if (doc != NULL && sprig_import_json(t.core, doc, NULL, NULL, &err) != 0) {
        fprintf(stderr, "sprig rule test: --fixture %s: %s\n", fixture, err.msg);
        goto close;
    }
    sprig_bus_subscribe(sprig_core_bus(t.core), NULL, on_write, &t, NULL);
    sprig_point_t pts[] = {{.type = "script", .text = src}, {.type = "file", .text = base}};
    sprig_node_t *rn = sprig_tree_node(sprig_core_tree(t.core), t.id);
    int rc = rn == NULL ? sprig_core_create(t.core, t.id, "rule", sprig_core_root_id(t.core), pts,
                                            2, NULL, NULL, &err)
                        : sprig_core_write(t.core, t.id, pts, 2, NULL, &err);
    if (rc != 0) {
        fprintf(stderr, "sprig rule test: %s: %s\n", path, err.msg);
        goto close;
    }
    sprig_rules_opts_t ro = {.clock = rt_clock, .clock_arg = &t, .log = on_log, .log_arg = &t};
    if (sprig_rules_start(t.core, &ro, &t.rules) != 0) {
        fprintf(stderr, "sprig rule test: out of memory\n");
        goto close;
    }
    settle(&t);
    code = 1;
    const sprig_point_t *ep = find_point(&t, t.id, "error", NULL);
    sprig_rules_stats_t st;
    sprig_rules_stats(t.rules, &st);
    if (st.loaded == 0) {
        printf("FAIL %s does not load: %s\n", base, ep != NULL ? ep->text : "(no error given)");
        goto close;
    }
    bool stopped = steps_src != NULL && run_steps(&t, steps, steps_src) != 0;
    sprig_rules_save(t.rules);
    if (stopped) {
        printf("FAIL %s: the steps stopped (above) after %d expectations, %d of them failed\n",
               base, t.checks, t.failed);
    }
    else if (t.failed == 0) {
        printf("PASS %s: %d expectations hold, %ld points written\n", base, t.checks, t.writes);
        code = 0;
    }
    else {
        printf("FAIL %s: %d of %d expectations failed\n", base, t.failed, t.checks);
    }
close:
    sprig_rules_stop(t.rules);
    if (t.core != NULL && sprig_core_close(t.core) != 0 && code == 0) {
        code = 2;
    }
    uv_run(&t.loop, UV_RUN_DEFAULT);
    uv_loop_close(&t.loop);
out:
    if (t.dir[0] != '\0') {
        static const char *const tails[] = {"/test.db", "/test.db-wal", "/test.db-shm"};
        for (int i = 0; i < 3; i++) {
            char f[128];
            snprintf(f, sizeof(f), "%s%s", t.dir, tails[i]);
            unlink(f);
        }
        rmdir(t.dir);
    }
    cJSON_Delete(doc);
    sprig_schema_free(t.schema);
    free(src);
    free(steps_src);
    free(fix_src);
    return code;
}

/* --- the rules of a running daemon: ls, show, enable, disable ---------------------- */

#define LS_COLUMNS 120 /* rule ls cuts the error to end its line here */

static void rule_usage(FILE *f)
{
    fputs("usage: sprig rule COMMAND [ARGS] [FLAGS]\n"
          "\n"
          "A rule is a node of type rule whose script point holds Lua (scripts/README.md).\n"
          "\n"
          "commands:\n"
          "  test RULE.lua [--fixture TREE.json] [--steps STEPS.lua]\n"
          "               run a rule offline with simulated time (needs no daemon)\n"
          "  ls           list the rules: state (running, disabled, error), runs, last run,\n"
          "               file and the first line of the error\n"
          "  show ID      a rule's points, its whole error and its script with line numbers\n"
          "  enable ID    set the rule's disabled point to 0: it runs again\n"
          "  disable ID   set the rule's disabled point to 1: it stops\n"
          "\n"
          "ls, show, enable and disable talk to a running daemon: --url URL (default\n"
          "  " CLI_HTTP_DEFAULT_URL "), --token-file FILE, --json.\n"
          "`sprig rule COMMAND --help` explains each one and its flags.\n",
          f);
}

static const char ls_usage[] =
    "usage: sprig rule ls [FLAGS]\n"
    "\n"
    "Lists the rules of the tree, one line each: id, state (running; disabled when its\n"
    "disabled point is set; error when its error point is not empty), how many times a\n"
    "handler ran, when one last ran (RFC 3339 UTC, - for never), the file of the rules\n"
    "folder it came from (- for none) and the first line of its error, cut to fit 120\n"
    "columns (sprig rule show ID prints all of it).\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static const char show_usage[] =
    "usage: sprig rule show ID [FLAGS]\n"
    "\n"
    "Prints the rule ID: its description, file, disabled, active, runs, last run and\n"
    "state, its whole error, then its script with line numbers (an error\n"
    "\"FILE:LINE: message\" names the line).\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static const char enable_usage[] =
    "usage: sprig rule enable ID [FLAGS]\n"
    "\n"
    "Sets the disabled point of rule ID to 0, and returns once the daemon has it on disk:\n"
    "the rule loads its script again and runs (a rule stopped for running over its budget\n"
    "starts again too).\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static const char disable_usage[] =
    "usage: sprig rule disable ID [FLAGS]\n"
    "\n"
    "Sets the disabled point of rule ID to 1, and returns once the daemon has it on disk:\n"
    "its handlers and timers stop until sprig rule enable ID.\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

/* The rule commands take no flags of their own. */
static int no_flag(cli_http_t *h, int ch, const char *arg, void *ctx)
{
    (void)h, (void)ch, (void)arg, (void)ctx;
    return 2;
}

/* The live point type (key "0") of a node object of the API, or NULL. */
static const cJSON *live_point(const cJSON *node, const char *type)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(node, "points"))
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "tombstone");
        if (strcmp(cli_json_str(p, "type"), type) == 0 &&
            strcmp(cli_json_str(p, "key"), "0") == 0 &&
            !(cJSON_IsNumber(t) && t->valuedouble != 0)) {
            return p;
        }
    }
    return NULL;
}

static const char *point_text(const cJSON *node, const char *type)
{
    return cli_json_str(live_point(node, type), "text");
}

/* The value of a live point; false when the node has none. */
static bool point_value_of(const cJSON *node, const char *type, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(live_point(node, type), "value");
    if (!cJSON_IsNumber(v)) {
        return false;
    }
    *out = v->valuedouble;
    return true;
}

static bool point_set_true(const cJSON *node, const char *type)
{
    double v;
    return point_value_of(node, type, &v) && v != 0;
}

/* running, disabled (before an error it may still carry) or error. */
static const char *rule_state(const cJSON *node)
{
    if (point_set_true(node, "disabled")) {
        return "disabled";
    }
    return point_text(node, "error")[0] != '\0' ? "error" : "running";
}

/* The lastRun point as RFC 3339 UTC, to the second (with frac, to the nanosecond), or
 * "-" when the rule never ran. out holds at least 40 bytes. */
static const char *last_run(const cJSON *node, bool frac, char *out, size_t n)
{
    double ns;
    if (!point_value_of(node, "lastRun", &ns) || !(ns > 0) || ns > 9.2e18) {
        return "-";
    }
    sprig_time_format((int64_t)ns, out, n);
    if (!frac && strlen(out) > 19) {
        out[19] = 'Z';
        out[20] = '\0';
    }
    return out;
}

static long runs_of(const cJSON *node)
{
    double v;
    return point_value_of(node, "runs", &v) && v >= 0 && v < 9e18 ? (long)v : 0;
}

/* Writes n bytes of s, a control character (a script's or error's escape sequence) as '?'
 * so that it cannot steer the terminal; a tab stays when keep_tab. */
static void put_clean(const char *s, size_t n, bool keep_tab)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        putchar((c < 0x20 && !(keep_tab && c == '\t')) || c == 0x7f ? '?' : c);
    }
}

/* Sorts node objects by id. */
static int by_id(const void *x, const void *y)
{
    return strcmp(cli_json_str(*(const cJSON *const *)x, "id"),
                  cli_json_str(*(const cJSON *const *)y, "id"));
}

/* The first line of err, cut to width bytes (at a UTF-8 character's start) with "..."
 * when longer or followed by more lines. */
static void put_first_line(const char *err, int width)
{
    size_t n = strcspn(err, "\r\n");
    bool more = err[n] != '\0';
    if (n > (size_t)width || more) {
        size_t keep = n > (size_t)width - 3 ? (size_t)width - 3 : n;
        while (keep > 0 && ((unsigned char)err[keep] & 0xC0) == 0x80) {
            keep--;
        }
        put_clean(err, keep, false);
        fputs("...", stdout);
        return;
    }
    put_clean(err, n, false);
}

static int rule_ls(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    cli_reply_t r = {0};
    const cJSON **v = NULL;
    int rc = cli_http_parse(h, argc, argv, opts, no_flag, NULL, ls_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 0, 0, "")) != 0 ||
        (rc = cli_http_call(h, "GET", "/v1/nodes?type=rule", NULL, &r)) != 0) {
        return rc;
    }
    if (h->json) {
        rc = cli_http_print_body(h, &r);
        goto done;
    }
    const cJSON *list = r.json, *n;
    rc = 1;
    if (!cJSON_IsArray(list)) {
        fprintf(stderr, "sprig %s: the server's node list is not a JSON array\n", h->cmd);
        goto done;
    }
    size_t count = (size_t)cJSON_GetArraySize(list), i = 0;
    if (count == 0) {
        printf("no rules (sprig run --rules DIR imports DIR/NAME.lua as rule NAME)\n");
        rc = 0;
        goto done;
    }
    if ((v = calloc(count, sizeof(*v))) == NULL) {
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        goto done;
    }
    int wi = 2, wr = 4, wf = 4;
    char t[40], num[32];
    cJSON_ArrayForEach(n, list)
    {
        v[i++] = n;
        int li = (int)strlen(cli_json_str(n, "id")), lf = (int)strlen(point_text(n, "file"));
        int lr = snprintf(num, sizeof(num), "%ld", runs_of(n));
        wi = li > wi ? li : wi, wr = lr > wr ? lr : wr, wf = lf > wf ? lf : wf;
    }
    qsort(v, count, sizeof(*v), by_id);
    /* Columns: id, state (8), runs, last run (20), file, error. */
    int werr = LS_COLUMNS - (wi + 2 + 8 + 2 + wr + 2 + 20 + 2 + wf + 2);
    werr = werr < 24 ? 24 : werr;
    printf("%-*s  %-8s  %*s  %-20s  %-*s  %s\n", wi, "ID", "STATE", wr, "RUNS", "LAST RUN", wf,
           "FILE", "ERROR");
    for (i = 0; i < count; i++) {
        const char *file = point_text(v[i], "file"), *err = point_text(v[i], "error");
        /* No padding after the last column, so no line ends in spaces. */
        printf("%-*s  %-8s  %*ld  %-20s  %-*s", wi, cli_json_str(v[i], "id"), rule_state(v[i]), wr,
               runs_of(v[i]), last_run(v[i], false, t, sizeof(t)), err[0] != '\0' ? wf : 0,
               file[0] != '\0' ? file : "-");
        if (err[0] != '\0') {
            fputs("  ", stdout);
            put_first_line(err, werr);
        }
        putchar('\n');
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    free(v);
    cli_reply_free(&r);
    return rc;
}

/* Finds rule id in the daemon's rules (GET /v1/nodes?type=rule): on 0, r holds the list
 * and *node the rule. When there is no such rule says so (naming the type of a node that
 * is not a rule) and returns 1; else the exit code of a failed request. */
static int find_rule(cli_http_t *h, const char *id, cli_reply_t *r, const cJSON **node)
{
    cli_reply_t all = {0};
    const cJSON *n;
    int rc = cli_http_call(h, "GET", "/v1/nodes?type=rule", NULL, r);
    if (rc != 0) {
        return rc;
    }
    if (!cJSON_IsArray(r->json)) {
        fprintf(stderr, "sprig %s: the server's node list is not a JSON array\n", h->cmd);
        cli_reply_free(r);
        return 1;
    }
    cJSON_ArrayForEach(n, r->json)
    {
        if (strcmp(cli_json_str(n, "id"), id) == 0) {
            *node = n;
            return 0;
        }
    }
    cli_reply_free(r);
    /* Not a rule: the whole list says whether it is a node of another type. Only this
     * error path reads the whole tree; GET /v1/nodes/ID would print its own 404. */
    if ((rc = cli_http_call(h, "GET", "/v1/nodes", NULL, &all)) != 0) {
        return rc;
    }
    cJSON_ArrayForEach(n, all.json)
    {
        if (strcmp(cli_json_str(n, "id"), id) == 0) {
            fprintf(stderr, "sprig %s: node \"%s\" is a %s, not a rule (see sprig rule ls)\n",
                    h->cmd, id, cli_json_str(n, "type"));
            cli_reply_free(&all);
            return 1;
        }
    }
    fprintf(stderr, "sprig %s: no rule \"%s\" (see sprig rule ls)\n", h->cmd, id);
    cli_reply_free(&all);
    return 1;
}

/* Parses "ID" of show, enable and disable and finds the rule; CLI_GO when found. */
static int rule_arg(cli_http_t *h, int argc, char **argv, const char *usage, cli_reply_t *r,
                    const cJSON **node)
{
    static const struct option opts[] = {CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    int rc = cli_http_parse(h, argc, argv, opts, no_flag, NULL, usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 1, 1, "ID")) != 0 ||
        (rc = cli_http_check_id(h, "ID", argv[optind])) != 0 ||
        (rc = find_rule(h, argv[optind], r, node)) != 0) {
        return rc;
    }
    return CLI_GO;
}

/* Prints a text point's lines, the first after its label, the others under it. */
static void show_text(const char *label, const char *text, const char *none)
{
    printf("%-12s ", label);
    if (text[0] == '\0') {
        printf("%s\n", none);
        return;
    }
    for (bool first = true; *text != '\0'; first = false) {
        size_t n = strcspn(text, "\n");
        printf("%*s", first ? 0 : 13, "");
        put_clean(text, n > 0 && text[n - 1] == '\r' ? n - 1 : n, true);
        putchar('\n');
        text += n + (text[n] == '\n');
    }
}

/* Prints the script, each line after its number. */
static void show_script(const char *script)
{
    int lines = 0, width = 1;
    for (const char *s = script; *s != '\0'; s++) {
        lines += *s == '\n' && s[1] != '\0';
    }
    for (int k = lines + 1; k >= 10; k /= 10) {
        width++;
    }
    for (int line = 1; *script != '\0'; line++) {
        size_t n = strcspn(script, "\n");
        printf("  %*d  ", width, line);
        put_clean(script, n > 0 && script[n - 1] == '\r' ? n - 1 : n, true);
        putchar('\n');
        script += n + (script[n] == '\n');
    }
}

static int rule_show(cli_http_t *h, int argc, char **argv)
{
    cli_reply_t r = {0};
    const cJSON *n = NULL;
    int rc = rule_arg(h, argc, argv, show_usage, &r, &n);
    if (rc != CLI_GO) {
        return rc;
    }
    if (h->json) {
        char *s = cJSON_PrintUnformatted(n);
        rc = s != NULL && puts(s) >= 0 && fflush(stdout) == 0 ? 0 : 1;
        cJSON_free(s);
        cli_reply_free(&r);
        return rc;
    }
    char t[40];
    const char *script = point_text(n, "script"), *file = point_text(n, "file");
    printf("%-12s %s (%s)\n", "rule", cli_json_str(n, "id"), rule_state(n));
    show_text("description", point_text(n, "description"), "-");
    show_text("file", file, "- (not from a rules folder)");
    printf("%-12s %s\n", "disabled", point_set_true(n, "disabled") ? "yes" : "no");
    printf("%-12s %s\n", "active", point_set_true(n, "active") ? "yes" : "no");
    printf("%-12s %ld\n", "runs", runs_of(n));
    printf("%-12s %s\n", "lastRun", last_run(n, true, t, sizeof(t)));
    show_text("state", point_text(n, "state"), "-");
    show_text("error", point_text(n, "error"), "none");
    if (script[0] == '\0') {
        printf("script       none\n");
    }
    else {
        printf("script%s%s%s:\n", file[0] != '\0' ? " (" : "", file, file[0] != '\0' ? ")" : "");
        show_script(script);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
    cli_reply_free(&r);
    return rc;
}

/* enable and disable (told apart by the command's name): writes the disabled point. */
static int rule_enable(cli_http_t *h, int argc, char **argv)
{
    bool off = strcmp(h->cmd, "rule disable") == 0;
    cli_reply_t r = {0}, w = {0};
    const cJSON *n = NULL;
    char path[128];
    int rc = rule_arg(h, argc, argv, off ? disable_usage : enable_usage, &r, &n);
    if (rc != CLI_GO) {
        return rc;
    }
    const char *id = argv[optind];
    bool was = point_set_true(n, "disabled");
    cli_reply_free(&r);
    cJSON *body = cJSON_CreateArray(), *p = cJSON_CreateObject();
    bool ok = body != NULL && p != NULL && cJSON_AddStringToObject(p, "type", "disabled") != NULL &&
              cJSON_AddNumberToObject(p, "value", off ? 1 : 0) != NULL;
    if (!ok || !cJSON_AddItemToArray(body, p)) {
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        cJSON_Delete(p);
        cJSON_Delete(body);
        return 1;
    }
    snprintf(path, sizeof(path), "/v1/nodes/%s/points", id);
    rc = cli_http_send(h, "POST", path, body, &w);
    cJSON_Delete(body);
    if (rc == 0 && h->json) {
        rc = cli_http_print_body(h, &w);
    }
    else if (rc == 0) {
        printf("rule %s %s%s\n", id, off ? "disabled" : "enabled",
               was == off ? " (it already was)" : "");
    }
    cli_reply_free(&w);
    return rc;
}

int cli_rule(int argc, char **argv)
{
    static const cli_subcmd_t table[] = {
        {"ls", rule_ls},          {"show", rule_show}, {"enable", rule_enable},
        {"disable", rule_enable}, {NULL, NULL},
    };
    if (argc >= 2 && strcmp(argv[1], "test") == 0) {
        return rule_test(argc - 1, argv + 1);
    }
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        rule_usage(stdout);
        return 0;
    }
    for (size_t i = 0; argc >= 2 && table[i].name != NULL; i++) {
        if (strcmp(argv[1], table[i].name) == 0) {
            char cmd[32];
            cli_http_t h;
            snprintf(cmd, sizeof(cmd), "rule %s", table[i].name);
            cli_http_init(&h, cmd);
            int rc = table[i].run(&h, argc - 1, argv + 1);
            cli_http_close(&h);
            return rc;
        }
    }
    fprintf(stderr,
            "sprig rule: %s%s%s (commands: test, ls, show, enable, disable; see sprig rule "
            "--help)\n",
            argc >= 2 ? "unknown command \"" : "name a command", argc >= 2 ? argv[1] : "",
            argc >= 2 ? "\"" : "");
    return 2;
}
