/* Unit tests of export and import (exchange.h) on a temporary database with the shipped
 * schema: a refused import changes nothing, whatever the rule it breaks and wherever in
 * the document the break is (the tree, its root hash and counts, the export, the rows on
 * disk after a reopen, the bus, the store's queue, the HLC), and says which item broke
 * which rule with which value; an accepted one applies all of it. Hand-written documents
 * for each kind of refusal, then hundreds of random documents, most broken in one random
 * place, checked against what the generator knows it broke (a reference model), and an
 * import failing at each allocation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/core.h"
#include "sprig/err.h"
#include "sprig/exchange.h"
#include "sprig/json.h"
#include "sprig/schema.h"
#include "sprig/util.h"
#include "testutil.h"

typedef struct fx {
    char dir[PATH_MAX];
    char path[PATH_MAX];
    uv_loop_t loop;
    sprig_core_t *c;
    sprig_schema_t *schema;
    long events;
    uint64_t rng;
    int seq; /* ids of new nodes: x<seq> */
} fx_t;

/* Everything a refused import must leave as it was. */
typedef struct snap {
    char *export; /* the whole tree, hashes and points as text */
    uint64_t root_hash;
    size_t nodes, points;
    long events;
    uint64_t published, batch;
    size_t backlog;
    int64_t clock;
    sprig_core_stats_t stats;
} snap_t;

/* The document under test, printed after a failure's message (NULL: none). */
static const char *current_doc;

static void on_event(const sprig_event_t *ev, void *arg)
{
    (void)ev;
    ((fx_t *)arg)->events++;
}

static void core_open(fx_t *f)
{
    sprig_core_opts_t o = {.db_path = f->path, .root_id = "root"};
    sprig_error_t err = {{0}};
    int rc = sprig_core_open(&f->loop, &o, &f->c, &err);
    if (rc != 0) {
        fail_msg("core open %s: %d %s", f->path, rc, err.msg);
    }
    sprig_core_set_schema(f->c, f->schema);
    assert_int_equal(sprig_bus_subscribe(sprig_core_bus(f->c), NULL, on_event, f, NULL), 0);
}

static void core_close(fx_t *f)
{
    assert_int_equal(sprig_core_close(f->c), 0);
    f->c = NULL;
    for (int i = 0; i < 100 && uv_loop_alive(&f->loop); i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
}

static void create(fx_t *f, const char *id, const char *type, const char *parent,
                   const sprig_point_t *pts, size_t n)
{
    sprig_error_t err = {{0}};
    int rc = sprig_core_create(f->c, id, type, parent, pts, n, NULL, NULL, &err);
    if (rc != 0) {
        fail_msg("create %s: %d %s", id, rc, err.msg);
    }
}

/* root: g1 (group) { g2 (group), m1 (modbus) { io1 (modbusIo) }, r1 (rule) }, sg1
 * (signalGenerator). */
static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    current_doc = NULL;
    assert_int_equal(tu_tmpdir(f->dir), 0);
    tu_path(f->path, f->dir, "exchange.db");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    char shipped[PATH_MAX];
    const char *dirs[1] = {tu_source_path(shipped, "schema")};
    assert_int_equal(sprig_schema_load(dirs, 1, &f->schema, NULL, NULL), 0);
    f->rng = 0x5EED5EED12345ULL;
    core_open(f);
    create(f, "g1", "group", "root", NULL, 0);
    create(f, "g2", "group", "g1", NULL, 0);
    sprig_point_t mb[] = {{.type = "protocol", .text = "TCP"}, {.type = "uri", .text = "h:1"}};
    create(f, "m1", "modbus", "g1", mb, 2);
    sprig_point_t io[] = {{.type = "id", .value = 1},
                          {.type = "address", .value = 7},
                          {.type = "modbusIoType", .text = "holdingRegister"}};
    create(f, "io1", "modbusIo", "m1", io, 3);
    sprig_point_t rule[] = {{.type = "script", .text = "-- nothing"}};
    create(f, "r1", "rule", "g1", rule, 1);
    create(f, "sg1", "signalGenerator", "root", NULL, 0);
    assert_int_equal(sprig_store_flush(sprig_core_store(f->c)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->c != NULL) {
        core_close(f);
    }
    sprig_schema_free(f->schema);
    assert_int_equal(tu_loop_finish(&f->loop), 0);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static sprig_tree_t *tree(fx_t *f)
{
    return sprig_core_tree(f->c);
}

static char *export_text(fx_t *f)
{
    cJSON *o = sprig_export_json(f->c);
    assert_non_null(o);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    assert_non_null(s);
    return s;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The export with every list sorted (nodes by id, edges by ends, points by type and key):
 * what must survive a reopen, which loads rows in the store's order. */
static char *canonical(const char *export)
{
    cJSON *o = cJSON_Parse(export);
    assert_non_null(o);
    char *lines[4096];
    size_t n = 0, total = 1;
    cJSON *lists[2] = {cJSON_GetObjectItem(o, "nodes"), cJSON_GetObjectItem(o, "edges")};
    for (int l = 0; l < 2; l++) {
        for (cJSON *it = lists[l]->child; it != NULL; it = it->next) {
            char *pl[512];
            size_t np = 0, len = 1;
            for (cJSON *p = cJSON_GetObjectItem(it, "points")->child; p != NULL && np < 512;
                 p = p->next) {
                pl[np] = cJSON_PrintUnformatted(p);
                len += strlen(pl[np++]) + 1;
            }
            qsort(pl, np, sizeof(*pl), cmp_line);
            char head[256];
            snprintf(head, sizeof(head), "%s %s %s:", l == 0 ? "node" : "edge",
                     cJSON_GetObjectItem(it, l == 0 ? "id" : "up")->valuestring,
                     cJSON_GetObjectItem(it, l == 0 ? "type" : "down")->valuestring);
            char *line = malloc(strlen(head) + len);
            assert_non_null(line);
            strcpy(line, head);
            for (size_t k = 0; k < np; k++) {
                strcat(line, " ");
                strcat(line, pl[k]);
                cJSON_free(pl[k]);
            }
            assert_true(n < 4096);
            lines[n++] = line;
            total += strlen(line) + 1;
        }
    }
    qsort(lines, n, sizeof(*lines), cmp_line);
    char *out = malloc(total + 64);
    assert_non_null(out);
    snprintf(out, 64, "hash %s\n", cJSON_GetObjectItem(o, "hash")->valuestring);
    for (size_t k = 0; k < n; k++) {
        strcat(out, lines[k]);
        strcat(out, "\n");
        free(lines[k]);
    }
    cJSON_Delete(o);
    return out;
}

static snap_t snap(fx_t *f)
{
    snap_t s = {
        .export = export_text(f),
        .root_hash = sprig_tree_root_hash(tree(f)),
        .nodes = sprig_tree_node_count(tree(f)),
        .points = sprig_tree_point_count(tree(f)),
        .events = f->events,
        .published = sprig_bus_published(sprig_core_bus(f->c)),
        .batch = sprig_core_batch(f->c),
        .backlog = sprig_store_backlog(sprig_core_store(f->c)),
        .clock = sprig_core_hlc(f->c)->last,
    };
    sprig_core_stats(f->c, &s.stats);
    return s;
}

/* One integer from the database file, through a connection of its own. */
static long long sql_int(fx_t *f, const char *sql)
{
    long long v = -1;
    assert_int_equal(tu_sql_int(f->path, sql, &v), SQLITE_OK);
    return v;
}

/* The rows on disk, as one line of counts. */
static void rows_text(fx_t *f, char *out, size_t n)
{
    assert_int_equal(sprig_store_flush(sprig_core_store(f->c)), 0);
    snprintf(out, n, "nodes %lld edges %lld points %lld edge_points %lld history %lld",
             sql_int(f, "SELECT count(*) FROM nodes"), sql_int(f, "SELECT count(*) FROM edges"),
             sql_int(f, "SELECT count(*) FROM points"),
             sql_int(f, "SELECT count(*) FROM edge_points"),
             sql_int(f, "SELECT count(*) FROM history"));
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (current_doc != NULL) {                                                                 \
            print_error("document: %s\n", current_doc);                                            \
        }                                                                                          \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

/* The refused import left everything as `before` shows it, counted one refusal more. */
static void check_unchanged(fx_t *f, const snap_t *before, const char *what)
{
    snap_t now = snap(f);
    if (strcmp(now.export, before->export) != 0) {
        FAIL("%s: the tree changed\nbefore: %.2000s\nafter:  %.2000s", what, before->export,
             now.export);
    }
    if (now.root_hash != before->root_hash || now.nodes != before->nodes ||
        now.points != before->points) {
        FAIL("%s: hash %016" PRIx64 " -> %016" PRIx64 ", nodes %zu -> %zu, points %zu -> %zu", what,
             before->root_hash, now.root_hash, before->nodes, now.nodes, before->points,
             now.points);
    }
    if (now.events != before->events || now.published != before->published) {
        FAIL("%s: %ld events were published", what, now.events - before->events);
    }
    if (now.batch != before->batch || now.backlog != before->backlog) {
        FAIL("%s: rows were queued for the store (batch %" PRIu64 " -> %" PRIu64
             ", backlog %zu -> %zu)",
             what, before->batch, now.batch, before->backlog, now.backlog);
    }
    if (now.clock != before->clock) {
        FAIL("%s: the HLC moved from %" PRId64 " to %" PRId64, what, before->clock, now.clock);
    }
    /* A document refused before it reaches the core is not a refused write of the core. */
    if (now.stats.accepted != before->stats.accepted || now.stats.stale != before->stats.stale ||
        now.stats.refused - before->stats.refused > 1) {
        FAIL("%s: counts accepted %" PRIu64 " -> %" PRIu64 ", refused %" PRIu64 " -> %" PRIu64,
             what, before->stats.accepted, now.stats.accepted, before->stats.refused,
             now.stats.refused);
    }
    assert_int_equal(sprig_tree_hash_check(tree(f), NULL, NULL), 0);
    free(now.export);
}

/* Closes and reopens the core: the tree it loads from disk must print as `expected`. */
static void check_reopen(fx_t *f, const char *expected, const char *what)
{
    core_close(f);
    core_open(f);
    char *again = export_text(f);
    char *a = canonical(expected), *b = canonical(again);
    if (strcmp(a, b) != 0) {
        FAIL("%s: the reopened tree differs\nbefore: %.3000s\nafter:  %.3000s", what, a, b);
    }
    free(a);
    free(b);
    free(again);
}

/* The same on disk: the rows, and the tree a reopen loads from them. */
static void check_unchanged_on_disk(fx_t *f, const char *rows_before, const char *export_before,
                                    const char *what)
{
    char rows[256];
    rows_text(f, rows, sizeof(rows));
    if (strcmp(rows, rows_before) != 0) {
        FAIL("%s: rows on disk changed: %s -> %s", what, rows_before, rows);
    }
    check_reopen(f, export_before, what);
}

/* Imports text; returns the code, with the message in err. */
static int import_text(fx_t *f, const char *text, sprig_error_t *err)
{
    cJSON *doc = cJSON_Parse(text);
    if (doc == NULL) {
        fail_msg("test document is not JSON: %s", text);
    }
    long nodes = -1, points = -1;
    int rc = sprig_import_json(f->c, doc, &nodes, &points, err);
    cJSON_Delete(doc);
    if (rc != 0) {
        assert_int_equal(nodes, 0);
        assert_int_equal(points, 0);
    }
    return rc;
}

/* --- each kind of refusal ----------------------------------------------------------- */

typedef struct refusal {
    const char *what;
    int code;
    const char *doc;
    const char *says[3]; /* what the message must name: the item, the rule, the value */
} refusal_t;

/* Nine nodes (a chain under the root) before the faulty one, the 10th, so that an import
 * applied item by item would have added them. */
#define NINE_GROUPS                                                                                \
    "{\"id\":\"a0\",\"type\":\"group\",\"points\":[{\"type\":\"description\",\"text\":\"a\"}]},"   \
    "{\"id\":\"a1\",\"type\":\"group\"},{\"id\":\"a2\",\"type\":\"group\"},"                       \
    "{\"id\":\"a3\",\"type\":\"group\"},{\"id\":\"a4\",\"type\":\"group\"},"                       \
    "{\"id\":\"a5\",\"type\":\"group\"},{\"id\":\"a6\",\"type\":\"group\"},"                       \
    "{\"id\":\"a7\",\"type\":\"group\"},{\"id\":\"a8\",\"type\":\"group\"}"
#define NINE_EDGES                                                                                 \
    "{\"up\":\"R\",\"down\":\"a0\"},{\"up\":\"a0\",\"down\":\"a1\"},{\"up\":\"a1\",\"down\":"      \
    "\"a2\"},{\"up\":\"a2\",\"down\":\"a3\"},{\"up\":\"a3\",\"down\":\"a4\"},{\"up\":\"a4\","      \
    "\"down\":\"a5\"},{\"up\":\"a5\",\"down\":\"a6\"},{\"up\":\"a6\",\"down\":\"a7\"},{\"up\":"    \
    "\"a7\",\"down\":\"a8\"}"

static const refusal_t refusals[] = {
    {"edges closing a cycle among new nodes",
     SPRIG_ECYCLE,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS "],\"edges\":[" NINE_EDGES
     ",{\"up\":\"a8\",\"down\":\"a0\"}]}",
     {"edges[9]", "cycle", "a8 -> a0"}},
    {"an edge making an existing node its own ancestor",
     SPRIG_ECYCLE,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS "],\"edges\":[" NINE_EDGES
     ",{\"up\":\"g2\",\"down\":\"g1\",\"points\":[{\"type\":\"tombstone\",\"value\":0}]}]}",
     {"edges[9]", "cycle", "g2 -> g1"}},
    {"a self loop",
     SPRIG_ECYCLE,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS "],\"edges\":[" NINE_EDGES
     ",{\"up\":\"a3\",\"down\":\"a3\"}]}",
     {"edges[9]", "cycle", "a3"}},
    {"one id twice, with two types",
     -EEXIST,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"a4\",\"type\":\"signalGenerator\"}],"
     "\"edges\":[" NINE_EDGES "]}",
     {"nodes[9]", "listed twice", "a4"}},
    {"one id twice, with one type",
     -EEXIST,
     "{\"root\":\"R\",\"nodes\":[{\"id\":\"a0\",\"type\":\"group\"}," NINE_GROUPS "],"
     "\"edges\":[" NINE_EDGES "]}",
     {"nodes[1]", "listed twice", "a0"}},
    {"a rule under a signalGenerator",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"ru\",\"type\":\"rule\",\"points\":"
     "[{\"type\":\"script\",\"text\":\"-- x\"}]}],\"edges\":[" NINE_EDGES
     ",{\"up\":\"sg1\",\"down\":\"ru\"}]}",
     {"edges[9]", "signalGenerator", "ru"}},
    {"a point above the schema's max in the 10th node",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"s9\",\"type\":\"signalGenerator\","
     "\"points\":[{\"type\":\"amplitude\",\"value\":2},{\"type\":\"sampleRate\",\"value\":"
     "5000}]}],\"edges\":[" NINE_EDGES ",{\"up\":\"R\",\"down\":\"s9\"}]}",
     {"nodes[9].points", "sampleRate", "5000"}},
    {"a point the strict type does not declare",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"s9\",\"type\":\"signalGenerator\","
     "\"points\":[{\"type\":\"bogus\",\"value\":1}]}],\"edges\":[" NINE_EDGES
     ",{\"up\":\"R\",\"down\":\"s9\"}]}",
     {"nodes[9].points", "bogus", "signalGenerator"}},
    {"a driver-owned point written by a person",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS
     ",{\"id\":\"sg1\",\"type\":\"signalGenerator\",\"points\":"
     "[{\"type\":\"value\",\"value\":3}]}],\"edges\":[" NINE_EDGES "]}",
     {"nodes[9].points", "value", "driver"}},
    {"an existing node's point refused after new nodes",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"io1\",\"type\":\"modbusIo\",\"points\":"
     "[{\"type\":\"address\",\"value\":70000}]}],\"edges\":[" NINE_EDGES "]}",
     {"nodes[9].points", "address", "70000"}},
    {"an edge from an unknown parent",
     -ENOENT,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS "],\"edges\":[" NINE_EDGES
     ",{\"up\":\"ghost\",\"down\":\"a8\"}]}",
     {"edges[9].up", "neither in the document nor in this tree", "ghost"}},
    {"an edge to a node neither in the document nor in the tree",
     -ENOENT,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS "],\"edges\":[" NINE_EDGES
     ",{\"up\":\"a8\",\"down\":\"nowhere\"}]}",
     {"edges[9].down", "neither", "nowhere"}},
    {"a node here with another type",
     -EEXIST,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"g2\",\"type\":\"signalGenerator\"}],"
     "\"edges\":[" NINE_EDGES "]}",
     {"nodes[9]", "exists here with type group", "signalGenerator"}},
    {"a time that is not a date",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"b9\",\"type\":\"group\",\"points\":"
     "[{\"type\":\"description\",\"text\":\"x\",\"time\":\"2026-02-30T00:00:00Z\"}]}],"
     "\"edges\":[" NINE_EDGES "]}",
     {"nodes[9].points[0]", "does not", "2026-02-30T00:00:00Z"}},
    {"a time beyond the drift limit",
     SPRIG_EDRIFT,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"b9\",\"type\":\"group\",\"points\":"
     "[{\"type\":\"description\",\"text\":\"x\",\"time\":\"2200-01-01T00:00:00Z\"}]}],"
     "\"edges\":[" NINE_EDGES ",{\"up\":\"R\",\"down\":\"b9\"}]}",
     {"nodes[9].points", "drift", "description"}},
    {"an edge point beyond the drift limit",
     SPRIG_EDRIFT,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS "],\"edges\":[" NINE_EDGES
     ",{\"up\":\"R\",\"down\":\"g2\",\"points\":[{\"type\":\"tombstone\",\"value\":0,\"time\":"
     "\"2200-01-01T00:00:00Z\"}]}]}",
     {"edges[9]", "drift", "tombstone"}},
    {"an edge point with a bad origin",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS "],\"edges\":[" NINE_EDGES
     ",{\"up\":\"R\",\"down\":\"a8\",\"points\":[{\"type\":\"order\",\"value\":1,\"origin\":"
     "\"bad origin!\"}]}]}",
     {"edges[9]", "origin", "bad origin!"}},
    {"a malformed id in the 10th node",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"bad id!\",\"type\":\"group\"}],"
     "\"edges\":[" NINE_EDGES "]}",
     {"nodes[9].id", "1-64 bytes", "bad id!"}},
    {"a typo in the type of the 10th node",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"b9\",\"type\":\"gruop\"}],"
     "\"edges\":[" NINE_EDGES ",{\"up\":\"a8\",\"down\":\"b9\"}]}",
     {"nodes[9]: node b9", "type \"gruop\" is not declared", "(did you mean group?)"}},
    {"a new rule without its required script",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS
     ",{\"id\":\"ru\",\"type\":\"rule\"}],\"edges\":[" NINE_EDGES
     ",{\"up\":\"R\",\"down\":\"ru\"}]}",
     {"nodes[9]", "required", "script"}},
    {"a new modbusIo under a group (its parent must be a modbus)",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"io9\",\"type\":\"modbusIo\","
     "\"points\":[{\"type\":\"id\",\"value\":1},{\"type\":\"address\",\"value\":1},"
     "{\"type\":\"modbusIoType\",\"text\":\"coil\"}]}],\"edges\":[" NINE_EDGES
     ",{\"up\":\"a8\",\"down\":\"io9\"}]}",
     {"edges[9]", "modbus", "group"}},
    {"a text over the size limit in a later node",
     -EINVAL,
     NULL, /* built in the test */
     {"nodes[9].points", "over the limit", "65537 bytes"}},
    {"a point type that is not an id",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"b9\",\"type\":\"group\",\"points\":"
     "[{\"type\":\"no spaces\",\"value\":1}]}],\"edges\":[" NINE_EDGES "]}",
     {"nodes[9].points", "point type", "no spaces"}},
    {"a value that is a string",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"b9\",\"type\":\"group\",\"points\":"
     "[{\"type\":\"tag\",\"value\":\"12\"}]}],\"edges\":[" NINE_EDGES "]}",
     {"nodes[9].points[0]", "must be a number", "\"12\""}},
    {"an edge tombstone of 2",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS "],\"edges\":[" NINE_EDGES
     ",{\"up\":\"R\",\"down\":\"a8\",\"points\":[{\"type\":\"tombstone\",\"tombstone\":2}]}]}",
     {"edges[9].points[0]", "must be 0 or 1", "not 2"}},
    {"a points list that is not an array",
     -EINVAL,
     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS "],\"edges\":[" NINE_EDGES
     ",{\"up\":\"R\",\"down\":\"a8\",\"points\":{\"type\":\"x\"}}]}",
     {"edges[9].points", "array", "points"}},
};

/* Each refusal on its own: nothing changes, in memory, on the bus, in the store's queue,
 * on disk (after a reopen); the message names the item, the rule and the value; and the
 * same document without its fault is accepted, so the fault alone was refused. */
static void t_refusals_change_nothing(void **state)
{
    fx_t *f = *state;
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        const refusal_t *r = &refusals[i];
        char *doc = (char *)r->doc;
        if (doc == NULL) {
            size_t big = 65537;
            char *text = malloc(big + 1);
            assert_non_null(text);
            memset(text, 'y', big);
            text[big] = '\0';
            doc = malloc(big + 4096);
            assert_non_null(doc);
            snprintf(doc, big + 4096,
                     "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS ",{\"id\":\"b9\",\"type\":"
                     "\"group\",\"points\":[{\"type\":\"description\",\"text\":\"%s\"}]}],"
                     "\"edges\":[" NINE_EDGES "]}",
                     text);
            free(text);
        }
        char rows_before[256];
        rows_text(f, rows_before, sizeof(rows_before));
        snap_t before = snap(f);
        sprig_error_t err = {{0}};
        int rc = import_text(f, doc, &err);
        if (rc != r->code) {
            fail_msg("%s: import returned %d (%s), expected %d", r->what, rc, err.msg, r->code);
        }
        for (int k = 0; k < 3; k++) {
            if (strstr(err.msg, r->says[k]) == NULL) {
                fail_msg("%s: the message does not name \"%s\": %s", r->what, r->says[k], err.msg);
            }
        }
        check_unchanged(f, &before, r->what);
        check_unchanged_on_disk(f, rows_before, before.export, r->what);
        assert_null(sprig_tree_node(tree(f), "a0"));
        free(before.export);
        if (doc != r->doc) {
            free(doc);
        }
    }
    /* The nine groups alone are accepted: it was the fault that was refused. */
    sprig_error_t err = {{0}};
    int rc = import_text(
        f, "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS "],\"edges\":[" NINE_EDGES "]}", &err);
    if (rc != 0) {
        fail_msg("the nine groups alone: %d %s", rc, err.msg);
    }
    assert_non_null(sprig_tree_node(tree(f), "a8"));
    assert_true(sprig_node_live(tree(f), sprig_tree_node(tree(f), "a8")));
}

/* --- an accepted import ------------------------------------------------------------- */

/* A document may link a driver-owned point's driver and write that point in one go: the
 * node points come after every edge. Events come out in list order, after the whole list
 * is in the tree, each point as it was merged (a point given twice: both values). */
typedef struct seen {
    char what[64][80];
    int n;
    fx_t *f;
    bool whole; /* every node of the document was in the tree at every event */
} seen_t;

static void on_seen(const sprig_event_t *ev, void *arg)
{
    seen_t *s = arg;
    if (s->n < 64) {
        snprintf(s->what[s->n++], sizeof(s->what[0]), "%s%s%s %s=%g%s",
                 ev->edge_up ? ev->edge_up : "", ev->edge_up ? "->" : "", ev->node, ev->point->type,
                 ev->point->value, ev->point->text);
    }
    s->whole =
        s->whole && sprig_tree_node(tree(s->f), "w2") != NULL &&
        sprig_tree_point(tree(s->f), sprig_tree_node(tree(s->f), "w2"), "amplitude", NULL) != NULL;
}

static void t_accepted_in_order(void **state)
{
    fx_t *f = *state;
    seen_t s = {.f = f, .whole = true};
    sprig_bus_sub_t *sub = NULL;
    assert_int_equal(sprig_bus_subscribe(sprig_core_bus(f->c), NULL, on_seen, &s, &sub), 0);
    sprig_error_t err = {{0}};
    int rc = import_text(f,
                         "{\"root\":\"R\",\"nodes\":["
                         "{\"id\":\"w1\",\"type\":\"group\",\"points\":[{\"type\":\"x\","
                         "\"value\":1},{\"type\":\"x\",\"value\":2}]},"
                         "{\"id\":\"w2\",\"type\":\"signalGenerator\",\"points\":[{\"type\":"
                         "\"value\",\"value\":7,\"origin\":\"w2\"},{\"type\":\"amplitude\","
                         "\"value\":4}]}],"
                         "\"edges\":[{\"up\":\"R\",\"down\":\"w1\"},{\"up\":\"w1\",\"down\":"
                         "\"w2\",\"points\":[{\"type\":\"tombstone\",\"value\":0}]}]}",
                         &err);
    if (rc != 0) {
        fail_msg("import: %d %s", rc, err.msg);
    }
    sprig_bus_unsubscribe(sprig_core_bus(f->c), sub);
    /* (root -> w1 has no points: a live edge, no event) */
    const char *want[] = {"w1->w2 tombstone=0", "w1 x=1", "w1 x=2", "w2 value=7", "w2 amplitude=4"};
    assert_int_equal(s.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(s.what[i], want[i]);
    }
    assert_true(s.whole);
    assert_int_equal(sprig_tree_hash_check(tree(f), NULL, NULL), 0);
    char *mem = export_text(f);
    check_reopen(f, mem, "the accepted import");
    free(mem);
}

/* --- random documents against a reference --------------------------------------------- */

static uint64_t rnd(fx_t *f)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return f->rng;
}

static size_t pick(fx_t *f, size_t n)
{
    return (size_t)(rnd(f) % n);
}

/* A document being generated: its lists, what a valid import must leave, and the break. */
typedef struct gen {
    cJSON *doc, *nodes, *edges;
    char ids[32][16]; /* the new nodes */
    char types[32][24];
    char parent[32][16]; /* each new node's parent in the document ("R": the root) */
    int n;
    int code;         /* what the import must return */
    char says[3][96]; /* what its message must name */
} gen_t;

static const char *parent_types_ok(const char *type)
{
    if (strcmp(type, "modbusIo") == 0) {
        return "modbus";
    }
    if (strcmp(type, "group") == 0 || strcmp(type, "notification") == 0) {
        return "*";
    }
    return "device group";
}

static bool may_be_under(const char *type, const char *parent_type)
{
    const char *ok = parent_types_ok(type);
    return strcmp(ok, "*") == 0 || strstr(ok, parent_type) != NULL;
}

static cJSON *point_num(const char *type, double v)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", type);
    cJSON_AddNumberToObject(p, "value", v);
    return p;
}

static cJSON *point_text(const char *type, const char *text)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", type);
    cJSON_AddStringToObject(p, "text", text);
    return p;
}

/* The valid points of a new node of that type (required ones included). */
static cJSON *valid_points(fx_t *f, const char *type)
{
    cJSON *a = cJSON_CreateArray();
    if (strcmp(type, "group") == 0) {
        cJSON_AddItemToArray(a, point_text("description", rnd(f) % 2 ? "plant" : "h\u00e9"));
        cJSON_AddItemToArray(a, point_num("tag", (double)pick(f, 100)));
    }
    else if (strcmp(type, "signalGenerator") == 0) {
        cJSON_AddItemToArray(a, point_num("amplitude", (double)pick(f, 10)));
        cJSON_AddItemToArray(a, point_text("signalType", rnd(f) % 2 ? "sine" : "square"));
    }
    else if (strcmp(type, "rule") == 0) {
        cJSON_AddItemToArray(a, point_text("script", "-- a rule"));
    }
    else if (strcmp(type, "modbus") == 0) {
        cJSON_AddItemToArray(a, point_num("baud", 19200));
    }
    else if (strcmp(type, "modbusIo") == 0) {
        cJSON_AddItemToArray(a, point_num("id", 1 + (double)pick(f, 200)));
        cJSON_AddItemToArray(a, point_num("address", (double)pick(f, 65536)));
        cJSON_AddItemToArray(a, point_text("modbusIoType", "coil"));
    }
    else {
        cJSON_AddItemToArray(a, point_text("message", "hello"));
    }
    return a;
}

static cJSON *edge_json(const char *up, const char *down, bool points)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "up", up);
    cJSON_AddStringToObject(e, "down", down);
    if (points) {
        cJSON *a = cJSON_AddArrayToObject(e, "points");
        cJSON_AddItemToArray(a, point_num("tombstone", 0));
    }
    return e;
}

/* A random valid document: new nodes under nodes of the tree or of the document, each
 * where the schema allows it, with valid points; sometimes new points for existing nodes
 * (the root through the document's root id) and an edge point of an existing edge. */
static void gen_valid(fx_t *f, gen_t *g)
{
    static const char *const types[] = {"group",  "group",    "signalGenerator", "rule",
                                        "modbus", "modbusIo", "notification"};
    memset(g, 0, sizeof(*g));
    g->doc = cJSON_CreateObject();
    cJSON_AddStringToObject(g->doc, "root", "R");
    g->nodes = cJSON_AddArrayToObject(g->doc, "nodes");
    g->edges = cJSON_AddArrayToObject(g->doc, "edges");
    int count = 1 + (int)pick(f, 10);
    for (int i = 0; i < count; i++) {
        const char *type = types[pick(f, 7)];
        /* A parent: a new node of the document or an existing one, that may hold it. */
        const char *parent = NULL;
        for (int tries = 0; tries < 20 && parent == NULL; tries++) {
            if (g->n > 0 && rnd(f) % 2 == 0) {
                int k = (int)pick(f, (size_t)g->n);
                if (may_be_under(type, g->types[k])) {
                    parent = g->ids[k];
                }
            }
            else {
                static const char *const olds[][2] = {
                    {"R", "device"}, {"g1", "group"}, {"g2", "group"}, {"m1", "modbus"}};
                size_t k = pick(f, 4);
                if (may_be_under(type, olds[k][1])) {
                    parent = olds[k][0];
                }
            }
        }
        if (parent == NULL) {
            continue;
        }
        snprintf(g->ids[g->n], sizeof(g->ids[0]), "x%d", ++f->seq);
        snprintf(g->types[g->n], sizeof(g->types[0]), "%s", type);
        snprintf(g->parent[g->n], sizeof(g->parent[0]), "%s", parent);
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", g->ids[g->n]);
        cJSON_AddStringToObject(n, "type", type);
        cJSON_AddItemToObject(n, "points", valid_points(f, type));
        cJSON_AddItemToArray(g->nodes, n);
        cJSON_AddItemToArray(g->edges, edge_json(parent, g->ids[g->n], rnd(f) % 2 == 0));
        g->n++;
    }
    if (rnd(f) % 3 == 0) { /* the root, by the document's root id */
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", "R");
        cJSON_AddStringToObject(n, "type", "device");
        cJSON *a = cJSON_AddArrayToObject(n, "points");
        cJSON_AddItemToArray(a, point_text("description", "the root"));
        cJSON_AddItemToArray(g->nodes, n);
    }
    if (rnd(f) % 3 == 0) { /* an existing node */
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", "sg1");
        cJSON_AddStringToObject(n, "type", "signalGenerator");
        cJSON *a = cJSON_AddArrayToObject(n, "points");
        cJSON_AddItemToArray(a, point_num("offset", (double)pick(f, 50)));
        cJSON_AddItemToArray(g->nodes, n);
    }
    if (rnd(f) % 4 == 0) { /* an existing edge */
        cJSON *e = edge_json("g1", "g2", false);
        cJSON *a = cJSON_AddArrayToObject(e, "points");
        cJSON_AddItemToArray(a, point_num("order", (double)pick(f, 9)));
        cJSON_AddItemToArray(g->edges, e);
    }
    g->code = 0;
}

/* Inserts item into list at a random place; returns its index. (cJSON 1.7.15's
 * cJSON_InsertItemInArray fails for any place but the ends: the list is rebuilt.) */
static int insert_at(fx_t *f, cJSON *list, cJSON *item)
{
    cJSON *items[256];
    int size = cJSON_GetArraySize(list);
    assert_true(size < 255);
    int at = (int)pick(f, (size_t)size + 1);
    for (int i = 0; i < size; i++) {
        items[i] = cJSON_DetachItemFromArray(list, 0);
    }
    for (int i = 0, k = 0; i <= size; i++) {
        cJSON_AddItemToArray(list, i == at ? item : items[k++]);
    }
    return at;
}

static void says(gen_t *g, int code, const char *a, const char *b, const char *c)
{
    g->code = code;
    snprintf(g->says[0], sizeof(g->says[0]), "%s", a);
    snprintf(g->says[1], sizeof(g->says[1]), "%s", b);
    snprintf(g->says[2], sizeof(g->says[2]), "%s", c);
}

/* A new node of that type with valid points and a live edge under the root. */
static int add_new(fx_t *f, gen_t *g, const char *type, cJSON *points, char *id, size_t idlen)
{
    snprintf(id, idlen, "x%d", ++f->seq);
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "id", id);
    cJSON_AddStringToObject(n, "type", type);
    cJSON_AddItemToObject(n, "points", points != NULL ? points : valid_points(f, type));
    int at = insert_at(f, g->nodes, n);
    cJSON_AddItemToArray(g->edges, edge_json("R", id, false));
    return at;
}

enum { BREAKS = 14 };

/* Breaks the document in one random place, recording what the import must answer. */
static void gen_break(fx_t *f, gen_t *g)
{
    char id[16], label[64], val[64];
    int at;
    switch (pick(f, BREAKS)) {
    case 0: { /* an edge closing a cycle, at the end of the edges */
        if (g->n == 0) {
            return;
        }
        int k = (int)pick(f, (size_t)g->n);
        const char *up = g->ids[k];
        const char *down = rnd(f) % 3 == 0 ? up : g->parent[k];
        cJSON_AddItemToArray(g->edges, edge_json(up, down, rnd(f) % 2 == 0));
        snprintf(label, sizeof(label), "edges[%d]", cJSON_GetArraySize(g->edges) - 1);
        snprintf(val, sizeof(val), "%s -> %s", up, strcmp(down, "R") == 0 ? "root" : down);
        says(g, SPRIG_ECYCLE, label, "would make a cycle", val);
        break;
    }
    case 1: { /* a node listed twice */
        if (g->n == 0) {
            return;
        }
        int k = (int)pick(f, (size_t)g->n);
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", g->ids[k]);
        cJSON_AddStringToObject(n, "type", rnd(f) % 2 ? g->types[k] : "group");
        insert_at(f, g->nodes, n);
        int first = -1, second = -1, i = 0;
        for (cJSON *it = g->nodes->child; it != NULL; it = it->next, i++) {
            if (strcmp(cJSON_GetObjectItem(it, "id")->valuestring, g->ids[k]) == 0) {
                *(first < 0 ? &first : &second) = i;
            }
        }
        snprintf(label, sizeof(label), "nodes[%d]", second);
        snprintf(val, sizeof(val), "nodes[%d]", first);
        says(g, -EEXIST, label, "listed twice", val);
        break;
    }
    case 2: { /* a rule under a signalGenerator */
        at = add_new(f, g, "rule", NULL, id, sizeof(id));
        cJSON *e = edge_json("sg1", id, false);
        int ei = insert_at(f, g->edges, e);
        snprintf(label, sizeof(label), "edges[%d]", ei);
        says(g, -EINVAL, label, "signalGenerator", id);
        break;
    }
    case 3: { /* a point above its max */
        cJSON *a = valid_points(f, "signalGenerator");
        cJSON_AddItemToArray(a, point_num("sampleRate", 5000));
        at = add_new(f, g, "signalGenerator", a, id, sizeof(id));
        snprintf(label, sizeof(label), "nodes[%d].points", at);
        says(g, -EINVAL, label, "above max", "5000");
        break;
    }
    case 4: { /* a point the type does not declare */
        cJSON *a = valid_points(f, "rule");
        cJSON_AddItemToArray(a, point_num("bogus", 1));
        at = add_new(f, g, "rule", a, id, sizeof(id));
        snprintf(label, sizeof(label), "nodes[%d].points", at);
        says(g, -EINVAL, label, "bogus", "rule");
        break;
    }
    case 5: { /* an edge naming a node that is nowhere */
        snprintf(val, sizeof(val), "ghost%d", ++f->seq);
        bool up = rnd(f) % 2 == 0;
        cJSON *e = edge_json(up ? val : "R", up ? (g->n > 0 ? g->ids[0] : "g1") : val, false);
        at = insert_at(f, g->edges, e);
        snprintf(label, sizeof(label), "edges[%d].%s", at, up ? "up" : "down");
        says(g, -ENOENT, label, "neither in the document nor in this tree", val);
        break;
    }
    case 6: { /* an existing node with another type */
        static const char *const olds[][2] = {{"g1", "group"}, {"m1", "modbus"}, {"r1", "rule"}};
        size_t k = pick(f, 3);
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", olds[k][0]);
        cJSON_AddStringToObject(n, "type", "notification");
        at = insert_at(f, g->nodes, n);
        snprintf(label, sizeof(label), "nodes[%d]", at);
        snprintf(val, sizeof(val), "type %s, not notification", olds[k][1]);
        says(g, -EEXIST, label, olds[k][0], val);
        break;
    }
    case 7: { /* a time that is not RFC 3339 */
        cJSON *a = cJSON_CreateArray();
        cJSON *p = point_text("description", "x");
        cJSON_AddStringToObject(p, "time", "yesterday");
        cJSON_AddItemToArray(a, p);
        at = add_new(f, g, "group", a, id, sizeof(id));
        snprintf(label, sizeof(label), "nodes[%d].points[0]", at);
        says(g, -EINVAL, label, "RFC 3339", "yesterday");
        break;
    }
    case 8: { /* a time beyond the drift limit */
        cJSON *a = valid_points(f, "group");
        cJSON *p = point_num("late", 1);
        cJSON_AddStringToObject(p, "time", "2099-01-01T00:00:00Z");
        cJSON_AddItemToArray(a, p);
        at = add_new(f, g, "group", a, id, sizeof(id));
        snprintf(label, sizeof(label), "nodes[%d].points", at);
        says(g, SPRIG_EDRIFT, label, "drift", "late");
        break;
    }
    case 9: { /* a malformed id */
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", "has space");
        cJSON_AddStringToObject(n, "type", "group");
        at = insert_at(f, g->nodes, n);
        snprintf(label, sizeof(label), "nodes[%d].id", at);
        says(g, -EINVAL, label, "1-64 bytes", "has space");
        break;
    }
    case 10: { /* a required point missing */
        at = add_new(f, g, "modbusIo", cJSON_CreateArray(), id, sizeof(id));
        snprintf(label, sizeof(label), "nodes[%d]", at);
        says(g, -EINVAL, label, "required", "modbusIo");
        /* (its edge from the root would be refused too, but the node comes first) */
        break;
    }
    case 11: { /* a driver-owned point written by a person, on an existing node */
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", "io1");
        cJSON_AddStringToObject(n, "type", "modbusIo");
        cJSON *a = cJSON_AddArrayToObject(n, "points");
        cJSON_AddItemToArray(a, point_num("value", 12));
        at = insert_at(f, g->nodes, n);
        snprintf(label, sizeof(label), "nodes[%d].points", at);
        says(g, -EINVAL, label, "\"value\"", "driver");
        break;
    }
    case 12: { /* a bad origin on an edge point */
        cJSON *e = edge_json("g1", "g2", false);
        cJSON *a = cJSON_AddArrayToObject(e, "points");
        cJSON *p = point_num("order", 1);
        cJSON_AddStringToObject(p, "origin", "not/an/id");
        cJSON_AddItemToArray(a, p);
        at = insert_at(f, g->edges, e);
        snprintf(label, sizeof(label), "edges[%d]", at);
        says(g, -EINVAL, label, "origin", "not/an/id");
        break;
    }
    default: { /* a modbusIo under a group */
        at = add_new(f, g, "modbusIo", NULL, id, sizeof(id));
        cJSON_DeleteItemFromArray(g->edges, cJSON_GetArraySize(g->edges) - 1);
        int ei = insert_at(f, g->edges, edge_json("g2", id, false));
        snprintf(label, sizeof(label), "edges[%d]", ei);
        says(g, -EINVAL, label, "modbus", "group");
        break;
    }
    }
}

/* What an accepted document must have left: every node with its type, every edge live
 * (or as its tombstone says), every point given without a time held as given. */
static void check_applied(fx_t *f, gen_t *g)
{
    for (cJSON *it = g->nodes->child; it != NULL; it = it->next) {
        const char *id = cJSON_GetObjectItem(it, "id")->valuestring;
        sprig_node_t *n = sprig_tree_node(tree(f), strcmp(id, "R") == 0 ? "root" : id);
        assert_non_null(n);
        if (strcmp(id, "R") != 0) {
            assert_string_equal(sprig_node_type(n), cJSON_GetObjectItem(it, "type")->valuestring);
        }
        for (cJSON *p = cJSON_GetObjectItem(it, "points")->child; p != NULL; p = p->next) {
            const sprig_point_t *held =
                sprig_tree_point(tree(f), n, cJSON_GetObjectItem(p, "type")->valuestring, NULL);
            assert_non_null(held);
            cJSON *v = cJSON_GetObjectItem(p, "value"), *t = cJSON_GetObjectItem(p, "text");
            if (v != NULL) {
                assert_true(held->value == v->valuedouble);
            }
            if (t != NULL) {
                assert_string_equal(held->text, t->valuestring);
            }
        }
    }
    for (cJSON *it = g->edges->child; it != NULL; it = it->next) {
        const char *up = cJSON_GetObjectItem(it, "up")->valuestring;
        sprig_node_t *u = sprig_tree_node(tree(f), strcmp(up, "R") == 0 ? "root" : up);
        sprig_node_t *d = sprig_tree_node(tree(f), cJSON_GetObjectItem(it, "down")->valuestring);
        assert_non_null(u);
        assert_non_null(d);
        sprig_edge_t *e = sprig_tree_edge(tree(f), u, d);
        assert_non_null(e);
        assert_false(sprig_edge_tombstone(e));
    }
}

static void t_random_documents(void **state)
{
    enum { DOCS = 400 };
    fx_t *f = *state;
    int valid = 0, broken = 0, by_code[4] = {0};
    for (int d = 0; d < DOCS; d++) {
        gen_t g;
        gen_valid(f, &g);
        bool do_break = rnd(f) % 5 != 0;
        if (do_break) {
            gen_break(f, &g);
        }
        char *text = cJSON_PrintUnformatted(g.doc);
        char what[32];
        snprintf(what, sizeof(what), "document %d", d);
        current_doc = text;
        char rows_before[256] = "";
        bool disk = d % 40 == 39;
        if (disk) {
            rows_text(f, rows_before, sizeof(rows_before)); /* (flushes the store first) */
        }
        snap_t before = snap(f);
        sprig_error_t err = {{0}};
        long nodes = -1, points = -1;
        int rc = sprig_import_json(f->c, g.doc, &nodes, &points, &err);
        if (rc != g.code) {
            fail_msg("document %d: import returned %d (%s), expected %d (%s %s %s)\n%s", d, rc,
                     err.msg, g.code, g.says[0], g.says[1], g.says[2], text);
        }
        if (rc != 0) {
            for (int k = 0; k < 3; k++) {
                if (strstr(err.msg, g.says[k]) == NULL) {
                    fail_msg("document %d: the message does not name \"%s\": %s\n%s", d, g.says[k],
                             err.msg, text);
                }
            }
            check_unchanged(f, &before, what);
            if (disk) {
                check_unchanged_on_disk(f, rows_before, before.export, what);
            }
            broken++;
            by_code[rc == -EINVAL ? 0 : rc == -EEXIST ? 1 : rc == -ENOENT ? 2 : 3]++;
        }
        else {
            assert_int_equal(nodes, cJSON_GetArraySize(g.nodes));
            check_applied(f, &g);
            snap_t after = snap(f);
            assert_true(after.stats.accepted > before.stats.accepted);
            assert_int_equal(after.events - before.events,
                             (long)(after.stats.accepted - before.stats.accepted));
            assert_int_equal(sprig_tree_hash_check(tree(f), NULL, NULL), 0);
            if (disk) {
                char *mem = export_text(f);
                assert_int_equal(sprig_store_flush(sprig_core_store(f->c)), 0);
                check_reopen(f, mem, what);
                free(mem);
            }
            free(after.export);
            valid++;
        }
        free(before.export);
        current_doc = NULL;
        cJSON_free(text);
        cJSON_Delete(g.doc);
    }
    print_message("%d random documents: %d accepted, %d refused (EINVAL %d, EEXIST %d, ENOENT "
                  "%d, cycle/drift %d)\n",
                  DOCS, valid, broken, by_code[0], by_code[1], by_code[2], by_code[3]);
    assert_true(valid > 40 && broken > 250);
    for (int k = 0; k < 4; k++) {
        assert_true(by_code[k] > 10);
    }
}

/* A valid document whose import runs out of memory at its k-th allocation, for each k
 * until it succeeds: each failure leaves the tree as it was (or, past the point where the
 * tree took all of it, says the rows could not be queued). */
static void t_import_out_of_memory(void **state)
{
    fx_t *f = *state;
    const char *doc = "{\"root\":\"R\",\"nodes\":[" NINE_GROUPS
                      ",{\"id\":\"s9\",\"type\":\"signalGenerator\",\"points\":[{\"type\":"
                      "\"amplitude\",\"value\":2,\"text\":\"some text\"}]}],\"edges\":[" NINE_EDGES
                      ",{\"up\":\"R\",\"down\":\"s9\"}]}";
    int ok = 0, unqueued = 0;
    for (long k = 0; k < 5000 && !ok; k++) {
        cJSON *j = cJSON_Parse(doc);
        assert_non_null(j);
        snap_t before = snap(f);
        sprig_error_t err = {{0}};
        sprig_alloc_fail_after(k);
        int rc = sprig_import_json(f->c, j, NULL, NULL, &err);
        sprig_alloc_fail_after(-1);
        cJSON_Delete(j);
        if (rc == 0) {
            ok = 1;
        }
        else if (strstr(err.msg, "were applied") == NULL) {
            assert_int_equal(rc, -ENOMEM);
            check_unchanged(f, &before, err.msg);
        }
        else {
            /* Out of memory while queueing the rows of a list the tree took: the tree is
             * whole and says so (core.h); the store is short of those rows. */
            assert_int_equal(rc, -ENOMEM);
            assert_non_null(sprig_tree_node(tree(f), "s9"));
            unqueued++;
            ok = 1;
        }
        free(before.export);
    }
    print_message("out of memory at each allocation until the import went through; %d times "
                  "in the store's queue after the tree took it\n",
                  unqueued);
    assert_true(ok);
    assert_non_null(sprig_tree_node(tree(f), "s9"));
    assert_int_equal(sprig_tree_hash_check(tree(f), NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_refusals_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(t_accepted_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(t_random_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(t_import_out_of_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
