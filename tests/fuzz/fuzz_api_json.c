/* libFuzzer target of the HTTP API's JSON bodies: the input is sent as the body of every
 * route that takes one, in process, through the route code the server runs
 * (api__route_body), against a real core on a scratch database with the shipped schema
 * and a small fixture tree. Checked besides ASan/UBSan, with abort() on failure: every
 * answer is valid UTF-8 JSON; its status is 2xx, or 4xx with {"error": sentence} and
 * nothing else (never 5xx: no body is the server's fault); a refused request leaves the
 * tree (root hash, node and point counts), the bus and the store's queue as they were.
 * After an accepted request the kept hashes equal the ones recomputed from the points,
 * and once the input is done a reopen of the database loads the same tree (root hash,
 * counts): what was accepted was stored whole. The core is then rebuilt from the fixture,
 * so every input starts from the same state. Build and run: tests/fuzz/README.md. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_internal.h"
#include "sprig/core.h"
#include "sprig/log.h"
#include "sprig/schema.h"
#include "sprig/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every route with a JSON body, with ids the fixture has (io1 is of a strict type). */
static const char *const routes[][2] = {
    {"POST", "/v1/nodes"},
    {"POST", "/v1/nodes/g1/points"},
    {"POST", "/v1/nodes/io1/points"},
    {"POST", "/v1/nodes/g1/parents"},
    {"POST", "/v1/nodes/io1/parents"},
    {"POST", "/v1/import"},
    {"POST", "/v1/rules/compile"},
};

static uv_loop_t loop;
static sprig_core_t *core;
static sprig_schema_t *schema;
static char dir[PATH_MAX], db[PATH_MAX];
static long published;

/* What a refused request must leave as it was. */
typedef struct state {
    uint64_t hash;
    size_t nodes, points, backlog;
    long published;
    uint64_t accepted, batch;
} state_t;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_api_json: %s: %s\n", what, detail != NULL ? detail : "");
    abort();
}

static void on_event(const sprig_event_t *ev, void *arg)
{
    (void)ev;
    (void)arg;
    published++;
}

static void create(const char *id, const char *type, const char *parent, const sprig_point_t *pts,
                   size_t n)
{
    sprig_error_t err = {{0}};
    if (sprig_core_create(core, id, type, parent, pts, n, NULL, NULL, &err) != 0) {
        die("fixture", err.msg);
    }
}

/* A new core on an empty scratch database: root { g1 (group) { m1 (modbus) { io1 }, r1
 * (rule) }, sg1 (signalGenerator) }. */
static void remove_db_files(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-lock", "-journal"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char p[PATH_MAX + 16];
        snprintf(p, sizeof(p), "%s%s", db, suffixes[i]);
        unlink(p);
    }
}

static void open_core(void)
{
    sprig_core_opts_t o = {.db_path = db, .root_id = "root", .store = {.sync_normal = true}};
    sprig_error_t err = {{0}};
    if (sprig_core_open(&loop, &o, &core, &err) != 0) {
        die("core open", err.msg);
    }
    sprig_core_set_schema(core, schema);
    if (sprig_bus_subscribe(sprig_core_bus(core), NULL, on_event, NULL, NULL) != 0) {
        die("bus", "out of memory");
    }
}

static void open_fixture(void)
{
    remove_db_files();
    open_core();
    create("g1", "group", "root", NULL, 0);
    sprig_point_t mb[] = {{.type = "protocol", .text = "TCP"}, {.type = "uri", .text = "h:1"}};
    create("m1", "modbus", "g1", mb, 2);
    sprig_point_t io[] = {{.type = "id", .value = 1},
                          {.type = "address", .value = 7},
                          {.type = "modbusIoType", .text = "holdingRegister"}};
    create("io1", "modbusIo", "m1", io, 3);
    sprig_point_t rule[] = {{.type = "script", .text = "-- nothing"}};
    create("r1", "rule", "g1", rule, 1);
    create("sg1", "signalGenerator", "root", NULL, 0);
    sprig_store_flush(sprig_core_store(core));
}

static void close_core(void)
{
    sprig_core_close(core);
    core = NULL;
    for (int i = 0; i < 1000 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

static state_t state_now(void)
{
    sprig_core_stats_t st;
    sprig_core_stats(core, &st);
    sprig_tree_t *t = sprig_core_tree(core);
    state_t s = {
        .hash = sprig_tree_root_hash(t),
        .nodes = sprig_tree_node_count(t),
        .points = sprig_tree_point_count(t),
        .backlog = sprig_store_backlog(sprig_core_store(core)),
        .published = published,
        .accepted = st.accepted,
        .batch = sprig_core_batch(core),
    };
    return s;
}

static bool same_state(const state_t *a, const state_t *b)
{
    return a->hash == b->hash && a->nodes == b->nodes && a->points == b->points &&
           a->backlog == b->backlog && a->published == b->published && a->accepted == b->accepted &&
           a->batch == b->batch;
}

/* At the end of a run (not after a crash, whose files may help): the scratch folder goes. */
static void cleanup(void)
{
    if (core != NULL) {
        close_core();
    }
    remove_db_files();
    rmdir(dir);
    sprig_schema_free(schema);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sprig_log_set_level(SPRIG_LOG_ERROR);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/sprig-fuzz-api-XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        die("mkdtemp", dir);
    }
    snprintf(db, sizeof(db), "%s/fuzz.db", dir);
    if (uv_loop_init(&loop) != 0) {
        die("uv_loop_init", NULL);
    }
    const char *dirs[1] = {SPRIG_SOURCE_DIR "/schema"};
    if (sprig_schema_load(dirs, 1, &schema, NULL, NULL) != 0) {
        die("schema", dirs[0]);
    }
    open_fixture();
    atexit(cleanup);
    return 0;
}

/* Checks one answer; returns whether the request was accepted. */
static bool check_answer(const char *method, const char *url, const api_answer_t *ans)
{
    char where[160];
    snprintf(where, sizeof(where), "%s %s answered %d", method, url, ans->status);
    if (ans->stream != NULL || ans->json == NULL) {
        die(where, "no JSON answer");
    }
    if (!(ans->status >= 200 && ans->status < 300) && !(ans->status >= 400 && ans->status < 500)) {
        char *t = cJSON_PrintUnformatted(ans->json);
        die(where, t != NULL ? t : "(unprintable)");
    }
    char *text = cJSON_PrintUnformatted(ans->json);
    if (text == NULL) {
        die(where, "the answer cannot be printed");
    }
    size_t n = strlen(text);
    if (!sprig_utf8_valid(text, n)) {
        die(where, "the answer is not valid UTF-8");
    }
    cJSON *back = cJSON_ParseWithLengthOpts(text, n + 1, NULL, 1);
    if (back == NULL) {
        die(where, text);
    }
    cJSON_Delete(back);
    if (ans->status >= 400) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(ans->json, "error");
        if (!cJSON_IsObject(ans->json) || cJSON_GetArraySize(ans->json) != 1 ||
            !cJSON_IsString(e) || e->valuestring[0] == '\0') {
            die(where, text);
        }
    }
    cJSON_free(text);
    return ans->status < 300;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size + 1);
    if (body == NULL) {
        return 0;
    }
    memcpy(body, data, size);
    body[size] = '\0';
    bool changed = false;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        state_t before = state_now();
        api_answer_t ans;
        api__route_body(core, routes[i][0], routes[i][1], body, size, &ans);
        bool ok = check_answer(routes[i][0], routes[i][1], &ans);
        cJSON_Delete(ans.json);
        state_t after = state_now();
        if (!ok && !same_state(&before, &after)) {
            char detail[400];
            snprintf(detail, sizeof(detail),
                     "a refused request changed the state: hash %016" PRIx64 " -> %016" PRIx64
                     ", nodes %zu -> %zu, points %zu -> %zu, events %ld -> %ld, queued %zu -> "
                     "%zu",
                     before.hash, after.hash, before.nodes, after.nodes, before.points,
                     after.points, before.published, after.published, before.backlog,
                     after.backlog);
            die(routes[i][1], detail);
        }
        if (ok && sprig_tree_hash_check(sprig_core_tree(core), NULL, NULL) != 0) {
            die(routes[i][1], "an accepted request left stale hashes");
        }
        changed = changed || !same_state(&before, &after);
    }
    free(body);
    if (changed) {
        state_t kept = state_now();
        close_core();
        open_core();
        state_t loaded = state_now();
        if (loaded.hash != kept.hash || loaded.nodes != kept.nodes ||
            loaded.points != kept.points) {
            char detail[200];
            snprintf(detail, sizeof(detail),
                     "hash %016" PRIx64 " -> %016" PRIx64 ", nodes %zu -> %zu, points %zu -> %zu",
                     kept.hash, loaded.hash, kept.nodes, loaded.nodes, kept.points, loaded.points);
            die("the reopened database holds another tree", detail);
        }
        close_core();
        open_fixture();
    }
    return 0;
}
