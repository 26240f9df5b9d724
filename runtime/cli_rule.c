/* `sprig rule test RULE.lua [--fixture TREE.json] [--steps STEPS.lua]`: runs one rule
 * offline against a tree in a scratch database, with simulated time, printing what the
 * rule writes and logs; the steps file drives point changes and time and checks the
 * outcome with expect (scripts/README.md, "Testing a rule offline"). The commands for
 * the rules of a running daemon are in cli_rule_api.c. */
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

int cli_rule_test(int argc, char **argv)
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
