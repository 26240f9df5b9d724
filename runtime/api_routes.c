/* The API's route table and its routes (DESIGN.md section 9) for status, history, schema,
 * export and import, with what every route uses (answers, query parameters, the body's
 * strict JSON check, node lookup); the node routes are in api_nodes.c. Each takes the
 * parsed request and fills an answer; writes go through the core's one write path and
 * name the batch to wait for, so they answer once durable. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api_internal.h"
#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/exchange.h"
#include "sprig/json.h"
#include "sprig/log.h"
#include "sprig/util.h"

#define SPRIG_VERSION "0.1.0"

/* A query parameter; a request routed in process (api__route_body) has none. */
const char *api__query(route_ctx_t *r, const char *name)
{
    return r->req->conn != NULL
               ? MHD_lookup_connection_value(r->req->conn, MHD_GET_ARGUMENT_KIND, name)
               : NULL;
}

void api__ok(route_ctx_t *r, int status, cJSON *json, uint64_t wait_batch)
{
    r->ans->status = status;
    r->ans->json = json;
    r->ans->wait_batch = wait_batch;
}

void api__fail(route_ctx_t *r, int code, const sprig_error_t *err)
{
    api__error(r->ans, api__status(code), "%s", err->msg);
}

/* While the store cannot write (a commit failed, or has not finished for a second), a
 * write is refused before any of it is applied: 503 with the store's sentence, so the
 * caller knows that nothing of it is stored. Writes are taken again once a commit works. */
static bool store_refuses(route_ctx_t *r)
{
    sprig_store_health_t h;
    sprig_store_health(sprig_core_store(r->core), &h);
    if (h.state == SPRIG_STORE_OK) {
        return false;
    }
    api__error(r->ans, 503,
               "%s; this write is refused and nothing of it is stored: send it again once the "
               "database can be written (GET /v1/status tells)",
               h.error);
    return true;
}

/* What is wrong with a JSON text that cJSON would let through (it reads
 * strings as C strings, is lenient with escapes and skips every byte up to the space as
 * whitespace): a \u0000, which would cut a string short; a \u without four hex digits;
 * an unknown escape; a raw control character, inside a string or between tokens (JSON's
 * whitespace is space, tab, line feed and carriage return only). NULL when there is
 * nothing. */
static const char *string_fault(const char *s, size_t n, size_t *at)
{
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        *at = i;
        if (!in) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                return "a control character between tokens";
            }
            /* cJSON also takes "1." and ".5"; JSON wants digits on both sides. */
            if (c == '.' && (i == 0 || !isdigit((unsigned char)s[i - 1]) || i + 1 >= n ||
                             !isdigit((unsigned char)s[i + 1]))) {
                return "a number with no digit before or after its '.'";
            }
            in = c == '"';
            continue;
        }
        if (c == '"') {
            in = false;
        }
        else if (c < 0x20) {
            return "a control character inside a string";
        }
        else if (c == '\\') {
            char e = i + 1 < n ? s[i + 1] : '\0';
            if (e == 'u') {
                if (i + 5 >= n || !isxdigit((unsigned char)s[i + 2]) ||
                    !isxdigit((unsigned char)s[i + 3]) || !isxdigit((unsigned char)s[i + 4]) ||
                    !isxdigit((unsigned char)s[i + 5])) {
                    return "a \\u escape without four hex digits";
                }
                if (strncmp(s + i + 2, "0000", 4) == 0) {
                    return "\\u0000 (NUL) inside a string";
                }
                i += 5;
            }
            else if (e != '\0' && strchr("\"\\/bfnrt", e) != NULL) {
                i++;
            }
            else {
                return "an unknown escape inside a string";
            }
        }
    }
    return NULL;
}

cJSON *api__body_json(const api_req_t *req, api_answer_t *ans)
{
    const char *body = req->body != NULL ? req->body : "";
    if (req->len == 0) {
        api__error(ans, 400, "request body is empty: JSON expected");
        return NULL;
    }
    if (strlen(body) != req->len || !sprig_utf8_valid(body, req->len)) {
        api__error(ans, 400, "request body is not valid UTF-8 text");
        return NULL;
    }
    size_t at = 0;
    const char *fault = string_fault(body, req->len, &at);
    if (fault != NULL) {
        api__error(ans, 400, "request body is not valid JSON: %s (near byte %zu)", fault, at);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(body, &end, 1);
    if (j == NULL) {
        at = end != NULL && end >= body ? (size_t)(end - body) : 0;
        api__error(ans, 400, "request body is not valid JSON (near byte %zu)", at);
    }
    return j;
}

cJSON *api__parse_body(route_ctx_t *r)
{
    return api__body_json(r->req, r->ans);
}

static sprig_node_t *find_node(route_ctx_t *r, const char *id)
{
    sprig_error_t err;
    if (!sprig_id_valid(id)) {
        sprig_error_set(&err, -EINVAL, "node id \"%.64s\" is not 1-64 bytes of [A-Za-z0-9._:-]",
                        id);
        api__fail(r, -EINVAL, &err);
        return NULL;
    }
    sprig_node_t *n = sprig_tree_node(r->tree, id);
    if (n == NULL) {
        api__error(r->ans, 404, "node %s does not exist", id);
    }
    return n;
}

/* --- handlers ----------------------------------------------------------------------- */

/* GET /v1/status's "sync" array, filled by status_sync_one. */
typedef struct status_sync {
    route_ctx_t *r;
    cJSON *list;
} status_sync_t;

/* One entry of status's "sync" for each sync node that runs here: live, and not in another
 * device's tree kept by an upstream (there it is data; its link runs on that device). A
 * point the driver has not written yet reads as null (state, lastSync; broker and protocol,
 * also null while empty: no broker tried yet, not connected), "" (uri, error) or 0 (the
 * counters). */
static int status_sync_one(sprig_node_t *n, void *arg)
{
    static const char *const counters[] = {"syncCount", "repairCount", "bytesUp", "bytesDown"};
    static const char *const texts[] = {"broker", "protocol"};
    route_ctx_t *r = ((status_sync_t *)arg)->r;
    if (strcmp(sprig_node_type(n), "sync") != 0 || !sprig_node_live(r->tree, n) ||
        sprig_node_foreign(r->tree, n)) {
        return 0;
    }
    const sprig_point_t *p;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", sprig_node_id(n));
    p = sprig_tree_point(r->tree, n, "uri", NULL);
    cJSON_AddStringToObject(o, "uri", p != NULL && !p->tombstone ? p->text : "");
    p = sprig_tree_point(r->tree, n, "state", NULL);
    if (p != NULL && !p->tombstone && p->text[0] != '\0') {
        cJSON_AddStringToObject(o, "state", p->text);
    }
    else {
        cJSON_AddNullToObject(o, "state");
    }
    p = sprig_tree_point(r->tree, n, "error", NULL);
    cJSON_AddStringToObject(o, "error", p != NULL && !p->tombstone ? p->text : "");
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        p = sprig_tree_point(r->tree, n, texts[i], NULL);
        if (p != NULL && !p->tombstone && p->text[0] != '\0') {
            cJSON_AddStringToObject(o, texts[i], p->text);
        }
        else {
            cJSON_AddNullToObject(o, texts[i]);
        }
    }
    p = sprig_tree_point(r->tree, n, "lastSync", NULL);
    if (p != NULL && !p->tombstone && p->value > 0 && p->value < 9.2e18) {
        char t[40];
        cJSON_AddStringToObject(o, "lastSync", sprig_time_format((int64_t)p->value, t, sizeof(t)));
    }
    else {
        cJSON_AddNullToObject(o, "lastSync");
    }
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        p = sprig_tree_point(r->tree, n, counters[i], NULL);
        cJSON_AddNumberToObject(o, counters[i], p != NULL && !p->tombstone ? p->value : 0);
    }
    if (!cJSON_AddItemToArray(((status_sync_t *)arg)->list, o)) {
        cJSON_Delete(o);
    }
    return 0;
}

/* status's store.state ("ok", "failing": a commit failed and is tried again, "stalled": one
 * has not finished for a second), and while not ok: error (the store's sentence), since
 * (when the spell began, RFC 3339) and failures (commits failed since). */
static void store_health_json(cJSON *st, const sprig_store_t *store)
{
    static const char *const states[] = {"ok", "failing", "stalled"};
    sprig_store_health_t h;
    char t[40];
    sprig_store_health(store, &h);
    cJSON_AddStringToObject(st, "state", states[h.state]);
    if (h.state != SPRIG_STORE_OK) {
        cJSON_AddStringToObject(st, "error", h.error);
        cJSON_AddStringToObject(st, "since", sprig_time_format(h.since, t, sizeof(t)));
        cJSON_AddNumberToObject(st, "failures", (double)h.failures);
    }
}

static void get_status(route_ctx_t *r)
{
    char hash[17];
    sprig_store_stats_t ss;
    sprig_core_stats_t cs;
    sprig_store_t *store = sprig_core_store(r->core);
    sprig_store_stats(store, &ss);
    sprig_core_stats(r->core, &cs);
    snprintf(hash, sizeof(hash), "%016" PRIx64, sprig_tree_root_hash(r->tree));
    cJSON *o = cJSON_CreateObject(), *st = cJSON_CreateObject(), *w = cJSON_CreateObject();
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", SPRIG_VERSION);
    cJSON_AddStringToObject(o, "root", sprig_core_root_id(r->core));
    cJSON_AddStringToObject(o, "hash", hash);
    cJSON_AddNumberToObject(o, "nodes", (double)sprig_tree_node_count(r->tree));
    cJSON_AddNumberToObject(o, "points", (double)sprig_tree_point_count(r->tree));
    cJSON_AddNumberToObject(o, "uptime", (double)(sprig_wall_ns() - r->api->started_ns) / 1e9);
    cJSON_AddNumberToObject(st, "batches", (double)ss.batches);
    cJSON_AddNumberToObject(st, "rows", (double)ss.rows);
    cJSON_AddNumberToObject(st, "commitErrors", (double)ss.commit_errors);
    cJSON_AddNumberToObject(st, "historyRows", (double)ss.history_rows);
    cJSON_AddNumberToObject(st, "durableBatch", (double)sprig_store_durable(store));
    cJSON_AddNumberToObject(st, "backlog", (double)sprig_store_backlog(store));
    store_health_json(st, store);
    cJSON_AddItemToObject(o, "store", st);
    cJSON_AddNumberToObject(w, "accepted", (double)cs.accepted);
    cJSON_AddNumberToObject(w, "stale", (double)cs.stale);
    cJSON_AddNumberToObject(w, "refused", (double)cs.refused);
    cJSON_AddItemToObject(o, "writes", w);
    cJSON_AddNumberToObject(a, "requests", (double)r->api->requests);
    cJSON_AddNumberToObject(a, "errors", (double)r->api->errors);
    cJSON_AddItemToObject(o, "api", a);
    status_sync_t sync = {r, cJSON_AddArrayToObject(o, "sync")};
    if (sync.list != NULL) {
        sprig_tree_each_node(r->tree, status_sync_one, &sync);
    }
    api__ok(r, 200, o, 0);
}

typedef struct page {
    cJSON *samples;
    int64_t last_time, last_id;
} page_t;

static int page_add(const sprig_point_t *p, int64_t id, void *arg)
{
    page_t *pg = arg;
    cJSON_AddItemToArray(pg->samples, sprig_json_from_point(p));
    pg->last_time = p->time;
    pg->last_id = id;
    return 0;
}

/* Reads an optional RFC 3339 query parameter; fills a 400 and returns -1 when bad. */
static int query_time(route_ctx_t *r, const char *name, int64_t *out)
{
    const char *v = api__query(r, name);
    sprig_error_t err;
    if (v == NULL) {
        return 0;
    }
    if (sprig_json_time_parse(v, out, &err) != 0) {
        api__error(r->ans, 400, "%s: %s", name, err.msg);
        return -1;
    }
    return 0;
}

/* GET /v1/nodes/{id}/history: one page of a point series, with the cursor of the next. */
static void get_history(route_ctx_t *r, sprig_node_t *n)
{
    const char *type = api__query(r, "type"), *key = api__query(r, "key"),
               *after = api__query(r, "after");
    const char *limit = api__query(r, "limit"), *order = api__query(r, "order");
    sprig_store_history_query_t q = {
        .node = sprig_node_id(n), .type = type, .key = key != NULL ? key : "0", .limit = 1000};
    if (type == NULL || !sprig_id_valid(type) || !sprig_id_valid(q.key)) {
        api__error(r->ans, 400,
                   "history needs ?type=POINT_TYPE (and optionally &key=KEY), "
                   "each 1-64 bytes of [A-Za-z0-9._:-]");
        return;
    }
    if (limit != NULL) {
        char *end;
        long v = strtol(limit, &end, 10);
        if (*end != '\0' || end == limit || v < 1 || v > 10000) {
            api__error(r->ans, 400, "limit \"%.32s\" must be a whole number from 1 to 10000",
                       limit);
            return;
        }
        q.limit = (size_t)v;
    }
    if (order != NULL && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        api__error(r->ans, 400, "order \"%.32s\" must be asc or desc", order);
        return;
    }
    q.desc = order != NULL && strcmp(order, "desc") == 0;
    if (query_time(r, "from", &q.from) != 0 || query_time(r, "to", &q.to) != 0) {
        return;
    }
    if (after != NULL) {
        char *dot = NULL, *end = NULL;
        errno = 0;
        long long t = strtoll(after, &dot, 10), id = 0;
        /* Digits, a dot, digits: strtoll alone would also take spaces and signs. */
        if (isdigit((unsigned char)after[0]) && errno == 0 && dot != after && *dot == '.' &&
            isdigit((unsigned char)dot[1])) {
            id = strtoll(dot + 1, &end, 10);
        }
        if (errno != 0 || end == NULL || *end != '\0' || id < 1 || t < 0) {
            api__error(r->ans, 400, "after \"%.64s\" is not a cursor this API gave out", after);
            return;
        }
        q.after_time = t;
        q.after_id = id;
    }
    page_t pg = {cJSON_CreateArray(), 0, 0};
    if (api__query(r, "to") != NULL && q.to <= 0) {
        /* A window that ends at (or before) the epoch holds nothing. */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "samples", pg.samples);
        cJSON_AddStringToObject(o, "next", "");
        api__ok(r, 200, o, 0);
        return;
    }
    long got = sprig_store_history(sprig_core_store(r->core), &q, page_add, &pg);
    if (got < 0) {
        cJSON_Delete(pg.samples);
        api__error(r->ans, api__status((int)got), "history of node %s cannot be read",
                   sprig_node_id(n));
        return;
    }
    char next[48] = "";
    if ((size_t)got == q.limit) {
        snprintf(next, sizeof(next), "%lld.%lld", (long long)pg.last_time, (long long)pg.last_id);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "samples", pg.samples);
    cJSON_AddStringToObject(o, "next", next);
    api__ok(r, 200, o, 0);
}

static cJSON *name_list(const char *const *list)
{
    cJSON *a = cJSON_CreateArray();
    for (; a != NULL && list != NULL && *list != NULL; list++) {
        cJSON_AddItemToArray(a, cJSON_CreateString(*list));
    }
    return a;
}

/* A schema type as JSON: its attributes and every point, inherited ones included. */
static cJSON *schema_type_json(const sprig_schema_type_t *t)
{
    static const char *const kinds[] = {"number", "integer", "bool", "text", "enum"};
    static const char *const keys[] = {"one", "array", "map"};
    cJSON *o = cJSON_CreateObject(), *pts = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "description", t->description != NULL ? t->description : "");
    if (t->extends != NULL) {
        cJSON_AddStringToObject(o, "extends", t->extends);
    }
    if (t->parents != NULL) {
        cJSON_AddItemToObject(o, "parents", name_list(t->parents));
    }
    cJSON_AddBoolToObject(o, "open", t->open);
    cJSON_AddStringToObject(o, "file", t->file);
    cJSON_AddNumberToObject(o, "line", t->line);
    for (size_t i = 0; i < t->npoints; i++) {
        const sprig_schema_point_t *p = &t->points[i];
        cJSON *po = cJSON_CreateObject();
        cJSON_AddStringToObject(po, "name", p->name);
        cJSON_AddStringToObject(po, "kind", kinds[p->kind]);
        if (p->has_min) {
            sprig_json_add_exact(po, "min", p->min);
        }
        if (p->has_max) {
            sprig_json_add_exact(po, "max", p->max);
        }
        if (p->unit != NULL) {
            cJSON_AddStringToObject(po, "unit", p->unit);
        }
        if (p->has_default && p->default_text != NULL) {
            cJSON_AddStringToObject(po, "default", p->default_text);
        }
        else if (p->has_default) {
            sprig_json_add_exact(po, "default", p->default_value);
        }
        if (p->values != NULL) {
            cJSON_AddItemToObject(po, "values", name_list(p->values));
        }
        cJSON_AddBoolToObject(po, "required", p->required);
        cJSON_AddStringToObject(po, "owner",
                                p->owner_driver   ? "driver"
                                : p->owner_people ? "people"
                                                  : "any");
        cJSON_AddBoolToObject(po, "local", p->local);
        cJSON_AddStringToObject(po, "keys", keys[p->keys]);
        if (p->map_keys != NULL) {
            cJSON_AddItemToObject(po, "mapKeys", name_list(p->map_keys));
        }
        if (p->description != NULL) {
            cJSON_AddStringToObject(po, "description", p->description);
        }
        cJSON_AddStringToObject(po, "declaredIn", p->declared_in);
        cJSON_AddItemToArray(pts, po);
    }
    cJSON_AddItemToObject(o, "points", pts);
    return o;
}

/* GET /v1/schema (every type) and /v1/schema/{type}. */
static void get_schema(route_ctx_t *r, const char *type)
{
    const sprig_schema_t *s = sprig_core_schema(r->core);
    if (type != NULL) {
        const sprig_schema_type_t *t = s != NULL ? sprig_schema_type(s, type) : NULL;
        if (t == NULL) {
            api__error(r->ans, 404, "node type %.64s is not declared by any schema", type);
            return;
        }
        api__ok(r, 200, schema_type_json(t), 0);
        return;
    }
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; s != NULL && sprig_schema_type_at(s, i) != NULL; i++) {
        cJSON_AddItemToArray(a, schema_type_json(sprig_schema_type_at(s, i)));
    }
    api__ok(r, 200, a, 0);
}

/* GET /v1/export: the whole tree as one document (sprig/exchange.h). */
static void get_export(route_ctx_t *r)
{
    cJSON *o = sprig_export_json(r->core);
    if (o == NULL) {
        api__error(r->ans, api__status(-ENOMEM), "out of memory");
        return;
    }
    api__ok(r, 200, o, 0);
}

/* POST /v1/import: sprig_import_json applies the whole document as one write, so a bad
 * document changes nothing; the answer waits until the batch is durable. A request of the
 * server has its body parsed on a worker thread first (api.c: parse_later), so the loop
 * serves other requests meanwhile; one routed in process is parsed here. */
static void post_import(route_ctx_t *r)
{
    if (r->req->conn != NULL) {
        r->ans->parse_later = true;
        return;
    }
    uint64_t t0 = uv_hrtime();
    cJSON *j = api__parse_body(r);
    if (j != NULL) {
        api__import_apply(r->core, j, r->req->len, uv_hrtime() - t0, r->ans);
    }
}

void api__import_apply(sprig_core_t *core, cJSON *doc, size_t len, uint64_t parse_ns,
                       api_answer_t *ans)
{
    sprig_error_t err;
    long nn = 0, np = 0;
    route_ctx_t r = {.core = core, .ans = ans};
    /* The store may have failed while the body came and was parsed. */
    if (store_refuses(&r)) {
        cJSON_Delete(doc);
        return;
    }
    uint64_t t0 = uv_hrtime();
    int rc = sprig_import_json(core, doc, &nn, &np, &err);
    cJSON_Delete(doc);
#ifdef __GLIBC__
    /* The document's parse is freed, hundreds of MB for a whole site, partly in a worker
     * thread's arena that the loop never reuses: give it back to the system now. */
    malloc_trim(0);
#endif
    /* The loop serves nothing else meanwhile: say for how long. */
    sprig_log_info("api: import of %zu bytes: parsed in %" PRIu64 " ms, %s in %" PRIu64 " ms "
                   "(%ld nodes, %ld points)",
                   len, parse_ns / 1000000, rc == 0 ? "applied" : "refused",
                   (uv_hrtime() - t0) / 1000000, nn, np);
    if (rc != 0) {
        api__fail(&r, rc, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "nodes", (double)nn);
    cJSON_AddNumberToObject(o, "points", (double)np);
    api__ok(&r, 200, o, sprig_core_batch(core));
}

/* --- the table ---------------------------------------------------------------------- */

static int split(route_ctx_t *r, const char *url, char *buf, size_t n)
{
    snprintf(buf, n, "%s", url);
    r->nseg = 0;
    char *save = NULL;
    for (char *s = strtok_r(buf, "/", &save); s != NULL; s = strtok_r(NULL, "/", &save)) {
        if (r->nseg == MAX_SEGMENTS) {
            return -1;
        }
        r->seg[r->nseg++] = s;
    }
    return 0;
}

static bool is(route_ctx_t *r, int i, const char *s)
{
    return i < r->nseg && strcmp(r->seg[i], s) == 0;
}

void api__route(sprig_api_t *api, api_req_t *req, const char *method, const char *url,
                api_answer_t *ans)
{
    route_ctx_t r = {
        .api = api, .req = req, .core = api->core, .tree = sprig_core_tree(api->core), .ans = ans};
    char buf[512];
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    bool del = strcmp(method, "DELETE") == 0;
    ans->status = 0;
    if (strlen(url) >= sizeof(buf) || split(&r, url, buf, sizeof(buf)) != 0 || !is(&r, 0, "v1")) {
        api__error(ans, 404, "no such endpoint: %s %.128s", method, url);
        return;
    }
    /* The fixed endpoints and their one method (nodes: GET and POST). */
    static const char *const fixed[][2] = {
        {"status", "GET"},
        {"events", "GET"},
        {"export", "GET"},
        {"import", "POST"},
    };
    if (r.nseg == 3 && is(&r, 1, "rules") && is(&r, 2, "compile")) {
        if (!post) {
            api__error(ans, 405, "%s /v1/rules/compile: method not allowed (use POST)", method);
        }
        else {
            api__rules_compile(api, req, ans);
        }
        return;
    }
    for (size_t i = 0; r.nseg == 2 && i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        bool want_get = strcmp(fixed[i][1], "GET") == 0;
        if (is(&r, 1, fixed[i][0]) && !(want_get ? get : post)) {
            api__error(ans, 405, "%s /v1/%s: method not allowed (use %s)", method, fixed[i][0],
                       fixed[i][1]);
            return;
        }
    }
    if (r.nseg == 2 && is(&r, 1, "nodes") && !get && !post) {
        api__error(ans, 405, "%s /v1/nodes: method not allowed (use GET or POST)", method);
        return;
    }
    if ((r.nseg == 2 || r.nseg == 3) && is(&r, 1, "schema")) {
        if (!get) {
            api__error(ans, 405, "%s %.128s: method not allowed (use GET)", method, url);
        }
        else {
            get_schema(&r, r.nseg == 3 ? r.seg[2] : NULL);
        }
        return;
    }
    if (r.nseg == 2 && is(&r, 1, "status") && get) {
        get_status(&r);
    }
    else if (r.nseg == 2 && is(&r, 1, "events") && get) {
        if (req->conn == NULL) {
            api__error(ans, 400, "GET /v1/events needs a connection to stream on");
        }
        else {
            api__events_open(api, req, ans);
        }
    }
    else if (r.nseg == 2 && is(&r, 1, "export") && get) {
        get_export(&r);
    }
    else if (r.nseg == 2 && is(&r, 1, "import") && post) {
        if (!store_refuses(&r)) {
            post_import(&r);
        }
    }
    else if (r.nseg == 2 && is(&r, 1, "nodes") && get) {
        api__get_nodes(&r);
    }
    else if (r.nseg == 2 && is(&r, 1, "nodes") && post) {
        if (!store_refuses(&r)) {
            api__post_nodes(&r);
        }
    }
    else if (r.nseg >= 3 && r.nseg <= 4 && is(&r, 1, "nodes")) {
        const char *sub = r.nseg == 4 ? r.seg[3] : "";
        bool known =
            r.nseg == 3
                ? (get || del)
                : ((strcmp(sub, "children") == 0 && get) || (strcmp(sub, "history") == 0 && get) ||
                   (strcmp(sub, "points") == 0 && post) || (strcmp(sub, "parents") == 0 && post));
        if (!known) {
            bool path_known = r.nseg == 3 || strcmp(sub, "children") == 0 ||
                              strcmp(sub, "history") == 0 || strcmp(sub, "points") == 0 ||
                              strcmp(sub, "parents") == 0;
            if (path_known) {
                api__error(ans, 405, "%s %.128s: method not allowed", method, url);
            }
            else {
                api__error(ans, 404, "no such endpoint: %s %.128s", method, url);
            }
            return;
        }
        sprig_node_t *n = find_node(&r, r.seg[2]);
        if (n == NULL || ((post || del) && store_refuses(&r))) {
            return;
        }
        if (r.nseg == 3) {
            get ? api__get_node(&r, n) : api__delete_node(&r, n);
        }
        else if (strcmp(sub, "children") == 0) {
            api__get_children(&r, n);
        }
        else if (strcmp(sub, "history") == 0) {
            get_history(&r, n);
        }
        else if (strcmp(sub, "points") == 0) {
            api__post_points(&r, n);
        }
        else {
            api__post_parents(&r, n);
        }
    }
    else {
        api__error(ans, 404, "no such endpoint: %s %.128s", method, url);
    }
    if (ans->status == 0 && ans->stream == NULL && !ans->parse_later) {
        api__error(ans, 500, "out of memory");
    }
}

void api__route_body(sprig_core_t *core, const char *method, const char *url, const char *body,
                     size_t len, api_answer_t *ans)
{
    sprig_api_t api = {.core = core, .loop = sprig_core_loop(core)};
    api_req_t req = {.api = &api, .body = (char *)body, .len = len, .started = true};
    memset(ans, 0, sizeof(*ans));
    api__route(&api, &req, method, url, ans);
}
