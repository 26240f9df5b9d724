/* The API's node routes (DESIGN.md section 9): the list of nodes (by type, deleted ones
 * too, and ?where conditions on their points), create, read and delete a node, its
 * children, its points and its parents (move, mirror); the table in api_routes.c calls
 * them. Each takes the parsed request and fills an answer; writes go through the core's
 * one write path and name the batch to wait for, so they answer once durable. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "sprig/err.h"
#include "sprig/json.h"
#include "sprig/util.h"

#define MAX_POINTS 100000

static cJSON *points_json(const sprig_point_t *p)
{
    cJSON *a = cJSON_CreateArray();
    for (; a != NULL && p != NULL; p = sprig_point_next(p)) {
        cJSON_AddItemToArray(a, sprig_json_from_point(p));
    }
    return a;
}

/* {"id","type","parent","hash","points","edgePoints"}: `via` is the edge it is shown
 * under (NULL: its first live parent). */
static cJSON *node_json(route_ctx_t *r, const sprig_node_t *n, sprig_edge_t *via)
{
    char hash[17];
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    sprig_edge_t *e = via != NULL ? via : sprig_node_live_parent(n);
    snprintf(hash, sizeof(hash), "%016" PRIx64, sprig_node_hash(n));
    cJSON_AddStringToObject(o, "id", sprig_node_id(n));
    cJSON_AddStringToObject(o, "type", sprig_node_type(n));
    cJSON_AddStringToObject(o, "parent", e != NULL ? sprig_node_id(sprig_edge_up(e)) : "");
    cJSON_AddStringToObject(o, "hash", hash);
    cJSON *parents = cJSON_AddArrayToObject(o, "parents"); /* every live parent (mirrors) */
    for (sprig_edge_t *pe = sprig_node_parents(n); pe != NULL; pe = sprig_edge_next_parent(pe)) {
        if (!sprig_edge_tombstone(pe)) {
            cJSON_AddItemToArray(parents, cJSON_CreateString(sprig_node_id(sprig_edge_up(pe))));
        }
    }
    cJSON_AddItemToObject(o, "points", points_json(sprig_node_points(n)));
    cJSON_AddItemToObject(o, "edgePoints", points_json(e != NULL ? sprig_edge_points(e) : NULL));
    if (e == NULL && n != sprig_tree_root(r->tree)) {
        cJSON_AddBoolToObject(o, "deleted", 1);
    }
    return o;
}

/* Reads an array of points from j into a new array (strings borrowed from j). */
static sprig_point_t *points_from(route_ctx_t *r, const cJSON *j, const char *what, size_t *n)
{
    sprig_error_t err;
    char label[96];
    *n = 0;
    if (j == NULL) {
        return calloc(1, sizeof(sprig_point_t)); /* no points: an empty, freeable array */
    }
    if (!cJSON_IsArray(j)) {
        api__error(r->ans, 400, "%s must be an array of points", what);
        return NULL;
    }
    int count = cJSON_GetArraySize(j);
    if (count > MAX_POINTS) {
        api__error(r->ans, 413, "%s has %d points, over the limit of %d", what, count, MAX_POINTS);
        return NULL;
    }
    sprig_point_t *pts = calloc((size_t)count + 1, sizeof(*pts));
    if (pts == NULL) {
        api__error(r->ans, 503, "out of memory");
        return NULL;
    }
    int i = 0;
    for (const cJSON *p = j->child; p != NULL; p = p->next, i++) {
        snprintf(label, sizeof(label), "%s[%d]", what, i);
        if (sprig_json_to_point(p, label, &pts[i], &err) != 0) {
            api__error(r->ans, 400, "%s", err.msg);
            free(pts);
            return NULL;
        }
    }
    *n = (size_t)count;
    return pts;
}

/* One condition of ?where=POINT OP VALUE (POINT may be TYPE[KEY]). */
typedef struct cond {
    char type[SPRIG_ID_MAX + 1], key[SPRIG_ID_MAX + 1];
    enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } op;
    bool numeric;
    double number;
    char text[256];
} cond_t;

#define MAX_WHERE 8

typedef struct list_ctx {
    route_ctx_t *r;
    cJSON *out;
    const char *type;
    bool deleted;
    cond_t where[MAX_WHERE];
    int nwhere;
    int bad; /* -1: too many; 0 ok; else index + 1 of a condition that does not parse */
    const char *bad_text;
} list_ctx_t;

/* Parses "POINT OP VALUE"; 0 or -1. */
static int parse_cond(const char *s, cond_t *c)
{
    static const char *const ops[] = {"!=", "<=", ">=", "=", "<", ">"};
    static const int codes[] = {OP_NE, OP_LE, OP_GE, OP_EQ, OP_LT, OP_GT};
    size_t i = 0, k = 0;
    memset(c, 0, sizeof(*c));
    while (s[i] == ' ') {
        i++;
    }
    while (s[i] != '\0' && strchr(" =!<>[", s[i]) == NULL && k < SPRIG_ID_MAX) {
        c->type[k++] = s[i++];
    }
    snprintf(c->key, sizeof(c->key), "0");
    if (s[i] == '[') {
        const char *end = strchr(s + i, ']');
        if (end == NULL || (size_t)(end - s - i - 1) > SPRIG_ID_MAX) {
            return -1;
        }
        snprintf(c->key, sizeof(c->key), "%.*s", (int)(end - s - i - 1), s + i + 1);
        i = (size_t)(end - s) + 1;
    }
    while (s[i] == ' ') {
        i++;
    }
    int op = -1;
    for (int o = 0; o < 6 && op < 0; o++) {
        if (strncmp(s + i, ops[o], strlen(ops[o])) == 0) {
            op = o;
            i += strlen(ops[o]);
        }
    }
    while (s[i] == ' ') {
        i++;
    }
    if (op < 0 || !sprig_id_valid(c->type) || !sprig_id_valid(c->key) || s[i] == '\0') {
        return -1;
    }
    c->op = codes[op];
    const char *v = s + i;
    size_t len = strlen(v);
    while (len > 0 && v[len - 1] == ' ') {
        len--;
    }
    if (len >= 2 && (v[0] == '"' || v[0] == '\'') && v[len - 1] == v[0]) {
        snprintf(c->text, sizeof(c->text), "%.*s", (int)(len - 2), v + 1);
        return 0;
    }
    snprintf(c->text, sizeof(c->text), "%.*s", (int)len, v);
    char *end;
    c->number = strtod(c->text, &end);
    c->numeric = end != c->text && *end == '\0' && isfinite(c->number);
    return 0;
}

static bool cond_holds(const cond_t *c, const sprig_point_t *p)
{
    if (p == NULL || p->tombstone) {
        return c->op == OP_NE; /* an absent point differs from anything */
    }
    int cmp;
    if (c->numeric) {
        cmp = p->value < c->number ? -1 : (p->value > c->number ? 1 : 0);
    }
    else {
        cmp = strcmp(p->text, c->text);
    }
    switch (c->op) {
    case OP_EQ:
        return cmp == 0;
    case OP_NE:
        return cmp != 0;
    case OP_LT:
        return cmp < 0;
    case OP_LE:
        return cmp <= 0;
    case OP_GT:
        return cmp > 0;
    default:
        return cmp >= 0;
    }
}

static enum MHD_Result collect_where(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    list_ctx_t *l = cls;
    if (strcmp(key, "where") != 0 || l->bad != 0) {
        return MHD_YES;
    }
    if (l->nwhere == MAX_WHERE) {
        l->bad = -1;
        return MHD_YES;
    }
    if (value == NULL || parse_cond(value, &l->where[l->nwhere]) != 0) {
        l->bad = l->nwhere + 1;
        l->bad_text = value != NULL ? value : "";
        return MHD_YES;
    }
    l->nwhere++;
    return MHD_YES;
}

static int list_one(sprig_node_t *n, void *arg)
{
    list_ctx_t *l = arg;
    for (int i = 0; i < l->nwhere; i++) {
        const cond_t *c = &l->where[i];
        if (!cond_holds(c, sprig_tree_point(l->r->tree, n, c->type, c->key))) {
            return 0;
        }
    }
    if (l->type != NULL && strcmp(sprig_node_type(n), l->type) != 0) {
        return 0;
    }
    if (!l->deleted && sprig_node_live_parent(n) == NULL && n != sprig_tree_root(l->r->tree)) {
        return 0;
    }
    cJSON_AddItemToArray(l->out, node_json(l->r, n, NULL));
    return 0;
}

void api__get_nodes(route_ctx_t *r)
{
    const char *deleted = api__query(r, "deleted");
    list_ctx_t l = {.r = r,
                    .out = cJSON_CreateArray(),
                    .type = api__query(r, "type"),
                    .deleted = deleted != NULL && strcmp(deleted, "0") != 0};
    if (r->req->conn != NULL) {
        MHD_get_connection_values(r->req->conn, MHD_GET_ARGUMENT_KIND, collect_where, &l);
    }
    if (l.bad != 0) {
        cJSON_Delete(l.out);
        if (l.bad < 0) {
            api__error(r->ans, 400, "at most %d where conditions", MAX_WHERE);
        }
        else {
            api__error(r->ans, 400,
                       "where \"%.100s\" is not POINT OP VALUE (POINT a point type, optionally "
                       "TYPE[KEY]; OP one of = != < <= > >=)",
                       l.bad_text);
        }
        return;
    }
    if (l.type != NULL && !sprig_id_valid(l.type)) {
        cJSON_Delete(l.out);
        api__error(r->ans, 400, "type \"%.64s\" is not 1-64 bytes of [A-Za-z0-9._:-]", l.type);
        return;
    }
    sprig_tree_each_node(r->tree, list_one, &l);
    api__ok(r, 200, l.out, 0);
}

void api__post_nodes(route_ctx_t *r)
{
    cJSON *j = api__parse_body(r);
    sprig_error_t err;
    char id[SPRIG_ID_MAX + 1];
    if (j == NULL) {
        return;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *parent = cJSON_GetObjectItemCaseSensitive(j, "parent");
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (!cJSON_IsObject(j) || !cJSON_IsString(type) || !cJSON_IsString(parent) ||
        (jid != NULL && !cJSON_IsNull(jid) && !cJSON_IsString(jid))) {
        api__error(r->ans, 400,
                   "body must be {\"type\": string, \"parent\": string, \"id\"?: string, "
                   "\"points\"?: [...]}");
        cJSON_Delete(j);
        return;
    }
    size_t n;
    sprig_point_t *pts =
        points_from(r, cJSON_GetObjectItemCaseSensitive(j, "points"), "points", &n);
    if (pts != NULL) {
        int rc = sprig_core_create(r->core, cJSON_IsString(jid) ? jid->valuestring : NULL,
                                   type->valuestring, parent->valuestring, pts, n, NULL, id, &err);
        if (rc != 0) {
            api__fail(r, rc, &err);
        }
        else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", id);
            api__ok(r, 201, o, sprig_core_batch(r->core));
        }
        free(pts);
    }
    cJSON_Delete(j);
}

void api__get_node(route_ctx_t *r, sprig_node_t *n)
{
    api__ok(r, 200, node_json(r, n, NULL), 0);
}

void api__get_children(route_ctx_t *r, sprig_node_t *n)
{
    cJSON *a = cJSON_CreateArray();
    for (sprig_edge_t *e = sprig_node_children(n); e != NULL; e = sprig_edge_next_child(e)) {
        if (!sprig_edge_tombstone(e)) {
            cJSON_AddItemToArray(a, node_json(r, sprig_edge_down(e), e));
        }
    }
    api__ok(r, 200, a, 0);
}

void api__delete_node(route_ctx_t *r, sprig_node_t *n)
{
    sprig_error_t err;
    const char *parent = api__query(r, "parent");
    if (parent == NULL) {
        sprig_edge_t *e = sprig_node_live_parent(n);
        if (e == NULL) {
            api__error(r->ans, 400, "node %s has no parent to be deleted from", sprig_node_id(n));
            return;
        }
        parent = sprig_node_id(sprig_edge_up(e));
    }
    int rc = sprig_core_delete(r->core, sprig_node_id(n), parent, NULL, &err);
    if (rc != 0) {
        api__fail(r, rc, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", sprig_node_id(n));
    cJSON_AddStringToObject(o, "parent", parent);
    api__ok(r, 200, o, sprig_core_batch(r->core));
}

void api__post_points(route_ctx_t *r, sprig_node_t *n)
{
    cJSON *j = api__parse_body(r);
    sprig_error_t err;
    size_t count;
    if (j == NULL) {
        return;
    }
    sprig_point_t *pts = points_from(r, j, "points", &count);
    if (pts != NULL) {
        sprig_core_stats_t before, after;
        sprig_core_stats(r->core, &before);
        int rc = sprig_core_write(r->core, sprig_node_id(n), pts, count, NULL, &err);
        sprig_core_stats(r->core, &after);
        if (rc != 0) {
            api__fail(r, rc, &err);
        }
        else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "accepted", (double)(after.accepted - before.accepted));
            cJSON_AddNumberToObject(o, "stale", (double)(after.stale - before.stale));
            api__ok(r, 200, o, sprig_core_batch(r->core));
        }
        free(pts);
    }
    cJSON_Delete(j);
}

void api__post_parents(route_ctx_t *r, sprig_node_t *n)
{
    cJSON *j = api__parse_body(r);
    sprig_error_t err;
    if (j == NULL) {
        return;
    }
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(j, "from");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(j, "to");
    int rc = 0;
    if (!cJSON_IsString(op) || !cJSON_IsString(to)) {
        api__error(r->ans, 400,
                   "body must be {\"op\": \"move\" or \"mirror\", \"from\": id, "
                   "\"to\": id}");
    }
    else if (strcmp(op->valuestring, "move") == 0) {
        if (!cJSON_IsString(from)) {
            api__error(r->ans, 400, "op \"move\" needs \"from\": the parent to move from");
        }
        else if ((rc = sprig_core_move(r->core, sprig_node_id(n), from->valuestring,
                                       to->valuestring, NULL, &err)) != 0) {
            api__fail(r, rc, &err);
        }
        else {
            api__ok(r, 200, cJSON_CreateObject(), sprig_core_batch(r->core));
        }
    }
    else if (strcmp(op->valuestring, "mirror") == 0) {
        if ((rc = sprig_core_mirror(r->core, sprig_node_id(n), to->valuestring, NULL, &err)) != 0) {
            api__fail(r, rc, &err);
        }
        else {
            api__ok(r, 200, cJSON_CreateObject(), sprig_core_batch(r->core));
        }
    }
    else {
        api__error(r->ans, 400, "op \"%.32s\" is not \"move\" or \"mirror\"", op->valuestring);
    }
    cJSON_Delete(j);
}
