/* Unit tests of the schema module (schema.h): the shipped types load and say what the
 * drivers expect; every kind and attribute accepts good values and refuses bad ones with
 * the exact message; inheritance; creation (required points, parent types); owners; keys
 * of arrays and maps; local points; and the corpus of broken schema files
 * (tests/schema_corpus/bad, each run in a child process under a time limit) and of good
 * ones. The source tree is found from this file's path, so no build setting is needed. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "testutil.h"

#include "sprig/core.h"
#include "sprig/err.h"
#include "sprig/schema.h"
#include "schema_internal.h"

#define MAX_MSGS 64
#define CORPUS_TIME_LIMIT 5 /* seconds one broken file may take to load */

/* Messages a load reported. */
typedef struct msgs {
    char msg[MAX_MSGS][700];
    int n;
} msgs_t;

static void collect(const char *msg, void *arg)
{
    msgs_t *m = arg;
    if (m->n < MAX_MSGS) {
        /* A longer message is cut; the tests compare shorter ones. */
        size_t len = strlen(msg) < sizeof(m->msg[0]) ? strlen(msg) : sizeof(m->msg[0]) - 1;
        memcpy(m->msg[m->n], msg, len);
        m->msg[m->n][len] = '\0';
    }
    m->n++;
}

static void print_msgs(const msgs_t *m)
{
    for (int i = 0; i < m->n && i < MAX_MSGS; i++) {
        print_message("  reported: %s\n", m->msg[i]);
    }
}

/* <source>/<rel>, from this file's path (<source>/tests/unit/test_schema.c). */
static void write_file(const char *dir, const char *name, const char *text)
{
    char p[PATH_MAX];
    FILE *f = fopen(tu_path(p, dir, name), "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Loads the shipped folder, then extra (may be NULL); asserts `errors` errors. */
static sprig_schema_t *load(const char *extra, int errors, msgs_t *m)
{
    char shipped[PATH_MAX];
    const char *dirs[2] = {tu_source_path(shipped, "schema"), extra};
    sprig_schema_t *s = (sprig_schema_t *)1;
    memset(m, 0, sizeof(*m));
    int rc = sprig_schema_load(dirs, extra != NULL ? 2 : 1, &s, collect, m);
    if (rc != errors) {
        print_msgs(m);
    }
    assert_int_equal(rc, errors);
    assert_int_equal(m->n, errors);
    if (errors != 0) {
        assert_null(s);
    }
    else {
        assert_non_null(s);
    }
    return s;
}

/* Loads the shipped folder plus one folder holding `text` as test.lua; 0 errors. */
static sprig_schema_t *load_text(const char *text)
{
    char dir[PATH_MAX];
    msgs_t m;
    assert_int_equal(tu_tmpdir(dir), 0);
    write_file(dir, "test.lua", text);
    sprig_schema_t *s = load(dir, 0, &m);
    tu_rmdir(dir);
    return s;
}

/* Asserts check_point of one point gives want ("" for success). */
static void expect_point(const sprig_schema_type_t *t, const char *node, sprig_point_t p,
                         const char *want)
{
    sprig_error_t err = {.msg = ""};
    int rc = sprig_schema_check_point(t, node, &p, &err);
    if (want[0] == '\0') {
        if (rc != 0) {
            print_message("  unexpected refusal: %s\n", err.msg);
        }
        assert_int_equal(rc, 0);
    }
    else {
        assert_int_equal(rc, -EINVAL);
        assert_string_equal(err.msg, want);
    }
}

static sprig_point_t num(const char *type, double v)
{
    return (sprig_point_t){.type = type, .value = v};
}

static sprig_point_t txt(const char *type, const char *text)
{
    return (sprig_point_t){.type = type, .text = text};
}

static sprig_point_t keyed(const char *type, const char *key, double v)
{
    return (sprig_point_t){.type = type, .key = key, .value = v};
}

static sprig_point_t from(const char *type, double v, const char *origin)
{
    return (sprig_point_t){.type = type, .value = v, .origin = origin};
}

static void assert_list(const char *const *got, const char *const *want)
{
    size_t i = 0;
    assert_non_null(got);
    for (; want[i] != NULL; i++) {
        assert_non_null(got[i]);
        assert_string_equal(got[i], want[i]);
    }
    assert_null(got[i]);
}

/* --- through the core: refused writes leave nothing behind ------------------------------ */

static void count_event(const sprig_event_t *ev, void *arg)
{
    (void)ev;
    (*(int *)arg)++;
}

/* With the shipped schema attached to a core, every refusal of the write path (create and
 * write, each kind of rule) returns its sentence and leaves the tree, the root hash, the
 * bus and the database as they were; defaults are filled in at creation. */
static void test_core_refusals(void **state)
{
    (void)state;
    char dir[PATH_MAX], db[PATH_MAX];
    msgs_t m;
    sprig_schema_t *s = load(NULL, 0, &m);
    assert_int_equal(tu_tmpdir(dir), 0);
    tu_path(db, dir, "core.db");
    uv_loop_t loop;
    uv_loop_init(&loop);
    sprig_core_t *c = NULL;
    sprig_error_t err = {{0}};
    sprig_core_opts_t o = {.db_path = db};
    assert_int_equal(sprig_core_open(&loop, &o, &c, &err), 0);
    sprig_core_set_schema(c, s);
    const char *root = sprig_core_root_id(c);
    sprig_point_t sg[] = {{.type = "sampleRate", .value = 5}};
    assert_int_equal(sprig_core_create(c, "sg1", "signalGenerator", root, sg, 1, NULL, NULL, &err),
                     0);
    const sprig_point_t *def = sprig_tree_point(
        sprig_core_tree(c), sprig_tree_node(sprig_core_tree(c), "sg1"), "signalType", "0");
    assert_non_null(def);
    assert_string_equal(def->text, "sine");
    assert_int_equal(sprig_store_flush(sprig_core_store(c)), 0);
    int events = 0;
    sprig_bus_subscribe(sprig_core_bus(c), NULL, count_event, &events, NULL);
    uint64_t hash = sprig_tree_root_hash(sprig_core_tree(c));
    size_t npoints = sprig_tree_point_count(sprig_core_tree(c));
    long long rows0 = 0, rows1 = 0;
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM points", &rows0), 0);
    static const struct {
        sprig_point_t p;
        const char *msg;
    } bad[] = {
        {{.type = "sampleRate", .value = 5000},
         "node sg1: point \"sampleRate\" = 5000 is above max 1000 (signalGenerator)"},
        {{.type = "signalType", .text = "saw"},
         "node sg1: point \"signalType\" = \"saw\" is not one of sine, square, triangle, random "
         "(signalGenerator)"},
        {{.type = "speed", .value = 1},
         "node sg1: point \"speed\" is not declared by type "
         "signalGenerator"},
        {{.type = "value", .value = 1},
         "node sg1: point \"value\" is written by its driver only, not by a person "
         "(signalGenerator)"},
        {{.type = "amplitude", .key = "1", .value = 1},
         "node sg1: point \"amplitude\" key \"1\" is not allowed: it has one value, key \"0\" "
         "(signalGenerator)"},
        {{.type = "disabled", .value = 2},
         "node sg1: point \"disabled\" = 2 is not 0 or 1 "
         "(signalGenerator)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sprig_point_t batch[2] = {{.type = "offset", .value = 3}, bad[i].p};
        assert_int_equal(sprig_core_write(c, "sg1", batch, 2, NULL, &err), -EINVAL);
        assert_string_equal(err.msg, bad[i].msg);
    }
    sprig_point_t none[1] = {{.type = "description", .text = "x"}};
    assert_int_equal(sprig_core_create(c, "io1", "modbusIo", root, none, 1, NULL, NULL, &err),
                     -EINVAL);
    assert_string_equal(err.msg, "node io1: a modbusIo may not be placed under a device (allowed "
                                 "parents: modbus)");
    assert_null(sprig_tree_node(sprig_core_tree(c), "io1"));
    assert_int_equal(sprig_core_create(c, "g1", "group", "sg1", NULL, 0, NULL, NULL, &err), 0);
    assert_int_equal(sprig_core_mirror(c, "sg1", "g1", NULL, &err), SPRIG_ECYCLE);
    assert_int_equal(sprig_store_flush(sprig_core_store(c)), 0);
    hash = sprig_tree_root_hash(sprig_core_tree(c));
    npoints = sprig_tree_point_count(sprig_core_tree(c));
    events = 0;
    assert_int_equal(sprig_tree_hash_check(sprig_core_tree(c), NULL, NULL), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sprig_point_t batch[2] = {{.type = "offset", .value = 4}, bad[i].p};
        assert_int_equal(sprig_core_write(c, "sg1", batch, 2, NULL, &err), -EINVAL);
    }
    assert_int_equal(events, 0);
    assert_true(sprig_tree_root_hash(sprig_core_tree(c)) == hash);
    assert_int_equal(sprig_tree_point_count(sprig_core_tree(c)), npoints);
    assert_int_equal(sprig_store_flush(sprig_core_store(c)), 0);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM points", &rows1), 0);
    assert_int_equal(rows1, rows0); /* the group has no node points; refusals added none */
    long long off = 0;
    assert_int_equal(tu_sql_int(db,
                                "SELECT count(*) FROM points WHERE node = 'sg1' AND "
                                "type = 'offset'",
                                &off),
                     0);
    assert_int_equal(off, 1); /* the default only, never a refused batch's 3 or 4 */
    assert_int_equal(sprig_core_close(c), 0);
    assert_int_equal(tu_loop_finish(&loop), 0);
    sprig_schema_free(s);
    tu_rmdir(dir);
}

/* --- the shipped types --------------------------------------------------------------- */

static void test_shipped_loads(void **state)
{
    (void)state;
    msgs_t m;
    sprig_schema_t *s = load(NULL, 0, &m);
    static const char *const names[] = {"device",       "group", "modbus", "modbusIo",
                                        "notification", "rule",  "serial", "signalGenerator",
                                        "sync",         NULL};
    for (const char *const *n = names; *n != NULL; n++) {
        const sprig_schema_type_t *t = sprig_schema_type(s, *n);
        if (t == NULL) {
            print_message("  type %s is not shipped\n", *n);
        }
        assert_non_null(t);
        assert_string_equal(t->name, *n);
        assert_non_null(t->description);
        assert_non_null(t->file);
        assert_true(t->line > 0);
        /* Every shipped point has a description, so `schema show` explains it. */
        for (size_t i = 0; i < t->npoints; i++) {
            if (t->points[i].description == NULL) {
                print_message("  %s.%s has no description\n", *n, t->points[i].name);
            }
            assert_non_null(t->points[i].description);
            assert_string_equal(t->points[i].declared_in, *n);
        }
        /* Every type takes a description. */
        assert_non_null(sprig_schema_point(t, "description"));
    }
    /* In name order, each once. */
    const sprig_schema_type_t *prev = NULL, *t;
    size_t count = 0;
    for (size_t i = 0; (t = sprig_schema_type_at(s, i)) != NULL; i++, count++) {
        if (prev != NULL) {
            assert_true(strcmp(prev->name, t->name) < 0);
        }
        prev = t;
    }
    assert_int_equal(count, 9);
    assert_null(sprig_schema_type(s, "nosuchType"));
    assert_true(sprig_schema_type(s, "device")->open);
    assert_true(sprig_schema_type(s, "group")->open);
    assert_false(sprig_schema_type(s, "modbusIo")->open);
    assert_null(sprig_schema_type(s, "device")->parents);
    assert_null(sprig_schema_type(s, "notification")->parents);
    static const char *const mb[] = {"modbus", NULL};
    assert_list(sprig_schema_type(s, "modbusIo")->parents, mb);
    static const char *const dg[] = {"device", "group", NULL};
    static const char *const under_dg[] = {"modbus", "serial", "signalGenerator",
                                           "rule",   "sync",   NULL};
    for (const char *const *n = under_dg; *n != NULL; n++) {
        assert_list(sprig_schema_type(s, *n)->parents, dg);
    }
    sprig_schema_free(s);
    sprig_schema_free(NULL);
}

/* The signalGenerator type says what drivers/signalGenerator/signalGenerator.c reads. */
static void test_shipped_signal_generator(void **state)
{
    (void)state;
    msgs_t m;
    sprig_schema_t *s = load(NULL, 0, &m);
    const sprig_schema_type_t *t = sprig_schema_type(s, "signalGenerator");
    assert_non_null(t);
    const sprig_schema_point_t *p = sprig_schema_point(t, "signalType");
    assert_non_null(p);
    assert_int_equal(p->kind, SPRIG_KIND_ENUM);
    static const char *const kinds[] = {"sine", "square", "triangle", "random", NULL};
    assert_list(p->values, kinds);
    assert_string_equal(p->default_text, "sine");
    p = sprig_schema_point(t, "amplitude");
    assert_int_equal(p->kind, SPRIG_KIND_NUMBER);
    assert_true(p->has_default && p->default_value == 1);
    p = sprig_schema_point(t, "offset");
    assert_true(p->has_default && p->default_value == 0);
    p = sprig_schema_point(t, "period");
    assert_true(p->has_min && p->min == 0.001 && !p->has_max);
    assert_string_equal(p->unit, "s");
    assert_true(p->has_default && p->default_value == 10);
    p = sprig_schema_point(t, "sampleRate");
    assert_true(p->has_min && p->min == 0.001 && p->has_max && p->max == 1000);
    assert_string_equal(p->unit, "Hz");
    assert_true(p->has_default && p->default_value == 1);
    p = sprig_schema_point(t, "disabled");
    assert_int_equal(p->kind, SPRIG_KIND_BOOL);
    p = sprig_schema_point(t, "value");
    assert_true(p->owner_driver);
    assert_int_equal(sprig_schema_point(t, "description")->kind, SPRIG_KIND_TEXT);
    assert_int_equal(t->npoints, 8);

    /* What `sprig run --demo` creates is accepted, and the driver may write its value. */
    sprig_point_t demo[] = {
        txt("description", "Tank temperature (degC), sine"),
        txt("signalType", "sine"),
        num("amplitude", 5),
        num("offset", 21),
        num("period", 30),
        num("sampleRate", 1000),
    };
    sprig_error_t err;
    assert_int_equal(sprig_schema_check_create(t, "demo-temp", "group", demo, 6, &err), 0);
    for (size_t i = 0; i < 6; i++) {
        expect_point(t, "demo-temp", demo[i], "");
    }
    expect_point(t, "demo-temp", from("value", 21.5, "demo-temp"), "");
    expect_point(t, "g1", num("sampleRate", 1001),
                 "node g1: point \"sampleRate\" = 1001 is above max 1000 (signalGenerator)");
    expect_point(t, "g1", num("period", 0),
                 "node g1: point \"period\" = 0 is below min 0.001 (signalGenerator)");
    expect_point(t, "g1", txt("signalType", "sawtooth"),
                 "node g1: point \"signalType\" = \"sawtooth\" is not one of sine, square, "
                 "triangle, random (signalGenerator)");
    assert_int_equal(sprig_schema_check_create(t, "g1", "modbus", NULL, 0, &err), -EINVAL);
    assert_string_equal(err.msg, "node g1: a signalGenerator may not be placed under a modbus "
                                 "(allowed parents: device, group)");
    sprig_schema_free(s);
}

/* modbusIo, sync, rule and serial carry what their issues list. */
static void test_shipped_others(void **state)
{
    (void)state;
    msgs_t m;
    sprig_schema_t *s = load(NULL, 0, &m);
    const sprig_schema_type_t *io = sprig_schema_type(s, "modbusIo");
    static const char *const io_pts[] = {"id",        "address",    "modbusIoType", "dataFormat",
                                         "byteOrder", "bit",        "scale",        "offset",
                                         "readOnly",  "pollPeriod", "value",        "valueSet",
                                         "quality",   "disabled",   "description",  NULL};
    for (const char *const *n = io_pts; *n != NULL; n++) {
        if (sprig_schema_point(io, *n) == NULL) {
            print_message("  modbusIo has no point %s\n", *n);
        }
        assert_non_null(sprig_schema_point(io, *n));
    }
    static const char *const formats[] = {"uint16", "int16",   "uint32",  "int32", "uint64",
                                          "int64",  "float32", "float64", NULL};
    assert_list(sprig_schema_point(io, "dataFormat")->values, formats);
    assert_string_equal(sprig_schema_point(io, "dataFormat")->default_text, "uint16");
    static const char *const orders[] = {"ABCD", "DCBA", "BADC", "CDAB", NULL};
    assert_list(sprig_schema_point(io, "byteOrder")->values, orders);
    assert_true(sprig_schema_point(io, "id")->required);
    assert_true(sprig_schema_point(io, "address")->required);
    assert_true(sprig_schema_point(io, "value")->owner_driver);
    assert_true(sprig_schema_point(io, "quality")->owner_driver);
    assert_false(sprig_schema_point(io, "valueSet")->owner_driver);
    assert_true(sprig_schema_point(io, "scale")->default_value == 1);

    const sprig_schema_type_t *bus = sprig_schema_type(s, "modbus");
    static const char *const bus_pts[] = {
        "clientServer", "protocol", "port",     "uri",        "baud",    "parity",
        "dataBits",     "stopBits", "id",       "pollPeriod", "timeout", "retries",
        "maxRegisters", "maxGap",   "disabled", "errorCount", NULL};
    for (const char *const *n = bus_pts; *n != NULL; n++) {
        if (sprig_schema_point(bus, *n) == NULL) {
            print_message("  modbus has no point %s\n", *n);
        }
        assert_non_null(sprig_schema_point(bus, *n));
    }
    assert_true(sprig_schema_point(bus, "maxRegisters")->default_value == 125);

    /* sync: its status points are local to the instance; its config is not. */
    static const char *const local[] = {"state",   "lastSync",  "syncCount",   "repairCount",
                                        "bytesUp", "bytesDown", "histPending", NULL};
    for (const char *const *n = local; *n != NULL; n++) {
        if (!sprig_schema_is_local(s, "sync", *n)) {
            print_message("  sync.%s is not local\n", *n);
        }
        assert_true(sprig_schema_is_local(s, "sync", *n));
        assert_true(sprig_schema_point(sprig_schema_type(s, "sync"), *n)->owner_driver);
    }
    static const char *const states[] = {"connecting", "syncing", "insync", "error", NULL};
    assert_list(sprig_schema_point(sprig_schema_type(s, "sync"), "state")->values, states);
    assert_true(sprig_schema_point(sprig_schema_type(s, "sync"), "period")->default_value == 20);
    assert_false(sprig_schema_is_local(s, "sync", "uri"));
    assert_false(sprig_schema_is_local(s, "sync", "period"));
    assert_false(sprig_schema_is_local(s, "sync", "noSuchPoint"));
    assert_false(sprig_schema_is_local(s, "noSuchType", "state"));
    assert_false(sprig_schema_is_local(s, "modbusIo", "value"));

    const sprig_schema_type_t *rule = sprig_schema_type(s, "rule");
    assert_true(sprig_schema_point(rule, "script")->required);
    assert_int_equal(sprig_schema_point(rule, "script")->kind, SPRIG_KIND_TEXT);
    assert_int_equal(sprig_schema_point(rule, "error")->kind, SPRIG_KIND_TEXT);
    assert_int_equal(sprig_schema_point(rule, "runs")->kind, SPRIG_KIND_INTEGER);
    assert_string_equal(sprig_schema_point(rule, "lastRun")->unit, "ns");
    sprig_error_t err;
    assert_int_equal(sprig_schema_check_create(rule, "r1", "device", NULL, 0, &err), -EINVAL);
    assert_string_equal(err.msg, "node r1: required point \"script\" is missing (rule)");

    const sprig_schema_type_t *ser = sprig_schema_type(s, "serial");
    static const char *const ser_pts[] = {"port",          "baud",    "parity",    "dataBits",
                                          "stopBits",      "mode",    "parser",    "timeout",
                                          "disabled",      "rx",      "tx",        "crcErrors",
                                          "framingErrors", "retries", "connected", NULL};
    for (const char *const *n = ser_pts; *n != NULL; n++) {
        if (sprig_schema_point(ser, *n) == NULL) {
            print_message("  serial has no point %s\n", *n);
        }
        assert_non_null(sprig_schema_point(ser, *n));
    }
    static const char *const modes[] = {"mcu", "line", NULL};
    assert_list(sprig_schema_point(ser, "mode")->values, modes);
    sprig_schema_free(s);
}

/* --- kinds and attributes ------------------------------------------------------------ */

static const char pump_schema[] =
    "nodetype \"pump\" {\n"
    "  description = \"A test pump\",\n"
    "  points = {\n"
    "    speed    = { kind = \"number\", min = 0, max = 3000, unit = \"rpm\", default = 100,\n"
    "                description = \"Shaft speed\" },\n"
    "    count    = { kind = \"integer\", min = -5, max = 5 },\n"
    "    big      = { kind = \"integer\" },\n"
    "    ratio    = { kind = \"number\" },\n"
    "    on       = { kind = \"bool\", default = false },\n"
    "    label    = { kind = \"text\", default = \"new\" },\n"
    "    mode     = { kind = \"enum\", values = { \"auto\", \"manual\" }, default = \"auto\" },\n"
    "    value    = { kind = \"number\", owner = \"driver\" },\n"
    "    note     = { kind = \"text\", owner = \"any\" },\n"
    "    channels = { kind = \"number\", array = true },\n"
    "    tags     = { kind = \"text\", map = true },\n"
    "    limits   = { kind = \"number\", map = { \"low\", \"high\" } },\n"
    "    serialNo = { kind = \"text\", required = true },\n"
    "    level    = { kind = \"number\", required = true, default = 3 },\n"
    "    cache    = { kind = \"number\", [\"local\"] = true },\n"
    "  },\n"
    "}\n"
    "\n"
    "nodetype \"pumpPart\" { parents = { \"pump\", \"group\" }, points = {} }\n";

static void test_attributes_parsed(void **state)
{
    (void)state;
    sprig_schema_t *s = load_text(pump_schema);
    const sprig_schema_type_t *t = sprig_schema_type(s, "pump");
    assert_non_null(t);
    assert_string_equal(t->description, "A test pump");
    assert_null(t->extends);
    assert_null(t->parents);
    assert_false(t->open);
    assert_int_equal(t->line, 1);
    assert_non_null(strstr(t->file, "/test.lua"));
    assert_int_equal(t->npoints, 15);
    assert_int_equal(sprig_schema_type(s, "pumpPart")->line, 23);

    const sprig_schema_point_t *p = sprig_schema_point(t, "speed");
    assert_string_equal(p->name, "speed");
    assert_int_equal(p->kind, SPRIG_KIND_NUMBER);
    assert_true(p->has_min && p->min == 0 && p->has_max && p->max == 3000);
    assert_string_equal(p->unit, "rpm");
    assert_string_equal(p->description, "Shaft speed");
    assert_true(p->has_default && p->default_value == 100);
    assert_null(p->default_text);
    assert_false(p->required || p->owner_driver || p->local);
    assert_int_equal(p->keys, SPRIG_KEYS_ONE);
    assert_null(p->values);
    assert_null(p->map_keys);
    assert_string_equal(p->declared_in, "pump");

    p = sprig_schema_point(t, "count");
    assert_int_equal(p->kind, SPRIG_KIND_INTEGER);
    assert_true(p->min == -5 && p->max == 5 && !p->has_default);
    assert_null(p->unit);
    assert_null(p->description);
    p = sprig_schema_point(t, "big");
    assert_false(p->has_min || p->has_max);
    p = sprig_schema_point(t, "on");
    assert_int_equal(p->kind, SPRIG_KIND_BOOL);
    assert_true(p->has_default && p->default_value == 0);
    p = sprig_schema_point(t, "label");
    assert_int_equal(p->kind, SPRIG_KIND_TEXT);
    assert_true(p->has_default);
    assert_string_equal(p->default_text, "new");
    p = sprig_schema_point(t, "mode");
    assert_int_equal(p->kind, SPRIG_KIND_ENUM);
    static const char *const modes[] = {"auto", "manual", NULL};
    assert_list(p->values, modes);
    assert_string_equal(p->default_text, "auto");
    assert_true(sprig_schema_point(t, "value")->owner_driver);
    assert_false(sprig_schema_point(t, "note")->owner_driver);
    assert_int_equal(sprig_schema_point(t, "channels")->keys, SPRIG_KEYS_ARRAY);
    assert_int_equal(sprig_schema_point(t, "tags")->keys, SPRIG_KEYS_MAP);
    assert_null(sprig_schema_point(t, "tags")->map_keys);
    static const char *const lim[] = {"low", "high", NULL};
    assert_int_equal(sprig_schema_point(t, "limits")->keys, SPRIG_KEYS_MAP);
    assert_list(sprig_schema_point(t, "limits")->map_keys, lim);
    p = sprig_schema_point(t, "serialNo");
    assert_true(p->required && !p->has_default);
    p = sprig_schema_point(t, "level");
    assert_true(p->required && p->has_default && p->default_value == 3);
    assert_true(sprig_schema_point(t, "cache")->local);
    assert_true(sprig_schema_is_local(s, "pump", "cache"));
    assert_false(sprig_schema_is_local(s, "pump", "speed"));
    assert_null(sprig_schema_point(t, "nosuch"));
    sprig_schema_free(s);
}

static void test_kinds_checked(void **state)
{
    (void)state;
    sprig_schema_t *s = load_text(pump_schema);
    const sprig_schema_type_t *t = sprig_schema_type(s, "pump");
    /* number with a range */
    expect_point(t, "pump-1", num("speed", 0), "");
    expect_point(t, "pump-1", num("speed", 3000), "");
    expect_point(t, "pump-1", num("speed", 1234.5), "");
    expect_point(t, "pump-1", num("speed", 4000),
                 "node pump-1: point \"speed\" = 4000 is above max 3000 (pump)");
    expect_point(t, "pump-1", num("speed", -0.5),
                 "node pump-1: point \"speed\" = -0.5 is below min 0 (pump)");
    /* number without a range */
    expect_point(t, "pump-1", num("ratio", -1e300), "");
    expect_point(t, "pump-1", num("ratio", 1e300), "");
    /* integer */
    expect_point(t, "pump-1", num("count", -5), "");
    expect_point(t, "pump-1", num("count", 5), "");
    expect_point(t, "pump-1", num("count", 1.5),
                 "node pump-1: point \"count\" = 1.5 is not an integer (pump)");
    expect_point(t, "pump-1", num("count", 6),
                 "node pump-1: point \"count\" = 6 is above max 5 (pump)");
    expect_point(t, "pump-1", num("count", -6),
                 "node pump-1: point \"count\" = -6 is below min -5 (pump)");
    expect_point(t, "pump-1", num("big", 9007199254740992.0), "");
    expect_point(t, "pump-1", num("big", 0.25),
                 "node pump-1: point \"big\" = 0.25 is not an integer (pump)");
    /* bool */
    expect_point(t, "pump-1", num("on", 0), "");
    expect_point(t, "pump-1", num("on", 1), "");
    expect_point(t, "pump-1", num("on", 2), "node pump-1: point \"on\" = 2 is not 0 or 1 (pump)");
    expect_point(t, "pump-1", num("on", 0.5),
                 "node pump-1: point \"on\" = 0.5 is not 0 or 1 (pump)");
    /* text takes any text, and NULL text is "" */
    expect_point(t, "pump-1", txt("label", "anything at all"), "");
    expect_point(t, "pump-1", txt("label", NULL), "");
    expect_point(t, "pump-1", txt("note", ""), "");
    /* enum */
    expect_point(t, "pump-1", txt("mode", "auto"), "");
    expect_point(t, "pump-1", txt("mode", "manual"), "");
    expect_point(t, "pump-1", txt("mode", "off"),
                 "node pump-1: point \"mode\" = \"off\" is not one of auto, manual (pump)");
    expect_point(t, "pump-1", txt("mode", "Auto"),
                 "node pump-1: point \"mode\" = \"Auto\" is not one of auto, manual (pump)");
    expect_point(t, "pump-1", txt("mode", NULL),
                 "node pump-1: point \"mode\" = \"\" is not one of auto, manual (pump)");
    /* a strict type refuses points it does not declare */
    expect_point(t, "pump-1", num("bogus", 1),
                 "node pump-1: point \"bogus\" is not declared by type pump");
    /* a tombstone deletes: no value is needed, but the key rules still hold */
    sprig_point_t tomb = num("speed", 4000);
    tomb.tombstone = 1;
    expect_point(t, "pump-1", tomb, "");
    tomb.key = "3";
    expect_point(t, "pump-1", tomb,
                 "node pump-1: point \"speed\" key \"3\" is not allowed: it has one value, key "
                 "\"0\" (pump)");
    /* err may be NULL */
    sprig_point_t bad = num("speed", 4000);
    assert_int_equal(sprig_schema_check_point(t, "pump-1", &bad, NULL), -EINVAL);
    sprig_schema_free(s);
}

static void test_owner(void **state)
{
    (void)state;
    sprig_schema_t *s = load_text(pump_schema);
    const sprig_schema_type_t *t = sprig_schema_type(s, "pump");
    /* A driver-owned point only from the node's own driver (origin == node id). */
    expect_point(t, "pump-1", from("value", 7, "pump-1"), "");
    expect_point(t, "pump-1", from("value", 7, NULL),
                 "node pump-1: point \"value\" is written by its driver only, not by a person "
                 "(pump)");
    expect_point(t, "pump-1", from("value", 7, ""),
                 "node pump-1: point \"value\" is written by its driver only, not by a person "
                 "(pump)");
    expect_point(t, "pump-1", from("value", 7, "rule-7"),
                 "node pump-1: point \"value\" is written by its driver only, not by \"rule-7\" "
                 "(pump)");
    expect_point(t, "pump-1", from("value", 7, "pump-2"),
                 "node pump-1: point \"value\" is written by its driver only, not by \"pump-2\" "
                 "(pump)");
    /* owner = "any" and no owner: anyone. */
    expect_point(t, "pump-1", (sprig_point_t){.type = "note", .text = "x", .origin = "rule-7"}, "");
    expect_point(t, "pump-1", (sprig_point_t){.type = "note", .text = "x"}, "");
    expect_point(t, "pump-1", from("speed", 7, "rule-7"), "");
    expect_point(t, "pump-1", from("speed", 7, "pump-1"), "");
    sprig_schema_free(s);
}

static void test_keys(void **state)
{
    (void)state;
    sprig_schema_t *s = load_text(pump_schema);
    const sprig_schema_type_t *t = sprig_schema_type(s, "pump");
    /* one value: key "0" only (NULL means "0") */
    expect_point(t, "pump-1", keyed("speed", NULL, 1), "");
    expect_point(t, "pump-1", keyed("speed", "0", 1), "");
    expect_point(t, "pump-1", keyed("speed", "1", 1),
                 "node pump-1: point \"speed\" key \"1\" is not allowed: it has one value, key "
                 "\"0\" (pump)");
    /* array: "0", "1", ... */
    expect_point(t, "pump-1", keyed("channels", "0", 1), "");
    expect_point(t, "pump-1", keyed("channels", "1", 1), "");
    expect_point(t, "pump-1", keyed("channels", "42", 1), "");
    expect_point(t, "pump-1", keyed("channels", NULL, 1), "");
    expect_point(t, "pump-1", keyed("channels", "x", 1),
                 "node pump-1: point \"channels\" key \"x\" is not an array index 0, 1, ... "
                 "(pump)");
    expect_point(t, "pump-1", keyed("channels", "01", 1),
                 "node pump-1: point \"channels\" key \"01\" is not an array index 0, 1, ... "
                 "(pump)");
    expect_point(t, "pump-1", keyed("channels", "-1", 1),
                 "node pump-1: point \"channels\" key \"-1\" is not an array index 0, 1, ... "
                 "(pump)");
    expect_point(t, "pump-1", keyed("channels", "1.5", 1),
                 "node pump-1: point \"channels\" key \"1.5\" is not an array index 0, 1, ... "
                 "(pump)");
    /* map = true: any id */
    expect_point(t, "pump-1", (sprig_point_t){.type = "tags", .key = "site", .text = "north"}, "");
    expect_point(t, "pump-1", (sprig_point_t){.type = "tags", .key = "0", .text = "x"}, "");
    /* map = { list }: those keys only */
    expect_point(t, "pump-1", keyed("limits", "low", 1), "");
    expect_point(t, "pump-1", keyed("limits", "high", 2), "");
    expect_point(t, "pump-1", keyed("limits", "mid", 1),
                 "node pump-1: point \"limits\" key \"mid\" is not one of its keys (pump)");
    expect_point(t, "pump-1", keyed("limits", NULL, 1),
                 "node pump-1: point \"limits\" key \"0\" is not one of its keys (pump)");
    sprig_schema_free(s);
}

static void test_create(void **state)
{
    (void)state;
    sprig_schema_t *s = load_text(pump_schema);
    const sprig_schema_type_t *t = sprig_schema_type(s, "pump");
    sprig_error_t err;
    /* Required points: given, or they have a default (level). */
    sprig_point_t ok[] = {txt("serialNo", "SN-1"), num("speed", 5)};
    assert_int_equal(sprig_schema_check_create(t, "pump-1", "group", ok, 2, &err), 0);
    assert_int_equal(sprig_schema_check_create(t, "pump-1", "device", ok, 1, &err), 0);
    assert_int_equal(sprig_schema_check_create(t, "pump-1", "group", ok + 1, 1, &err), -EINVAL);
    assert_string_equal(err.msg, "node pump-1: required point \"serialNo\" is missing (pump)");
    assert_int_equal(sprig_schema_check_create(t, "pump-1", "group", NULL, 0, &err), -EINVAL);
    assert_string_equal(err.msg, "node pump-1: required point \"serialNo\" is missing (pump)");
    /* A tombstone does not give a point. */
    sprig_point_t gone = txt("serialNo", "SN-1");
    gone.tombstone = 1;
    assert_int_equal(sprig_schema_check_create(t, "pump-1", "group", &gone, 1, &err), -EINVAL);
    assert_string_equal(err.msg, "node pump-1: required point \"serialNo\" is missing (pump)");
    /* Parents: absent means any; a list is enforced. */
    assert_int_equal(sprig_schema_check_create(t, "pump-1", "anything", ok, 1, &err), 0);
    const sprig_schema_type_t *part = sprig_schema_type(s, "pumpPart");
    assert_int_equal(part->npoints, 0);
    static const char *const par[] = {"pump", "group", NULL};
    assert_list(part->parents, par);
    assert_int_equal(sprig_schema_check_create(part, "part-1", "pump", NULL, 0, &err), 0);
    assert_int_equal(sprig_schema_check_create(part, "part-1", "group", NULL, 0, &err), 0);
    assert_int_equal(sprig_schema_check_create(part, "part-1", "device", NULL, 0, &err), -EINVAL);
    assert_string_equal(err.msg, "node part-1: a pumpPart may not be placed under a device "
                                 "(allowed parents: pump, group)");
    /* The parents rule alone (a move or a mirror), whatever the points. */
    assert_int_equal(sprig_schema_check_parent(part, "part-1", "pump", &err), 0);
    assert_int_equal(sprig_schema_check_parent(t, "pump-1", "anything", &err), 0);
    assert_int_equal(sprig_schema_check_parent(part, "part-1", "device", &err), -EINVAL);
    assert_string_equal(err.msg, "node part-1: a pumpPart may not be placed under a device "
                                 "(allowed parents: pump, group)");
    sprig_schema_free(s);
}

/* The shipped modbusIo: required points at creation, parent types, the driver's value. */
static void test_create_modbus_io(void **state)
{
    (void)state;
    msgs_t m;
    sprig_schema_t *s = load(NULL, 0, &m);
    const sprig_schema_type_t *io = sprig_schema_type(s, "modbusIo");
    sprig_error_t err;
    sprig_point_t pts[] = {num("id", 1), num("address", 1000), txt("modbusIoType", "coil")};
    assert_int_equal(sprig_schema_check_create(io, "io-1", "modbus", pts, 3, &err), 0);
    assert_int_equal(sprig_schema_check_create(io, "io-1", "group", pts, 3, &err), -EINVAL);
    assert_string_equal(err.msg,
                        "node io-1: a modbusIo may not be placed under a group (allowed parents: "
                        "modbus)");
    sprig_point_t no_addr[] = {num("id", 1), txt("modbusIoType", "coil")};
    assert_int_equal(sprig_schema_check_create(io, "io-1", "modbus", no_addr, 2, &err), -EINVAL);
    assert_string_equal(err.msg, "node io-1: required point \"address\" is missing (modbusIo)");
    expect_point(io, "io-1", num("id", 248),
                 "node io-1: point \"id\" = 248 is above max 247 (modbusIo)");
    expect_point(io, "io-1", num("address", 65536),
                 "node io-1: point \"address\" = 65536 is above max 65535 (modbusIo)");
    expect_point(io, "io-1", txt("dataFormat", "float16"),
                 "node io-1: point \"dataFormat\" = \"float16\" is not one of uint16, int16, "
                 "uint32, int32, uint64, int64, float32, float64 (modbusIo)");
    expect_point(io, "io-1", from("value", 3, ""),
                 "node io-1: point \"value\" is written by its driver only, not by a person "
                 "(modbusIo)");
    expect_point(io, "io-1", from("valueSet", 3, ""), "");
    sprig_schema_free(s);
}

/* --- inheritance --------------------------------------------------------------------- */

static void test_extends(void **state)
{
    (void)state;
    sprig_schema_t *s =
        load_text("nodetype \"pumpIo\" {\n"
                  "  extends = \"modbusIo\",\n"
                  "  points = {\n"
                  "    rpmMax = { kind = \"number\", min = 0 },\n"
                  "    scale  = { kind = \"number\", default = 0.1 },\n"
                  "  },\n"
                  "}\n"
                  "nodetype \"fastPumpIo\" { extends = \"pumpIo\", description = \"fast\" }\n"
                  "nodetype \"site\" { extends = \"group\", parents = { \"device\" } }\n");
    const sprig_schema_type_t *base = sprig_schema_type(s, "modbusIo");
    const sprig_schema_type_t *t = sprig_schema_type(s, "pumpIo");
    assert_non_null(t);
    assert_string_equal(t->extends, "modbusIo");
    /* All of modbusIo's points, plus rpmMax; scale is overridden, not doubled. */
    assert_int_equal(t->npoints, base->npoints + 1);
    for (size_t i = 0; i < base->npoints; i++) {
        const sprig_schema_point_t *p = sprig_schema_point(t, base->points[i].name);
        assert_non_null(p);
        const char *want = strcmp(p->name, "scale") == 0 ? "pumpIo" : "modbusIo";
        assert_string_equal(p->declared_in, want);
    }
    assert_string_equal(sprig_schema_point(t, "rpmMax")->declared_in, "pumpIo");
    assert_true(sprig_schema_point(t, "scale")->default_value == 0.1);
    assert_true(sprig_schema_point(base, "scale")->default_value == 1);
    /* Parents, description and strictness come with it. */
    static const char *const mb[] = {"modbus", NULL};
    assert_list(t->parents, mb);
    assert_string_equal(t->description, base->description);
    assert_false(t->open);
    /* Checks on inherited points name the derived type. */
    expect_point(t, "io-1", num("address", 70000),
                 "node io-1: point \"address\" = 70000 is above max 65535 (pumpIo)");
    expect_point(t, "io-1", from("value", 1, "someone"),
                 "node io-1: point \"value\" is written by its driver only, not by \"someone\" "
                 "(pumpIo)");
    expect_point(t, "io-1", num("rpmMax", -1),
                 "node io-1: point \"rpmMax\" = -1 is below min 0 (pumpIo)");
    sprig_error_t err;
    sprig_point_t pts[] = {num("id", 1), num("modbusIoType", 0)};
    pts[1] = txt("modbusIoType", "holdingRegister");
    assert_int_equal(sprig_schema_check_create(t, "io-1", "modbus", pts, 2, &err), -EINVAL);
    assert_string_equal(err.msg, "node io-1: required point \"address\" is missing (pumpIo)");
    /* Two levels deep; the base's own points keep their declared_in. */
    const sprig_schema_type_t *fast = sprig_schema_type(s, "fastPumpIo");
    assert_int_equal(fast->npoints, t->npoints);
    assert_string_equal(fast->description, "fast");
    assert_string_equal(sprig_schema_point(fast, "rpmMax")->declared_in, "pumpIo");
    assert_string_equal(sprig_schema_point(fast, "address")->declared_in, "modbusIo");
    /* An open base makes an open type; its own parents win. */
    const sprig_schema_type_t *site = sprig_schema_type(s, "site");
    assert_true(site->open);
    expect_point(site, "site-1", num("anything", 1), "");
    static const char *const dev[] = {"device", NULL};
    assert_list(site->parents, dev);
    sprig_schema_free(s);
}

/* The brief for the node types: every node takes description (text) and disabled (bool),
 * declared or not. */
static void test_implicit_points(void **state)
{
    (void)state;
    sprig_schema_t *s = load_text("nodetype \"bare\" { points = { x = { kind = \"number\" } } }\n");
    const sprig_schema_type_t *t = sprig_schema_type(s, "bare");
    expect_point(t, "b-1", num("x", 1), "");
    expect_point(t, "b-1", num("y", 1), "node b-1: point \"y\" is not declared by type bare");
    expect_point(t, "b-1", txt("description", "a bare node"), "");
    expect_point(t, "b-1", num("disabled", 1), "");
    sprig_schema_free(s);
}

/* --- loading ------------------------------------------------------------------------- */

static void test_load_errors(void **state)
{
    (void)state;
    msgs_t m;
    /* A folder that does not exist. */
    sprig_schema_t *s = load("/nonexistent/sprig-schema", 1, &m);
    assert_null(s);
    assert_string_equal(m.msg[0], "/nonexistent/sprig-schema:0: schema folder cannot be read");
    /* Errors of several files are all reported, and a failed load leaves *out NULL. */
    char dir[PATH_MAX];
    assert_int_equal(tu_tmpdir(dir), 0);
    write_file(dir, "a.lua", "nodetype \"a\" { points = { x = { kind = \"float\" } } }\n");
    write_file(dir, "b.lua", "\n\nnodetype \"b\" { extends = \"zzz\" }\n");
    write_file(dir, "c.txt", "this is not Lua and is not loaded\n");
    s = load(dir, 2, &m);
    char want[PATH_MAX + 200];
    snprintf(want, sizeof(want),
             "%s/a.lua:1: type a: point \"x\" kind \"float\" is not number, integer, bool, text "
             "or enum",
             dir);
    assert_string_equal(m.msg[0], want);
    snprintf(want, sizeof(want), "%s/b.lua:3: type b extends unknown type zzz", dir);
    assert_string_equal(m.msg[1], want);
    /* report may be NULL. */
    char shipped[PATH_MAX];
    const char *dirs[2] = {tu_source_path(shipped, "schema"), dir};
    assert_int_equal(sprig_schema_load(dirs, 2, &s, NULL, NULL), 2);
    assert_null(s);
    tu_rmdir(dir);
}

/* One case of the source-line finder: in text, the nodetype call at line declaring name,
 * the path keys (NULL-terminated) is at want. */
typedef struct src_case {
    const char *text;
    int line;
    const char *name;
    const char *keys[4];
    int want;
} src_case_t;

static int src_line_of(const char *text, size_t len, int line, const char *name,
                       const char *const *keys)
{
    schema_src_t *src = schema__src_open(text, len);
    assert_non_null(src);
    int got = schema__src_line(src, line, name, keys);
    schema__src_free(src);
    return got;
}

/* The lines the loader names come from the text: strings, comments, long brackets, escapes
 * and code in values do not mislead it, and what it cannot find is the nodetype line. */
static void test_source_lines(void **state)
{
    (void)state;
    static const src_case_t cases[] = {
        {"nodetype \"t\" {\n  points = {\n    level = { kind = \"number\" },\n  },\n}\n",
         1,
         "t",
         {"points", "level", NULL},
         3},
        {"nodetype \"t\" {\n  points = {\n    level = {\n      kind = \"number\",\n      max = 5,\n"
         "    },\n  },\n}\n",
         1,
         "t",
         {"points", "level", "max", NULL},
         5},
        /* An attribute that is not there: its point's line. */
        {"nodetype \"t\" {\n  points = {\n    level = { kind = \"number\" },\n  },\n}\n",
         1,
         "t",
         {"points", "level", "min", NULL},
         3},
        /* A point that is not there: the points line. */
        {"nodetype \"t\" {\n  points = {\n    level = { kind = \"number\" },\n  },\n}\n",
         1,
         "t",
         {"points", "volume", NULL},
         2},
        /* The name in comments and strings first, and multi-line ones counted. */
        {"-- level = {\n--[==[ level = {\n]] level ]==]\nnodetype \"t\" { description = "
         "\"level = {\", points = {\n  a = { description = [[\nlevel = {\n]] },\n  level = {},\n"
         "} }\n",
         4,
         "t",
         {"points", "level", NULL},
         8},
        /* Keys in brackets, with escapes; a short string over lines with \z. */
        {"nodetype \"t\" {\n  [\"points\"] = {\n    x = { description = \"a\\z\n   b\" },\n"
         "    [\"le\\x76\\101l\"] = {},\n  },\n}\n",
         1,
         "t",
         {"points", "level", NULL},
         5},
        {"nodetype \"t\" { points = {\n[ [[level]] ] = {},\n} }\n",
         1,
         "t",
         {"points", "level", NULL},
         2},
        /* Code in values: commas in function bodies and calls, == and ~=, indexing. */
        {"nodetype \"t\" { points = {\n  a = { min = (function() local x, y = 1, 2 if x == y "
         "then return 1 end return 2 end)() },\n  b = { max = ({1, 2})[2], unit = 1 ~= 2 and "
         "\"x\" or \"y\" },\n  level = {},\n} }\n",
         1,
         "t",
         {"points", "level", NULL},
         4},
        /* The key given twice: Lua keeps the last. */
        {"nodetype \"t\" { points = {\n  level = {},\n  level = {},\n} }\n",
         1,
         "t",
         {"points", "level", NULL},
         3},
        /* Several types on their own lines: the one called at the line given. */
        {"nodetype \"a\" { points = { level = {} } }\nnodetype \"b\" {\n  points = {\n"
         "    level = {},\n  },\n}\n",
         2,
         "b",
         {"points", "level", NULL},
         4},
        /* The call written with parentheses, and the text in CRLF with a first #! line. */
        {"#!/usr/bin/env lua\r\nnodetype(\"t\")({\r\n  points = {\r\n    level = {},\r\n  "
         "},\r\n})\r\n",
         2,
         "t",
         {"points", "level", NULL},
         4},
        /* Not found: another type's name, another line, a spec built elsewhere. */
        {"nodetype \"t\" {\n  points = { level = {} },\n}\n", 1, "u", {"points", NULL}, 1},
        {"nodetype \"t\" {\n  points = { level = {} },\n}\n", 2, "t", {"points", NULL}, 2},
        {"local s = {\n  points = { level = {} },\n}\nnodetype \"t\" (s)\n",
         4,
         "t",
         {"points", NULL},
         4},
        /* An unfinished text ends the search, not the process. */
        {"nodetype \"t\" {\n  points = {\n    level = { description = [[ open",
         1,
         "t",
         {"points", "level", "kind", NULL},
         3},
        {"nodetype \"t\" {\n  points = {\n    level = { description = \"open\n",
         1,
         "t",
         {"points", "level", "kind", NULL},
         3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const src_case_t *c = &cases[i];
        int got = src_line_of(c->text, strlen(c->text), c->line, c->name, c->keys);
        if (got != c->want) {
            print_message("case %zu: line %d, expected %d\n%s\n", i, got, c->want, c->text);
        }
        assert_int_equal(got, c->want);
    }
    /* Every prefix of every case: the line found is one of the text's, or the call's. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const src_case_t *c = &cases[i];
        int lines = 1;
        for (const char *p = c->text; *p != '\0'; p++) {
            lines += *p == '\n';
        }
        for (size_t n = 0; n <= strlen(c->text); n++) {
            int got = src_line_of(c->text, n, c->line, c->name, c->keys);
            assert_true(got >= 1 && got <= lines);
        }
    }
    assert_int_equal(schema__src_line(NULL, 7, "t", cases[0].keys), 7);
}

/* Loads dirs; returns the number of errors and the schema's type count (0 on errors). */
static int load_dirs(const char *const *dirs, size_t n, size_t *ntypes, msgs_t *m)
{
    sprig_schema_t *s = NULL;
    memset(m, 0, sizeof(*m));
    int rc = sprig_schema_load(dirs, n, &s, collect, m);
    *ntypes = 0;
    while (s != NULL && sprig_schema_type_at(s, *ntypes) != NULL) {
        (*ntypes)++;
    }
    sprig_schema_free(s);
    return rc;
}

/* A folder given twice, or given again under another path (with a trailing slash, through
 * "..", through a symlink), is loaded once; a copy of a folder is another folder, whose
 * types are declared twice. */
static void test_same_folder_once(void **state)
{
    (void)state;
    char shipped[PATH_MAX], slash[PATH_MAX + 2], dotdot[PATH_MAX], links[PATH_MAX];
    char link[PATH_MAX];
    char mine[PATH_MAX], copy[PATH_MAX], mine_link[PATH_MAX];
    msgs_t m;
    size_t n_shipped, n;
    tu_source_path(shipped, "schema");
    snprintf(slash, sizeof(slash), "%s/", shipped);
    tu_source_path(dotdot, "tests/../schema");
    assert_int_equal(tu_tmpdir(links), 0);
    assert_int_equal(symlink(shipped, tu_path(link, links, "shipped-link")), 0);

    const char *alone[] = {shipped};
    assert_int_equal(load_dirs(alone, 1, &n_shipped, &m), 0);
    assert_true(n_shipped >= 5);
    const char *again[] = {shipped, shipped, slash, dotdot, link};
    for (size_t k = 2; k <= 5; k++) {
        int rc = load_dirs(again, k, &n, &m);
        if (rc != 0) {
            print_msgs(&m);
        }
        assert_int_equal(rc, 0);
        assert_int_equal(n, n_shipped);
    }
    /* The link first, then the folder by its own name: the same. */
    const char *link_first[] = {link, shipped};
    assert_int_equal(load_dirs(link_first, 2, &n, &m), 0);
    assert_int_equal(n, n_shipped);

    /* A folder of one's own, twice and through a link, beside the shipped one. */
    assert_int_equal(tu_tmpdir(mine), 0);
    write_file(mine, "tank.lua",
               "nodetype \"tank\" { points = { level = { kind = \"number\" } } }\n");
    assert_int_equal(symlink(mine, tu_path(mine_link, links, "mine-link")), 0);
    const char *own[] = {shipped, mine, mine_link, mine, slash};
    assert_int_equal(load_dirs(own, 5, &n, &m), 0);
    assert_int_equal(n, n_shipped + 1);

    /* A copy is not the same folder: its type is declared twice, named once. */
    assert_int_equal(tu_tmpdir(copy), 0);
    write_file(copy, "tank.lua",
               "nodetype \"tank\" { points = { level = { kind = \"number\" } } }\n");
    const char *copied[] = {shipped, mine, copy};
    assert_int_equal(load_dirs(copied, 3, &n, &m), 1);
    assert_non_null(strstr(m.msg[0], "type tank is declared twice"));

    /* A folder that does not exist is no repeat: each mention is reported. */
    char none[PATH_MAX];
    tu_path(none, links, "no-such-folder");
    const char *missing[] = {shipped, none, none};
    assert_int_equal(load_dirs(missing, 3, &n, &m), 2);
    assert_non_null(strstr(m.msg[0], "schema folder cannot be read"));

    tu_rmdir(copy);
    tu_rmdir(mine);
    tu_rmdir(links);
}

/* Reads "-- expect: TEXT" and "-- line: N" from the first two lines of a corpus file. */
static void read_expectation(const char *path, char *expect, size_t n, int *line)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char l1[512], l2[512];
    assert_non_null(fgets(l1, sizeof(l1), f));
    assert_non_null(fgets(l2, sizeof(l2), f));
    fclose(f);
    l1[strcspn(l1, "\n")] = '\0';
    if (strncmp(l1, "-- expect: ", 11) != 0 || sscanf(l2, "-- line: %d", line) != 1) {
        print_message("  %s does not start with -- expect: and -- line:\n", path);
        fail();
    }
    snprintf(expect, n, "%s", l1 + 11);
}

/* Loads the shipped folder plus dir in a child process bounded by CORPUS_TIME_LIMIT; the
 * messages come back through a pipe. Returns the load's result, or -1000 - signal when
 * the child died (crashed, or killed by the time limit). */
static int load_in_child(const char *dir, msgs_t *m, double *secs)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        alarm(CORPUS_TIME_LIMIT);
        char shipped[PATH_MAX];
        const char *dirs[2] = {tu_source_path(shipped, "schema"), dir};
        msgs_t *cm = calloc(1, sizeof(*cm));
        sprig_schema_t *s = NULL;
        int rc = cm != NULL ? sprig_schema_load(dirs, 2, &s, collect, cm) : -ENOMEM;
        sprig_schema_free(s);
        FILE *f = fdopen(fds[1], "w");
        for (int i = 0; f != NULL && cm != NULL && i < cm->n && i < MAX_MSGS; i++) {
            fprintf(f, "%s\n", cm->msg[i]);
        }
        if (f != NULL) {
            fprintf(f, "RC %d\n", rc);
            fclose(f);
        }
        _exit(0);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    assert_non_null(f);
    char line[800];
    int rc = -2000;
    memset(m, 0, sizeof(*m));
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "RC ", 3) == 0) {
            rc = atoi(line + 3);
        }
        else {
            collect(line, m);
        }
    }
    fclose(f);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (WIFSIGNALED(status)) {
        return -1000 - WTERMSIG(status);
    }
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the *.lua files of dir, sorted; returns the count. */
static size_t lua_files(const char *dir, char **names, size_t max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".lua") == 0) {
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    return n;
}

static void test_corpus_bad(void **state)
{
    (void)state;
    char corpus[PATH_MAX];
    tu_source_path(corpus, "tests/schema_corpus/bad");
    char *names[200];
    size_t n = lua_files(corpus, names, 200);
    assert_true(n >= 32);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        char src[PATH_MAX], dir[PATH_MAX], dst[PATH_MAX], expect[512];
        int line;
        tu_path(src, corpus, names[i]);
        read_expectation(src, expect, sizeof(expect), &line);
        /* Each file alone beside the shipped folder, from a folder of its own. */
        assert_int_equal(tu_tmpdir(dir), 0);
        FILE *in = fopen(src, "r"), *out = fopen(tu_path(dst, dir, names[i]), "w");
        assert_non_null(in);
        assert_non_null(out);
        char buf[4096];
        size_t got;
        while ((got = fread(buf, 1, sizeof(buf), in)) > 0) {
            assert_int_equal(fwrite(buf, 1, got, out), got);
        }
        fclose(in);
        fclose(out);
        msgs_t m;
        double secs;
        int rc = load_in_child(dir, &m, &secs);
        char where[PATH_MAX + 32];
        snprintf(where, sizeof(where), "%s:%d: ", dst, line);
        /* "FILE:LINE: message" with the expected text, the place given once. */
        bool found = false, twice = false;
        for (int k = 0; k < m.n && k < MAX_MSGS; k++) {
            found = found || (strstr(m.msg[k], where) == m.msg[k] && strstr(m.msg[k], expect));
            twice = twice || (strlen(m.msg[k]) > strlen(where) &&
                              strncmp(m.msg[k] + strlen(where), dst, strlen(dst)) == 0);
        }
        const char *why = NULL;
        if (rc <= -1000) {
            why = rc == -1000 - SIGALRM ? "the load did not end in time" : "the load crashed";
        }
        else if (rc <= 0) {
            why = "the load reported no error";
        }
        else if (rc != m.n) {
            why = "the count returned differs from the messages reported";
        }
        else if (!found) {
            why = "no message has the expected place and text";
        }
        else if (twice) {
            why = "a message names the file twice";
        }
        if (why != NULL) {
            failures++;
            print_message("FAIL %s: %s (rc %d, %.2f s)\n  expected: %s... %s\n", names[i], why, rc,
                          secs, where, expect);
            print_msgs(&m);
        }
        tu_rmdir(dir);
        free(names[i]);
    }
    print_message("%zu broken schema files, %d not as expected\n", n, failures);
    assert_int_equal(failures, 0);
}

static void test_corpus_good(void **state)
{
    (void)state;
    char corpus[PATH_MAX];
    msgs_t m;
    sprig_schema_t *s = load(tu_source_path(corpus, "tests/schema_corpus/good"), 0, &m);
    const sprig_schema_type_t *t = sprig_schema_type(s, "pumpIo");
    assert_non_null(t);
    assert_string_equal(t->extends, "modbusIo");
    assert_string_equal(sprig_schema_point(t, "rpmMax")->declared_in, "pumpIo");
    assert_string_equal(sprig_schema_point(t, "address")->declared_in, "modbusIo");
    assert_string_equal(sprig_schema_point(sprig_schema_type(s, "c"), "capacity")->declared_in,
                        "tank");
    assert_non_null(sprig_schema_type(s, "zone3"));
    sprig_error_t err;
    const sprig_schema_type_t *tank = sprig_schema_type(s, "tank");
    sprig_point_t sn = txt("serialNo", "T-1");
    assert_int_equal(sprig_schema_check_create(tank, "tank-1", "group", &sn, 1, &err), 0);
    sprig_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_loads),
        cmocka_unit_test(test_shipped_signal_generator),
        cmocka_unit_test(test_shipped_others),
        cmocka_unit_test(test_attributes_parsed),
        cmocka_unit_test(test_kinds_checked),
        cmocka_unit_test(test_owner),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_create_modbus_io),
        cmocka_unit_test(test_extends),
        cmocka_unit_test(test_implicit_points),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_same_folder_once),
        cmocka_unit_test(test_source_lines),
        cmocka_unit_test(test_corpus_bad),
        cmocka_unit_test(test_corpus_good),
        cmocka_unit_test(test_core_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
