/* Sync messages: the text of points in and out (times as decimal-nanosecond strings,
 * values with 17 digits, so both survive exactly), and the repair exchange of DESIGN.md
 * section 5. Repair is symmetric: a side that receives `kids` (a node's own hash and its
 * children's edge contributions and subtree hashes) compares them with its own and
 *   - sends its `node` (points and child edges) when the node's own hash differs,
 *   - sends its own `kids` for a child whose subtree differs (the descent),
 *   - sends `node` of the parent when only edge points differ, and `need` for what it
 *     lacks (a whole subtree it has never seen);
 * a side that receives `node` merges it through the write path and answers with its own
 * `node` when, after the merge, it still holds something the sender lacked. Bytes grow
 * with the changed nodes times the depth, not with the tree. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/util.h"
#include "sync_internal.h"

/* --- text out ----------------------------------------------------------------------- */

void sb_json(sbuf_t *b, const char *s)
{
    sb_add(b, "\"", 1);
    const char *run = s;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\' || c < 0x20) {
            sb_add(b, run, (size_t)(s - run));
            char esc[8];
            snprintf(esc, sizeof(esc), c == '"' ? "\\\"" : c == '\\' ? "\\\\" : "\\u%04x", c);
            sb_str(b, esc);
            run = s + 1;
        }
    }
    sb_add(b, run, (size_t)(s - run));
    sb_add(b, "\"", 1);
}

void sb_point(sbuf_t *b, const sprig_point_t *p)
{
    sb_str(b, "{\"type\":");
    sb_json(b, p->type);
    sb_str(b, ",\"key\":");
    sb_json(b, p->key);
    sb_fmt(b, ",\"time\":\"%" PRId64 "\",\"value\":%.17g,\"text\":", p->time, p->value);
    sb_json(b, p->text);
    sb_fmt(b, ",\"tombstone\":%d,\"origin\":", p->tombstone);
    sb_json(b, p->origin);
    sb_str(b, "}");
}

/* --- byte counters by kind ---------------------------------------------------------- */

const char *const sync__kinds[SYNC_KINDS] = {"pts",  "probe", "match", "wait", "kids",
                                             "node", "need",  "hist",  "hack", "other"};

void sync__count(sprig_sync_t *s, bool up, const void *msg, size_t len)
{
    static const char head[] = "{\"t\":\"";
    const char *m = msg;
    size_t k = SYNC_KINDS - 1;
    if (len > sizeof(head) - 1 && memcmp(m, head, sizeof(head) - 1) == 0) {
        const char *t = m + sizeof(head) - 1;
        const char *end = memchr(t, '"', len - (sizeof(head) - 1));
        for (size_t i = 0; end != NULL && i < SYNC_KINDS - 1; i++) {
            if (strlen(sync__kinds[i]) == (size_t)(end - t) &&
                memcmp(sync__kinds[i], t, (size_t)(end - t)) == 0) {
                k = i;
                break;
            }
        }
    }
    s->kind_bytes[up ? 0 : 1][k] += len;
    if (up) {
        s->bytes_up += len;
    }
    else {
        s->bytes_down += len;
    }
}

void sync__kinds_json(const sprig_sync_t *s, char *out, size_t size)
{
    sbuf_t b = {0};
    for (int dir = 0; dir < 2; dir++) {
        sb_str(&b, dir == 0 ? "{\"up\":{" : "},\"down\":{");
        bool first = true;
        for (size_t i = 0; i < SYNC_KINDS; i++) {
            if (s->kind_bytes[dir][i] != 0) {
                sb_fmt(&b, "%s\"%s\":%" PRIu64, first ? "" : ",", sync__kinds[i],
                       s->kind_bytes[dir][i]);
                first = false;
            }
        }
    }
    sb_str(&b, "}}");
    snprintf(out, size, "%s", b.oom || b.p == NULL ? "" : b.p);
    sb_free(&b);
}

/* --- text in ------------------------------------------------------------------------ */

int sync__point(const cJSON *o, sprig_point_t *out)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "key");
    const cJSON *time = cJSON_GetObjectItemCaseSensitive(o, "time");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(o, "value");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
    const cJSON *tomb = cJSON_GetObjectItemCaseSensitive(o, "tombstone");
    const cJSON *origin = cJSON_GetObjectItemCaseSensitive(o, "origin");
    if (!cJSON_IsObject(o) || !cJSON_IsString(type) || !cJSON_IsString(key) ||
        !cJSON_IsString(time) || !cJSON_IsNumber(value) || !cJSON_IsString(text) ||
        !cJSON_IsNumber(tomb) || !cJSON_IsString(origin)) {
        return -EINVAL;
    }
    char *end;
    errno = 0;
    long long t = strtoll(time->valuestring, &end, 10);
    if (errno != 0 || end == time->valuestring || *end != '\0' || t <= 0) {
        return -EINVAL;
    }
    *out = (sprig_point_t){.type = type->valuestring,
                           .key = key->valuestring,
                           .time = t,
                           .value = value->valuedouble,
                           .text = text->valuestring,
                           .origin = origin->valuestring,
                           .tombstone = tomb->valueint != 0};
    return 0;
}

/* Reads a JSON array of points into a new array (caller frees); NULL with *n = 0 when it
 * is empty; *bad set when one does not parse. */
static sprig_point_t *points_in(const cJSON *a, size_t *n, bool *bad)
{
    *n = 0;
    *bad = !cJSON_IsArray(a);
    int k = cJSON_GetArraySize(a);
    if (*bad || k == 0) {
        return NULL;
    }
    sprig_point_t *pts = sprig_calloc((size_t)k, sizeof(*pts));
    if (pts == NULL) {
        *bad = true;
        return NULL;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, a)
    {
        if (sync__point(it, &pts[*n]) != 0) {
            *bad = true;
            break;
        }
        (*n)++;
    }
    return pts;
}

/* --- hashes of one level ------------------------------------------------------------- */

static uint64_t edge_hash(const sprig_edge_t *e)
{
    uint64_t h = 0;
    for (const sprig_point_t *p = sprig_edge_points(e); p != NULL; p = sprig_point_next(p)) {
        h ^= sprig_tree_point_hash(p);
    }
    return h;
}

static uint64_t hex(const cJSON *j)
{
    return cJSON_IsString(j) ? strtoull(j->valuestring, NULL, 16) : 0;
}

static sprig_edge_t *child_edge(sprig_node_t *n, const char *id)
{
    for (sprig_edge_t *e = sprig_node_children(n); e != NULL; e = sprig_edge_next_child(e)) {
        if (strcmp(sprig_node_id(sprig_edge_down(e)), id) == 0) {
            return e;
        }
    }
    return NULL;
}

/* --- repair out --------------------------------------------------------------------- */

void sync__send_kids(sync_peer_t *p, sprig_node_t *n)
{
    sbuf_t b = {0};
    sync__begin(p, &b, "kids");
    sb_str(&b, ",\"node\":");
    sb_json(&b, sprig_node_id(n));
    sb_fmt(&b, ",\"own\":\"%016" PRIx64 "\",\"kids\":[", sprig_node_own_hash(n));
    bool first = true;
    for (sprig_edge_t *e = sprig_node_children(n); e != NULL; e = sprig_edge_next_child(e)) {
        sprig_node_t *c = sprig_edge_down(e);
        sb_str(&b, first ? "[" : ",[");
        sb_json(&b, sprig_node_id(c));
        sb_fmt(&b, ",\"%016" PRIx64 "\",\"%016" PRIx64 "\"]", sprig_edge_contrib(e),
               sprig_node_hash(c));
        first = false;
    }
    sb_str(&b, "]}");
    sync__send(p, &b);
}

static void node_msg(sync_peer_t *p, sprig_node_t *n, bool reply)
{
    const sprig_schema_t *schema = sprig_core_schema(p->s->core);
    sbuf_t b = {0};
    sync__begin(p, &b, "node");
    sb_str(&b, ",\"id\":");
    sb_json(&b, sprig_node_id(n));
    sb_str(&b, ",\"type\":");
    sb_json(&b, sprig_node_type(n));
    sb_fmt(&b, ",\"own\":\"%016" PRIx64 "\",\"re\":%d,\"points\":[", sprig_node_own_hash(n), reply);
    bool first = true;
    for (const sprig_point_t *pt = sprig_node_points(n); pt != NULL; pt = sprig_point_next(pt)) {
        if (schema != NULL && sprig_schema_is_local(schema, sprig_node_type(n), pt->type)) {
            continue;
        }
        sb_str(&b, first ? "" : ",");
        sb_point(&b, pt);
        first = false;
    }
    sb_str(&b, "],\"edges\":[");
    first = true;
    for (sprig_edge_t *e = sprig_node_children(n); e != NULL; e = sprig_edge_next_child(e)) {
        sprig_node_t *c = sprig_edge_down(e);
        sb_str(&b, first ? "{\"down\":" : ",{\"down\":");
        sb_json(&b, sprig_node_id(c));
        sb_str(&b, ",\"dt\":");
        sb_json(&b, sprig_node_type(c));
        sb_fmt(&b, ",\"eh\":\"%016" PRIx64 "\",\"points\":[", edge_hash(e));
        bool pf = true;
        for (const sprig_point_t *pt = sprig_edge_points(e); pt != NULL;
             pt = sprig_point_next(pt)) {
            sb_str(&b, pf ? "" : ",");
            sb_point(&b, pt);
            pf = false;
        }
        sb_str(&b, "]}");
        first = false;
    }
    sb_str(&b, "]}");
    sync__send(p, &b);
}

void sync__send_node(sync_peer_t *p, sprig_node_t *n)
{
    node_msg(p, n, false);
}

/* Sends `node` for n and everything below it (a subtree the peer has never seen). */
static void send_tree(sync_peer_t *p, sprig_node_t *n, int *budget, int depth)
{
    if (*budget <= 0 || depth > 64) {
        return;
    }
    (*budget)--;
    sync__send_node(p, n);
    for (sprig_edge_t *e = sprig_node_children(n); e != NULL; e = sprig_edge_next_child(e)) {
        send_tree(p, sprig_edge_down(e), budget, depth + 1);
    }
}

/* --- repair in ---------------------------------------------------------------------- */

int sync__on_kids(sync_peer_t *p, const cJSON *m)
{
    sprig_tree_t *t = sprig_core_tree(p->s->core);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "node");
    const cJSON *kids = cJSON_GetObjectItemCaseSensitive(m, "kids");
    if (!cJSON_IsString(id) || !sprig_id_valid(id->valuestring) || !cJSON_IsArray(kids)) {
        sync__refuse(p, "kids without a node id and a kids list");
        return -EINVAL;
    }
    sync__repair_activity(p);
    sprig_node_t *n = sprig_tree_node(t, id->valuestring);
    sbuf_t need = {0};
    size_t nneed = 0;
    if (n == NULL || (p->s->o.upstream && !sync__in_subtree(p, n))) {
        if (p->s->o.upstream && n != NULL) {
            sync__refuse(p, "kids of node %s, outside device %s's tree", id->valuestring,
                         p->device);
            return -EINVAL;
        }
        sb_json(&need, id->valuestring);
        nneed++;
    }
    else {
        /* First what differs at this level, so that our `node` (with the edges) reaches
         * the peer before the subtrees hanging from those edges. */
        bool edges_differ =
            sprig_node_own_hash(n) != hex(cJSON_GetObjectItemCaseSensitive(m, "own"));
        const cJSON *k;
        cJSON_ArrayForEach(k, kids)
        {
            const cJSON *cid = cJSON_GetArrayItem(k, 0);
            if (!cJSON_IsString(cid) || !sprig_id_valid(cid->valuestring)) {
                continue;
            }
            sprig_edge_t *e = child_edge(n, cid->valuestring);
            if (e == NULL) {
                sb_str(&need, nneed++ > 0 ? "," : "");
                sb_json(&need, cid->valuestring);
                edges_differ = true;
            }
            else if (sprig_edge_contrib(e) != hex(cJSON_GetArrayItem(k, 1)) &&
                     sprig_node_hash(sprig_edge_down(e)) == hex(cJSON_GetArrayItem(k, 2))) {
                edges_differ = true; /* the same subtree, other edge points */
            }
        }
        sprig_edge_t *unlisted[64];
        size_t nun = 0;
        bool more = false;
        for (sprig_edge_t *e = sprig_node_children(n); e != NULL; e = sprig_edge_next_child(e)) {
            const char *cid = sprig_node_id(sprig_edge_down(e));
            bool listed = false;
            cJSON_ArrayForEach(k, kids)
            {
                const cJSON *x = cJSON_GetArrayItem(k, 0);
                if (cJSON_IsString(x) && strcmp(x->valuestring, cid) == 0) {
                    listed = true;
                    break;
                }
            }
            if (!listed) {
                edges_differ = true;
                if (nun < 64) {
                    unlisted[nun++] = e;
                }
                else {
                    more = true;
                }
            }
        }
        if (edges_differ) {
            sync__send_node(p, n); /* our points and edges; the answer brings theirs */
        }
        /* The subtrees the peer has never seen (more in the next round, if many). */
        int budget = SYNC_TREE_MAX;
        for (size_t i = 0; i < nun; i++) {
            send_tree(p, sprig_edge_down(unlisted[i]), &budget, 0);
        }
        (void)more;
        /* The descent: children whose subtrees differ. */
        cJSON_ArrayForEach(k, kids)
        {
            const cJSON *cid = cJSON_GetArrayItem(k, 0);
            sprig_edge_t *e = cJSON_IsString(cid) ? child_edge(n, cid->valuestring) : NULL;
            if (e != NULL && sprig_edge_contrib(e) != hex(cJSON_GetArrayItem(k, 1)) &&
                sprig_node_hash(sprig_edge_down(e)) != hex(cJSON_GetArrayItem(k, 2))) {
                sync__send_kids(p, sprig_edge_down(e));
            }
        }
    }
    if (nneed > 0) {
        sbuf_t b = {0};
        sync__begin(p, &b, "need");
        sb_str(&b, ",\"trees\":[");
        sb_add(&b, need.p, need.len);
        sb_str(&b, "]}");
        sync__send(p, &b);
    }
    sb_free(&need);
    return 0;
}

int sync__on_node(sync_peer_t *p, const cJSON *m)
{
    sprig_core_t *c = p->s->core;
    sprig_tree_t *t = sprig_core_tree(c);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
    const cJSON *edges = cJSON_GetObjectItemCaseSensitive(m, "edges");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(m, "re");
    if (!cJSON_IsString(id) || !sprig_id_valid(id->valuestring) || !cJSON_IsString(type) ||
        !sprig_id_valid(type->valuestring) || !cJSON_IsArray(edges)) {
        sync__refuse(p, "node without id, type and edges");
        return -EINVAL;
    }
    sprig_node_t *n = sprig_tree_node(t, id->valuestring);
    if (p->s->o.upstream && n != NULL && !sync__in_subtree(p, n) && sprig_node_parents(n) != NULL) {
        bool inside = false;
        for (sprig_edge_t *e = sprig_node_parents(n); e != NULL; e = sprig_edge_next_parent(e)) {
            inside |= sync__in_subtree(p, sprig_edge_up(e));
        }
        if (!inside) {
            sync__refuse(p, "node %s is outside device %s's tree", id->valuestring, p->device);
            return -EINVAL;
        }
    }
    size_t np;
    bool bad;
    sprig_point_t *pts = points_in(cJSON_GetObjectItemCaseSensitive(m, "points"), &np, &bad);
    if (bad) {
        sprig_free(pts);
        sync__refuse(p, "node %s: a point does not parse", id->valuestring);
        return -EINVAL;
    }
    sync__repair_activity(p);
    sprig_error_t err;
    int rc = 0;
    if (n == NULL && (rc = sprig_core_add_node(c, id->valuestring, type->valuestring, &err)) == 0) {
        n = sprig_tree_node(t, id->valuestring);
    }
    if (rc == 0 && np > 0) {
        rc = sprig_core_write(c, id->valuestring, pts, np, p, &err);
    }
    sprig_free(pts);
    if (rc != 0) {
        sprig_log_warn("sync: repair of node %s from device %s refused: %s", id->valuestring,
                       p->device, err.msg);
    }
    bool differs =
        n != NULL && sprig_node_own_hash(n) != hex(cJSON_GetObjectItemCaseSensitive(m, "own"));
    const cJSON *e;
    cJSON_ArrayForEach(e, edges)
    {
        const cJSON *down = cJSON_GetObjectItemCaseSensitive(e, "down");
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dt");
        if (!cJSON_IsString(down) || !sprig_id_valid(down->valuestring) || !cJSON_IsString(dt) ||
            !sprig_id_valid(dt->valuestring) || n == NULL) {
            continue;
        }
        sprig_node_t *d = sprig_tree_node(t, down->valuestring);
        if (d == NULL && sprig_core_add_node(c, down->valuestring, dt->valuestring, &err) != 0) {
            continue;
        }
        size_t ne;
        sprig_point_t *eps = points_in(cJSON_GetObjectItemCaseSensitive(e, "points"), &ne, &bad);
        if (!bad && ne > 0 &&
            sprig_core_write_edge(c, id->valuestring, down->valuestring, eps, ne, p, &err) != 0) {
            sprig_log_warn("sync: repair of edge %s -> %s from device %s refused: %s",
                           id->valuestring, down->valuestring, p->device, err.msg);
        }
        sprig_free(eps);
        sprig_edge_t *le = child_edge(n, down->valuestring);
        differs |= le != NULL && edge_hash(le) != hex(cJSON_GetObjectItemCaseSensitive(e, "eh"));
    }
    /* Edges we have and the message did not carry. */
    for (sprig_edge_t *le = n != NULL ? sprig_node_children(n) : NULL; le != NULL && !differs;
         le = sprig_edge_next_child(le)) {
        bool listed = false;
        cJSON_ArrayForEach(e, edges)
        {
            const cJSON *down = cJSON_GetObjectItemCaseSensitive(e, "down");
            listed |= cJSON_IsString(down) &&
                      strcmp(down->valuestring, sprig_node_id(sprig_edge_down(le))) == 0;
        }
        differs |= !listed;
    }
    if (differs && n != NULL && !(cJSON_IsNumber(re) && re->valueint != 0)) {
        node_msg(p, n, true);
    }
    return 0;
}

int sync__on_need(sync_peer_t *p, const cJSON *m)
{
    sprig_tree_t *t = sprig_core_tree(p->s->core);
    const cJSON *trees = cJSON_GetObjectItemCaseSensitive(m, "trees");
    if (!cJSON_IsArray(trees)) {
        sync__refuse(p, "need without trees");
        return -EINVAL;
    }
    sync__repair_activity(p);
    int budget = SYNC_TREE_MAX;
    const cJSON *it;
    cJSON_ArrayForEach(it, trees)
    {
        sprig_node_t *n = cJSON_IsString(it) ? sprig_tree_node(t, it->valuestring) : NULL;
        if (n != NULL && sync__in_subtree(p, n)) {
            send_tree(p, n, &budget, 0);
        }
    }
    return 0;
}
