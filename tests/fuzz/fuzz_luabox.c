/* libFuzzer target of the Lua sandbox (luabox.h): the input is a list of choices that a
 * small grammar turns into a Lua script (loops, pcall/xpcall with handlers, coroutines,
 * to-be-closed variables, metatables, and calls of the whitelisted standard library with
 * extreme arguments: huge counts, long strings, backtracking patterns). The script runs in
 * a box with a rule's budget (5 million units, 100 ms, 16 MiB). Checked, with abort() on
 * failure, besides ASan/UBSan: the call returns within HANG_S (the budget plus room for a
 * loaded machine), closing the box returns within HANG_S too (no finalizer runs
 * unbounded), and a failing call says "NAME:LINE:" or names its budget.
 * FUZZ_PRINT=1 in the environment prints each script. Build and run: tests/fuzz/README.md. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sprig/luabox.h"

#define HANG_S 2.0
#define SRC_MAX 8192
#define DEPTH_MAX 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct gen {
    const uint8_t *p, *end;
    char src[SRC_MAX];
    size_t len;
    int vars;
} gen_t;

static unsigned pick(gen_t *g, unsigned n)
{
    unsigned b = g->p < g->end ? *g->p++ : 0;
    return n != 0 ? b % n : 0;
}

static void out(gen_t *g, const char *s)
{
    size_t n = strlen(s);
    if (g->len + n < SRC_MAX) {
        memcpy(g->src + g->len, s, n);
        g->len += n;
        g->src[g->len] = '\0';
    }
}

static const char *const numbers[] = {
    "0", "1", "-1", "2", "3", "10", "255", "1000", "65536", "1e6", "math.maxinteger",
    "math.mininteger", "math.maxinteger - 1", "1 << 40", "1 << 62", "-(1 << 62)", "0.5",
    "1e308", "math.huge", "-math.huge", "0/0", "#s", "n",
};

static const char *const strings[] = {
    "''", "'a'", "'abc'", "'%'", "'(('", "'))'", "'%b()'", "'.-'", "'.-.-.-.-.-b'",
    "'(a*)*b'", "'%f[%w]%w+'", "'[%a-z]+'", "'[^'", "'%1'", "'()'", "'(()())'", "'x*'",
    "'^a'", "'a$'", "'%d+'", "'%s'", "'\\0'", "'\\255\\254'", "'é'", "'%z'", "s",
    "string.rep('a', 5000)", "string.rep('(', 3000)", "string.rep('ab', 100000)",
    "string.rep('a', 3000000)", "tostring(n)",
};

static void expr(gen_t *g, int depth);

static void args(gen_t *g, int depth, unsigned max)
{
    unsigned n = pick(g, max + 1);
    for (unsigned i = 0; i < n; i++) {
        if (i > 0) {
            out(g, ", ");
        }
        expr(g, depth + 1);
    }
}

static const char *const funcs[] = {
    "string.find",    "string.match",  "string.gmatch", "string.gsub",   "string.rep",
    "string.sub",     "string.upper",  "string.lower",  "string.byte",   "string.char",
    "string.format",  "string.reverse", "string.len",   "string.pack",   "string.unpack",
    "table.concat",   "table.insert",  "table.remove",  "table.move",    "table.unpack",
    "table.sort",     "table.pack",    "utf8.char",     "utf8.len",      "utf8.codepoint",
    "utf8.offset",    "math.floor",    "math.max",      "tonumber",      "tostring",
    "select",         "next",          "type",          "rawlen",        "rawequal",
    "setmetatable",   "getmetatable",  "pcall",         "error",         "assert",
    "coroutine.wrap", "coroutine.create", "coroutine.resume", "coroutine.close", "ipairs",
};

static void call(gen_t *g, int depth)
{
    out(g, funcs[pick(g, sizeof(funcs) / sizeof(funcs[0]))]);
    out(g, "(");
    args(g, depth, 4);
    out(g, ")");
}

static void block(gen_t *g, int depth);

static void func(gen_t *g, int depth)
{
    out(g, "function(a, b) ");
    block(g, depth + 1);
    out(g, " return a end");
}

static void table(gen_t *g, int depth)
{
    switch (pick(g, 4)) {
    case 0:
        out(g, "{}");
        break;
    case 1:
        out(g, "{1, 2, 'x', 3.5}");
        break;
    case 2:
        out(g, "setmetatable({}, {__index = ");
        pick(g, 2) ? func(g, depth) : out(g, "rawget");
        out(g, ", __len = function() return ");
        out(g, numbers[pick(g, sizeof(numbers) / sizeof(numbers[0]))]);
        out(g, " end, __newindex = rawset})");
        break;
    default:
        out(g, "t");
        break;
    }
}

static void expr(gen_t *g, int depth)
{
    if (depth >= DEPTH_MAX) {
        out(g, numbers[pick(g, 6)]);
        return;
    }
    switch (pick(g, 9)) {
    case 0:
    case 1:
        out(g, numbers[pick(g, sizeof(numbers) / sizeof(numbers[0]))]);
        break;
    case 2:
    case 3:
        out(g, strings[pick(g, sizeof(strings) / sizeof(strings[0]))]);
        break;
    case 4:
    case 5:
        call(g, depth);
        break;
    case 6:
        table(g, depth);
        break;
    case 7:
        func(g, depth);
        break;
    default:
        out(g, "(");
        expr(g, depth + 1);
        out(g, pick(g, 2) ? " .. " : " == ");
        expr(g, depth + 1);
        out(g, ")");
        break;
    }
}

static void stmt(gen_t *g, int depth)
{
    switch (pick(g, depth >= DEPTH_MAX ? 3 : 12)) {
    case 0:
        out(g, "n = ");
        expr(g, depth);
        break;
    case 1:
        out(g, "s = ");
        out(g, strings[pick(g, sizeof(strings) / sizeof(strings[0]))]);
        break;
    case 2:
        call(g, depth);
        break;
    case 3:
        out(g, "for i = 1, ");
        out(g, numbers[pick(g, sizeof(numbers) / sizeof(numbers[0]))]);
        out(g, " do ");
        block(g, depth + 1);
        out(g, " end");
        break;
    case 4:
        out(g, "while ");
        out(g, pick(g, 2) ? "true" : "n ~= 7");
        out(g, " do ");
        block(g, depth + 1);
        out(g, " end");
        break;
    case 5:
        out(g, "pcall(");
        func(g, depth);
        out(g, ")");
        break;
    case 6:
        out(g, "xpcall(");
        func(g, depth);
        out(g, ", ");
        func(g, depth);
        out(g, ")");
        break;
    case 7:
        out(g, "do local c <close> = setmetatable({}, {__close = ");
        func(g, depth);
        out(g, "}) ");
        block(g, depth + 1);
        out(g, " end");
        break;
    case 8:
        out(g, "co = coroutine.wrap(");
        func(g, depth);
        out(g, ") pcall(co) pcall(co)");
        break;
    case 9:
        out(g, "setmetatable(t, {__gc = ");
        func(g, depth);
        out(g, "})");
        break;
    case 10:
        out(g, "for k, v in string.gmatch(s, ");
        out(g, strings[pick(g, sizeof(strings) / sizeof(strings[0]))]);
        out(g, ") do ");
        block(g, depth + 1);
        out(g, " end");
        break;
    default:
        out(g, "t[#t + 1] = ");
        expr(g, depth);
        break;
    }
}

static void block(gen_t *g, int depth)
{
    unsigned n = 1 + pick(g, 3);
    for (unsigned i = 0; i < n; i++) {
        stmt(g, depth);
        out(g, "\n");
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gen_t g;
    g.p = data;
    g.end = data + size;
    g.len = 0;
    g.src[0] = '\0';
    out(&g, "local s, n, t, co = 'abc', 3, {}, nil\n");
    block(&g, 0);
    if (getenv("FUZZ_PRINT") != NULL) {
        fprintf(stderr, "--- script\n%s", g.src);
    }
    sprig_luabox_t *box = NULL;
    sprig_luabox_opts_t o = {.insn_max = 5000000, .time_max_ms = 100, .mem_max = 16u << 20};
    if (sprig_luabox_open(&o, &box) != 0) {
        return 0;
    }
    sprig_error_t err = {{0}};
    double t0 = now_s();
    int rc = sprig_luabox_load(box, "f.lua", g.src, g.len, &err);
    if (rc == 0) {
        rc = sprig_luabox_call(box, 0, 0, &err);
    }
    double t1 = now_s();
    sprig_luabox_close(box);
    double t2 = now_s();
    if (t1 - t0 > HANG_S || t2 - t1 > HANG_S) {
        fprintf(stderr, "call %.2f s, close %.2f s (rc %d: %s) for:\n%s\n", t1 - t0, t2 - t1, rc,
                err.msg, g.src);
        abort();
    }
    if (rc == -ETIMEDOUT && strstr(err.msg, "f.lua:") == NULL) {
        fprintf(stderr, "a budget error without its place: %s\n%s\n", err.msg, g.src);
        abort();
    }
    return 0;
}
