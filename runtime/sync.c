/* Sync over MQTT: see sync.h. This file holds the link (libmosquitto on a uv_poll over its
 * socket, reconnection with backoff), the peers, the live forwarding of accepted changes
 * as `pts` batches, the application of a peer's `pts`, and the probe of the consistent
 * cut (DESIGN.md section 5): a probe travels in the same ordered stream as the changes it
 * covers, so `match`/`wait` never compare a moving target. Repair is in sync_msg.c. */
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

static void arm_flush(sprig_sync_t *s);
static void send_probe(sync_peer_t *p);
static void on_poll(uv_poll_t *h, int status, int events);
static void on_probe_timer(uv_timer_t *t);

static const char *who(const sprig_sync_t *s)
{
    return s->o.upstream ? "upstream" : s->o.node_id;
}

/* --- peers -------------------------------------------------------------------------- */

static sync_peer_t *peer_find(sprig_sync_t *s, const char *device)
{
    for (size_t i = 0; i < s->npeers; i++) {
        if (strcmp(s->peers[i]->device, device) == 0) {
            return s->peers[i];
        }
    }
    return NULL;
}

static sync_peer_t *peer_add(sprig_sync_t *s, const char *device)
{
    if (s->npeers == s->cappeers) {
        size_t cap = s->cappeers != 0 ? s->cappeers * 2 : 4;
        sync_peer_t **v = sprig_realloc(s->peers, cap * sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        s->peers = v;
        s->cappeers = cap;
    }
    sync_peer_t *p = sprig_calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->s = s;
    snprintf(p->device, sizeof(p->device), "%s", device);
    snprintf(p->topic_out, sizeof(p->topic_out), "%s/%s/%s", s->o.prefix, device,
             s->o.upstream ? "down" : "up");
    snprintf(p->topic_hist, sizeof(p->topic_hist), "%s/%s/hist", s->o.prefix, device);
    /* Sequence numbers go on from where a previous run left them: they start at the
     * wall clock, so a restarted sender is never taken for a replay. */
    p->out_seq = (uint64_t)sprig_wall_ns();
    p->hist_out_seq = p->out_seq;
    s->peers[s->npeers++] = p;
    return p;
}

sprig_node_t *sync__peer_root(sync_peer_t *p)
{
    sprig_tree_t *t = sprig_core_tree(p->s->core);
    return p->s->o.upstream ? sprig_tree_node(t, p->device) : sprig_tree_root(t);
}

/* True when n is the peer's root or below it through any chain of edges, deleted ones
 * too (a deleted node still belongs to the device it was deleted from). Bounded. */
static bool below(const sprig_node_t *n, const sprig_node_t *root, int depth)
{
    if (n == root) {
        return true;
    }
    if (depth > 64) {
        return false;
    }
    for (sprig_edge_t *e = sprig_node_parents(n); e != NULL; e = sprig_edge_next_parent(e)) {
        if (below(sprig_edge_up(e), root, depth + 1)) {
            return true;
        }
    }
    return false;
}

bool sync__in_subtree(sync_peer_t *p, const sprig_node_t *n)
{
    const sprig_node_t *root = sync__peer_root(p);
    if (!p->s->o.upstream) {
        return true;
    }
    return n != NULL && root != NULL && below(n, root, 0);
}

void sync__refuse(sync_peer_t *p, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->refused++;
    p->s->refused++;
    sprig_log_warn("sync %s: message from device %s refused: %s", who(p->s), p->device, msg);
}

/* --- messages out ------------------------------------------------------------------- */

void sync__begin(sync_peer_t *p, sbuf_t *b, const char *t)
{
    sb_fmt(b, "{\"t\":\"%s\",\"seq\":\"%" PRIu64 "\"", t, ++p->out_seq);
}

void sync__send(sync_peer_t *p, sbuf_t *msg)
{
    sprig_sync_t *s = p->s;
    if (msg->oom) {
        sprig_log_error("sync %s: out of memory building a message", who(s));
    }
    else if (s->connected) {
        int rc = mosquitto_publish(s->mosq, NULL, p->topic_out, (int)msg->len, msg->p, 1, false);
        if (rc == MOSQ_ERR_SUCCESS) {
            s->bytes_up += msg->len;
        }
        else {
            sprig_log_warn("sync %s: publish to %s failed: %s", who(s), p->topic_out,
                           mosquitto_strerror(rc));
        }
        if (s->poll != NULL && mosquitto_want_write(s->mosq)) {
            uv_poll_start(s->poll, UV_READABLE | UV_WRITABLE, on_poll);
        }
    }
    sb_free(msg);
}

static void flush_peer(sync_peer_t *p)
{
    if (p->items == 0) {
        return;
    }
    sbuf_t m = {0};
    sync__begin(p, &m, "pts");
    sb_str(&m, ",\"items\":[");
    sb_add(&m, p->batch.p, p->batch.len);
    sb_str(&m, "]}");
    sb_free(&p->batch);
    p->items = 0;
    sync__send(p, &m);
}

static void on_flush(uv_timer_t *t)
{
    sprig_sync_t *s = t->data;
    s->flush_armed = false;
    for (size_t i = 0; i < s->npeers; i++) {
        flush_peer(s->peers[i]);
    }
}

static void arm_flush(sprig_sync_t *s)
{
    if (!s->flush_armed) {
        s->flush_armed = true;
        uv_timer_start(s->flush, on_flush, 5, 0);
    }
}

/* The device a node belongs to, upstream: the child of the root on its live path. */
static sync_peer_t *device_of(sprig_sync_t *s, sprig_node_t *n)
{
    sprig_tree_t *t = sprig_core_tree(s->core);
    sprig_node_t *root = sprig_tree_root(t);
    for (int depth = 0; n != NULL && n != root && depth < 256; depth++) {
        sprig_node_t *up = NULL;
        for (sprig_edge_t *e = sprig_node_parents(n); e != NULL; e = sprig_edge_next_parent(e)) {
            if (!sprig_edge_tombstone(e)) {
                up = sprig_edge_up(e);
                break;
            }
        }
        if (up == root) {
            return peer_find(s, sprig_node_id(n));
        }
        n = up;
    }
    return NULL;
}

/* Forwards an accepted change to the peer its node belongs to (not back where it came
 * from, and never a local point). */
static void on_change(const sprig_event_t *ev, void *arg)
{
    sprig_sync_t *s = arg;
    if (!s->connected || s->stopping) {
        return; /* repaired by the probe after reconnecting */
    }
    const sprig_schema_t *schema = sprig_core_schema(s->core);
    if (ev->edge_up == NULL && schema != NULL &&
        sprig_schema_is_local(schema, ev->node_type, ev->point->type)) {
        return;
    }
    sprig_tree_t *t = sprig_core_tree(s->core);
    sprig_node_t *n = sprig_tree_node(t, ev->node);
    sync_peer_t *p;
    if (s->o.upstream) {
        if (ev->edge_up != NULL && strcmp(ev->edge_up, sprig_core_root_id(s->core)) == 0) {
            return; /* the edge that holds a device under our root is ours alone */
        }
        p = device_of(s, ev->edge_up != NULL ? sprig_tree_node(t, ev->edge_up) : n);
    }
    else {
        p = s->npeers > 0 ? s->peers[0] : NULL;
    }
    if (p == NULL || ev->source == p) {
        return;
    }
    sbuf_t *b = &p->batch;
    sb_str(b, p->items > 0 ? ",{\"n\":" : "{\"n\":");
    sb_json(b, ev->node);
    sb_str(b, ",\"nt\":");
    sb_json(b, ev->node_type);
    if (ev->edge_up != NULL) {
        sprig_node_t *up = sprig_tree_node(t, ev->edge_up);
        sb_str(b, ",\"up\":");
        sb_json(b, ev->edge_up);
        sb_str(b, ",\"ut\":");
        sb_json(b, up != NULL ? sprig_node_type(up) : "device");
    }
    sb_str(b, ",\"p\":");
    sb_point(b, ev->point);
    sb_str(b, "}");
    p->items++;
    if (b->len >= SYNC_BATCH_MAX) {
        flush_peer(p);
    }
    else {
        arm_flush(s);
    }
}

/* --- messages in -------------------------------------------------------------------- */

static bool id_ok(const cJSON *j)
{
    return cJSON_IsString(j) && sprig_id_valid(j->valuestring);
}

/* True when a node may be placed in the device's tree: it is there already (or was),
 * or belongs to no one yet. */
static bool owned(sync_peer_t *p, const sprig_node_t *n)
{
    return sprig_node_parents(n) == NULL || sync__in_subtree(p, n);
}

/* Checks a pts message whole before any of it is applied (upstream: every node inside
 * the device's subtree, or made there by an earlier item of the same message). */
static int check_pts(sync_peer_t *p, const cJSON *items)
{
    sprig_tree_t *t = sprig_core_tree(p->s->core);
    const char *fresh[256];
    size_t nfresh = 0;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "n");
        const cJSON *nt = cJSON_GetObjectItemCaseSensitive(it, "nt");
        const cJSON *up = cJSON_GetObjectItemCaseSensitive(it, "up");
        const cJSON *ut = cJSON_GetObjectItemCaseSensitive(it, "ut");
        sprig_point_t pt;
        if (!id_ok(n) || !id_ok(nt) || (up != NULL && (!id_ok(up) || !id_ok(ut))) ||
            sync__point(cJSON_GetObjectItemCaseSensitive(it, "p"), &pt) != 0) {
            sync__refuse(p, "items[%d] is not {n, nt, [up, ut,] p} with valid ids and a point", i);
            return -EINVAL;
        }
        if (p->s->o.upstream) {
            const char *id = up != NULL ? up->valuestring : n->valuestring;
            sprig_node_t *node = sprig_tree_node(t, id);
            /* A point of a node not here at all is skipped (the probe's repair brings the
             * node with its place in the tree); one placed elsewhere is refused. */
            bool ok = node != NULL ? sync__in_subtree(p, node) : up == NULL;
            for (size_t k = 0; !ok && k < nfresh; k++) {
                ok = strcmp(fresh[k], id) == 0;
            }
            sprig_node_t *down = up != NULL ? sprig_tree_node(t, n->valuestring) : NULL;
            if (!ok || (down != NULL && !owned(p, down))) {
                sync__refuse(p, "items[%d] names node %s, outside device %s's tree", i, id,
                             p->device);
                return -EINVAL;
            }
            if (up != NULL && nfresh < 256) {
                fresh[nfresh++] = n->valuestring;
            }
        }
        i++;
    }
    return 0;
}

static void apply_pts(sync_peer_t *p, const cJSON *items)
{
    sprig_core_t *c = p->s->core;
    sprig_tree_t *t = sprig_core_tree(c);
    sprig_error_t err;
    int failed = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        const char *n = cJSON_GetObjectItemCaseSensitive(it, "n")->valuestring;
        const char *nt = cJSON_GetObjectItemCaseSensitive(it, "nt")->valuestring;
        const cJSON *up = cJSON_GetObjectItemCaseSensitive(it, "up");
        sprig_point_t pt;
        sync__point(cJSON_GetObjectItemCaseSensitive(it, "p"), &pt);
        int rc = 0;
        if (sprig_tree_node(t, n) == NULL) {
            if (up == NULL && p->s->o.upstream) {
                continue; /* not placed yet: repair brings it */
            }
            rc = sprig_core_add_node(c, n, nt, &err);
        }
        if (rc == 0 && up != NULL) {
            const char *ut = cJSON_GetObjectItemCaseSensitive(it, "ut")->valuestring;
            if (sprig_tree_node(t, up->valuestring) == NULL) {
                rc = sprig_core_add_node(c, up->valuestring, ut, &err);
            }
            if (rc == 0) {
                rc = sprig_core_write_edge(c, up->valuestring, n, &pt, 1, p, &err);
            }
        }
        else if (rc == 0) {
            rc = sprig_core_write(c, n, &pt, 1, p, &err);
        }
        if (rc != 0 && failed++ == 0) {
            sprig_log_warn("sync %s: a change from device %s is refused: %s", who(p->s), p->device,
                           err.msg);
        }
    }
}

/* Upstream: the device's root node, made under our root the first time it talks. */
static int ensure_device(sync_peer_t *p)
{
    sprig_core_t *c = p->s->core;
    sprig_error_t err;
    sprig_node_t *d = sprig_tree_node(sprig_core_tree(c), p->device);
    if (d != NULL && strcmp(sprig_node_type(d), "device") != 0) {
        sync__refuse(p, "node %s exists here with type %s, not device", p->device,
                     sprig_node_type(d));
        return -EINVAL;
    }
    sprig_node_t *root = sprig_tree_root(sprig_core_tree(c));
    for (sprig_edge_t *e = d != NULL ? sprig_node_parents(d) : NULL; e != NULL;
         e = sprig_edge_next_parent(e)) {
        if (sprig_edge_up(e) == root && !sprig_edge_tombstone(e)) {
            return 0;
        }
    }
    sprig_point_t live = {.type = "tombstone", .value = 0};
    if ((d == NULL && sprig_core_add_node(c, p->device, "device", &err) != 0) ||
        sprig_core_write_edge(c, sprig_core_root_id(c), p->device, &live, 1, p, &err) != 0) {
        sprig_log_error("sync upstream: device %s cannot be added: %s", p->device, err.msg);
        return -EINVAL;
    }
    sprig_log_info("sync upstream: device %s joined", p->device);
    return 0;
}

static void on_probe(sync_peer_t *p, const cJSON *m)
{
    const cJSON *acked = cJSON_GetObjectItemCaseSensitive(m, "acked");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(m, "hash");
    if (!cJSON_IsString(acked) || !cJSON_IsString(hash)) {
        sync__refuse(p, "probe without acked and hash strings");
        return;
    }
    flush_peer(p); /* what is pending was sent after acked: say wait */
    uint64_t ack = strtoull(acked->valuestring, NULL, 10);
    sbuf_t b = {0};
    if (p->out_seq > ack) {
        sync__begin(p, &b, "wait");
        sb_str(&b, "}");
        sync__send(p, &b);
        return;
    }
    sprig_node_t *root = sync__peer_root(p);
    char mine[17];
    snprintf(mine, sizeof(mine), "%016" PRIx64, root != NULL ? sprig_node_hash(root) : 0);
    if (strcmp(mine, hash->valuestring) == 0) {
        sync__begin(p, &b, "match");
        sb_str(&b, "}");
        sync__send(p, &b);
        p->rounds = 0;
        p->repairing = false;
        return;
    }
    p->repairing = true;
    if (root != NULL) {
        sync__send_kids(p, root);
    }
    else {
        sync__begin(p, &b, "need");
        sb_str(&b, ",\"trees\":[");
        sb_json(&b, p->device);
        sb_str(&b, "]}");
        sync__send(p, &b);
    }
}

static void status_write(sprig_sync_t *s);

static void on_answer(sync_peer_t *p, const char *t)
{
    sprig_sync_t *s = p->s;
    if (strcmp(t, "match") == 0) {
        s->sync_count++;
        s->last_sync = sprig_wall_ns();
        s->state = "insync";
        s->error[0] = '\0';
        p->rounds = 0;
        p->repairing = false;
        p->hist_ready = true;
        uv_timer_start(s->probe, on_probe_timer, (uint64_t)(s->o.period_s * 1000), 0);
        status_write(s);
        return;
    }
    /* wait: the upstream has sent more; probe again once it has arrived. */
    sync__repair_activity(p);
}

/* --- history (DESIGN.md section 5, "History") ---------------------------------------- */

typedef struct hist_read {
    sync_peer_t *p;
    sbuf_t *b;
    int rows;
    int64_t last;
} hist_read_t;

static int hist_row(const char *node, const sprig_point_t *pt, int64_t id, void *arg)
{
    hist_read_t *h = arg;
    sprig_sync_t *s = h->p->s;
    h->last = id;
    sprig_node_t *n = sprig_tree_node(sprig_core_tree(s->core), node);
    const sprig_schema_t *schema = sprig_core_schema(s->core);
    if (n == NULL ||
        (schema != NULL && sprig_schema_is_local(schema, sprig_node_type(n), pt->type))) {
        return 0; /* this instance's own business */
    }
    sb_str(h->b, h->rows++ > 0 ? ",{\"id\":\"" : "{\"id\":\"");
    sb_fmt(h->b, "%" PRId64 "\",\"n\":", id);
    sb_json(h->b, node);
    sb_str(h->b, ",\"p\":");
    sb_point(h->b, pt);
    sb_str(h->b, "}");
    return 0;
}

/* Downstream: sends the next history batch after the acknowledged cursor, one at a time. */
static void hist_pump(sync_peer_t *p)
{
    sprig_sync_t *s = p->s;
    if (!s->connected || p->hist_sent != 0 || s->o.upstream || !p->hist_ready ||
        sprig_wall_ns() < p->hist_resume) {
        return;
    }
    sprig_store_stats_t st;
    sprig_store_stats(sprig_core_store(s->core), &st);
    if (st.history_last_id <= p->hist_acked) {
        return;
    }
    sbuf_t rows = {0};
    hist_read_t h = {.p = p, .b = &rows};
    long n = sprig_store_history_after(sprig_core_store(s->core), p->hist_acked, 500, hist_row, &h);
    if (n <= 0) {
        sb_free(&rows);
        return;
    }
    sbuf_t b = {0};
    sb_fmt(&b, "{\"t\":\"hist\",\"seq\":\"%" PRIu64 "\",\"upto\":\"%" PRId64 "\",\"rows\":[",
           ++p->hist_out_seq, h.last);
    sb_add(&b, rows.p != NULL ? rows.p : "", rows.len);
    sb_str(&b, "]}");
    sb_free(&rows);
    p->hist_sent = h.last;
    if (!b.oom && mosquitto_publish(s->mosq, NULL, p->topic_hist, (int)b.len, b.p, 1, false) ==
                      MOSQ_ERR_SUCCESS) {
        s->bytes_up += b.len;
        if (s->poll != NULL) {
            uv_poll_start(s->poll, UV_READABLE | UV_WRITABLE, on_poll);
        }
    }
    else {
        p->hist_sent = 0;
    }
    sb_free(&b);
}

/* Downstream: the upstream has the batch up to `upto` on disk. */
static void on_hack(sync_peer_t *p, const cJSON *m)
{
    const cJSON *upto = cJSON_GetObjectItemCaseSensitive(m, "upto");
    int64_t u = cJSON_IsString(upto) ? strtoll(upto->valuestring, NULL, 10) : 0;
    if (p->hist_sent == 0 || u > p->hist_sent || u < p->hist_acked) {
        return; /* an old ack, from before a reconnection */
    }
    if (u < p->hist_sent) {
        /* The upstream stored part: the rest names nodes it has not got yet (the tree
         * is still being repaired). Send it again in a moment. */
        p->hist_resume = sprig_wall_ns() + 500000000;
    }
    p->hist_sent = 0;
    if (u == p->hist_acked) {
        return;
    }
    p->hist_acked = u;
    sprig_sync_t *s = p->s;
    if (s->o.node_id != NULL) {
        sprig_point_t pt = {.type = "histAcked", .value = (double)u, .origin = s->o.node_id};
        sprig_error_t err;
        if (sprig_core_write(s->core, s->o.node_id, &pt, 1, NULL, &err) != 0) {
            sprig_log_warn("sync %s: %s", who(s), err.msg);
        }
    }
    hist_pump(p);
}

static void ack_durable(uint64_t batch, int status, void *arg)
{
    (void)batch;
    sync_ack_t *a = arg;
    sprig_sync_t *s = a->s;
    if (s != NULL) {
        for (sync_ack_t **pp = &s->acks; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == a) {
                *pp = a->next;
                break;
            }
        }
        sync_peer_t *p = peer_find(s, a->device);
        if (status == 0 && p != NULL) {
            sbuf_t b = {0};
            sync__begin(p, &b, "hack");
            sb_fmt(&b, ",\"upto\":\"%" PRId64 "\"}", a->upto);
            sync__send(p, &b);
        }
    }
    sprig_free(a);
}

/* Upstream: stores a device's history batch (each row once: the device's cursor is kept
 * with the rows) and acknowledges it once it is on disk. */
static int on_hist(sync_peer_t *p, const cJSON *m)
{
    sprig_sync_t *s = p->s;
    sprig_core_t *c = s->core;
    sprig_tree_t *t = sprig_core_tree(c);
    const cJSON *upto = cJSON_GetObjectItemCaseSensitive(m, "upto");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(m, "rows");
    if (!cJSON_IsString(upto) || !cJSON_IsArray(rows)) {
        sync__refuse(p, "hist without upto and rows");
        return -EINVAL;
    }
    sprig_node_t *root = sync__peer_root(p);
    if (!p->hist_loaded && root != NULL) {
        const sprig_point_t *cur = sprig_tree_point(t, root, "histCursor", "0");
        p->hist_cursor = cur != NULL && !cur->tombstone ? (int64_t)cur->value : 0;
        p->hist_loaded = true;
    }
    int64_t u = strtoll(upto->valuestring, NULL, 10);
    long stored = 0, skipped = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "n");
        sprig_point_t pt;
        int64_t rid = cJSON_IsString(id) ? strtoll(id->valuestring, NULL, 10) : 0;
        sprig_node_t *node = cJSON_IsString(n) ? sprig_tree_node(t, n->valuestring) : NULL;
        if (rid <= p->hist_cursor) {
            continue; /* stored before: sent again after a lost ack */
        }
        if (node == NULL && cJSON_IsString(n) && sprig_id_valid(n->valuestring)) {
            /* Not here yet (the tree is still being repaired): store up to the row before
             * and acknowledge that much; the device sends the rest again. */
            u = rid - 1;
            break;
        }
        if (node == NULL || !sync__in_subtree(p, node) ||
            sync__point(cJSON_GetObjectItemCaseSensitive(r, "p"), &pt) != 0 ||
            sprig_store_put_history(sprig_core_store(c), n->valuestring, &pt) != 0) {
            skipped++;
            continue;
        }
        stored++;
    }
    if (skipped > 0) {
        sprig_log_warn("sync upstream: %ld history rows from device %s name no node of its tree "
                       "or do not parse; skipped",
                       skipped, p->device);
    }
    if (u > p->hist_cursor && root != NULL) {
        p->hist_cursor = u;
        sprig_point_t cur = {.type = "histCursor", .value = (double)u};
        sprig_error_t err;
        if (sprig_core_write(c, p->device, &cur, 1, p, &err) != 0) {
            sprig_log_warn("sync upstream: %s", err.msg);
        }
    }
    sync_ack_t *a = sprig_calloc(1, sizeof(*a));
    if (a == NULL) {
        return 0; /* the device sends the batch again */
    }
    a->s = s;
    snprintf(a->device, sizeof(a->device), "%s", p->device);
    a->upto = u;
    a->next = s->acks;
    s->acks = a;
    if (sprig_core_when_durable(c, sprig_core_batch(c), ack_durable, a) != 0) {
        s->acks = a->next;
        sprig_free(a);
    }
    (void)stored;
    return 0;
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    sprig_sync_t *s = obj;
    s->bytes_down += (uint64_t)msg->payloadlen;
    /* topic: prefix/device/kind */
    char device[SPRIG_ID_MAX + 1] = "";
    const char *rest = msg->topic + strlen(s->o.prefix);
    const char *slash = rest[0] == '/' ? strchr(rest + 1, '/') : NULL;
    if (slash == NULL || (size_t)(slash - rest - 1) > SPRIG_ID_MAX) {
        return;
    }
    snprintf(device, sizeof(device), "%.*s", (int)(slash - rest - 1), rest + 1);
    if (strcmp(slash + 1, "status") == 0) {
        return;
    }
    sync_peer_t *p = s->o.upstream ? peer_find(s, device) : s->peers[0];
    if (p == NULL && s->o.upstream && sprig_id_valid(device)) {
        p = peer_add(s, device);
    }
    if (p == NULL) {
        return;
    }
    if ((size_t)msg->payloadlen > s->o.max_msg) {
        sync__refuse(p, "%d bytes, over the limit of %zu", msg->payloadlen, s->o.max_msg);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(msg->payload, (size_t)msg->payloadlen);
    const cJSON *t = j != NULL ? cJSON_GetObjectItemCaseSensitive(j, "t") : NULL;
    const cJSON *seq = j != NULL ? cJSON_GetObjectItemCaseSensitive(j, "seq") : NULL;
    if (!cJSON_IsString(t) || !cJSON_IsString(seq)) {
        sync__refuse(p, "not a JSON object with string t and seq");
        cJSON_Delete(j);
        return;
    }
    uint64_t n = strtoull(seq->valuestring, NULL, 10);
    if (strcmp(slash + 1, "hist") == 0) {
        if (!s->o.upstream || strcmp(t->valuestring, "hist") != 0 || n <= p->hist_in_seq) {
            sync__refuse(p, "a history message out of order or of the wrong kind");
        }
        else if (ensure_device(p) == 0 && on_hist(p, j) == 0) {
            p->hist_in_seq = n;
        }
        cJSON_Delete(j);
        return;
    }
    if (n <= p->in_seq) {
        sync__refuse(p, "seq %s is not above %" PRIu64 " (a replay?)", seq->valuestring, p->in_seq);
        cJSON_Delete(j);
        return;
    }
    if (s->o.upstream && ensure_device(p) != 0) {
        cJSON_Delete(j);
        return;
    }
    const char *type = t->valuestring;
    int rc = 0;
    if (strcmp(type, "pts") == 0) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
        if (!cJSON_IsArray(items)) {
            sync__refuse(p, "pts without items");
            rc = -EINVAL;
        }
        else if ((rc = check_pts(p, items)) == 0) {
            apply_pts(p, items);
        }
    }
    else if (strcmp(type, "probe") == 0 && s->o.upstream) {
        p->in_seq = n;
        on_probe(p, j);
    }
    else if ((strcmp(type, "match") == 0 || strcmp(type, "wait") == 0) && !s->o.upstream) {
        p->in_seq = n;
        on_answer(p, type);
    }
    else if (strcmp(type, "kids") == 0) {
        rc = sync__on_kids(p, j);
    }
    else if (strcmp(type, "node") == 0) {
        rc = sync__on_node(p, j);
    }
    else if (strcmp(type, "need") == 0) {
        rc = sync__on_need(p, j);
    }
    else if (strcmp(type, "hack") == 0 && !s->o.upstream) {
        on_hack(p, j);
    }
    else {
        sync__refuse(p, "unknown message type \"%.32s\"", type);
        rc = -EINVAL;
    }
    if (rc == 0) {
        p->in_seq = n;
    }
    cJSON_Delete(j);
}

/* --- probes and repair pacing (downstream) ------------------------------------------ */

static void send_probe(sync_peer_t *p)
{
    sprig_sync_t *s = p->s;
    if (!s->connected) {
        return;
    }
    flush_peer(p);
    sbuf_t b = {0};
    sync__begin(p, &b, "probe");
    sb_fmt(&b, ",\"acked\":\"%" PRIu64 "\",\"hash\":\"%016" PRIx64 "\"}", p->in_seq,
           sprig_node_hash(sync__peer_root(p)));
    sync__send(p, &b);
}

static void on_probe_timer(uv_timer_t *t)
{
    sprig_sync_t *s = t->data;
    if (s->npeers == 0 || !s->connected) {
        return;
    }
    sync_peer_t *p = s->peers[0];
    if (p->repairing && ++p->rounds > SYNC_REPAIR_ROUNDS) {
        s->state = "error";
        snprintf(s->error, sizeof(s->error),
                 "repair did not converge in %d rounds; trying again at the next period",
                 SYNC_REPAIR_ROUNDS);
        p->repairing = false;
        p->rounds = 0;
        status_write(s);
        uv_timer_start(s->probe, on_probe_timer, (uint64_t)(s->o.period_s * 1000), 0);
        return;
    }
    send_probe(p);
    /* The next probe, unless an answer brings it forward. */
    uv_timer_start(s->probe, on_probe_timer, (uint64_t)(s->o.period_s * 1000), 0);
}

void sync__repair_activity(sync_peer_t *p)
{
    sprig_sync_t *s = p->s;
    if (s->o.upstream) {
        return;
    }
    if (!p->repairing) {
        p->repairing = true;
        s->repair_count++;
        s->state = "syncing";
    }
    /* Probe again once the exchange has gone quiet. */
    uv_timer_start(s->probe, on_probe_timer, 300, 0);
}

/* --- status (downstream: local points of the sync node) ------------------------------ */

static int64_t hist_pending(sprig_sync_t *s)
{
    sprig_store_stats_t st;
    sprig_store_stats(sprig_core_store(s->core), &st);
    int64_t acked = s->npeers > 0 ? s->peers[0]->hist_acked : 0;
    return st.history_last_id > acked ? st.history_last_id - acked : 0;
}

static void status_write(sprig_sync_t *s)
{
    if (s->o.upstream || s->o.node_id == NULL) {
        return;
    }
    sprig_tree_t *t = sprig_core_tree(s->core);
    sprig_node_t *n = sprig_tree_node(t, s->o.node_id);
    if (n == NULL) {
        return;
    }
    sprig_point_t want[] = {
        {.type = "state", .text = s->state},
        {.type = "error", .text = s->error},
        {.type = "lastSync", .value = (double)s->last_sync},
        {.type = "syncCount", .value = (double)s->sync_count},
        {.type = "repairCount", .value = (double)s->repair_count},
        {.type = "bytesUp", .value = (double)s->bytes_up},
        {.type = "bytesDown", .value = (double)s->bytes_down},
        {.type = "histPending", .value = (double)hist_pending(s)},
    };
    sprig_point_t pts[8];
    size_t k = 0;
    for (size_t i = 0; i < 8; i++) {
        const sprig_point_t *cur = sprig_tree_point(t, n, want[i].type, "0");
        const char *text = want[i].text != NULL ? want[i].text : "";
        if (cur == NULL || cur->tombstone || cur->value != want[i].value ||
            strcmp(cur->text, text) != 0) {
            pts[k] = want[i];
            pts[k++].origin = s->o.node_id;
        }
    }
    sprig_error_t err;
    if (k > 0 && sprig_core_write(s->core, s->o.node_id, pts, k, NULL, &err) != 0) {
        sprig_log_warn("sync %s: %s", who(s), err.msg);
    }
}

/* --- the MQTT link ------------------------------------------------------------------ */

static void poll_closed(uv_handle_t *h)
{
    sprig_free(h);
}

static void drop_poll(sprig_sync_t *s)
{
    if (s->poll != NULL) {
        uv_close((uv_handle_t *)s->poll, poll_closed);
        s->poll = NULL;
    }
    s->fd = -1;
}

static void lost(sprig_sync_t *s, int rc)
{
    bool was = s->connected;
    s->connected = false;
    drop_poll(s);
    if (s->stopping) {
        return;
    }
    if (was || s->backoff_ms == 0) {
        sprig_log_warn("sync %s: disconnected from %s:%d: %s", who(s), s->host, s->port,
                       mosquitto_strerror(rc));
    }
    if (rc == MOSQ_ERR_TLS || rc == MOSQ_ERR_TLS_HANDSHAKE || rc == MOSQ_ERR_AUTH ||
        rc == MOSQ_ERR_CONN_REFUSED) {
        s->state = "error";
        snprintf(s->error, sizeof(s->error), "%.200s:%d refused the connection: %s%s", s->host,
                 s->port, mosquitto_strerror(rc),
                 rc == MOSQ_ERR_TLS || rc == MOSQ_ERR_TLS_HANDSHAKE
                     ? " (check caFile, certFile and keyFile against the broker's)"
                     : "");
    }
    else if (strcmp(s->state, "error") != 0) {
        s->state = "connecting";
    }
    s->backoff_ms = s->backoff_ms == 0 ? 250 : s->backoff_ms * 2 > 5000 ? 5000 : s->backoff_ms * 2;
    s->reconnect_at = (int64_t)uv_now(sprig_core_loop(s->core)) + s->backoff_ms;
    status_write(s);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sprig_sync_t *s = h->data;
    int rc = MOSQ_ERR_SUCCESS;
    if (status < 0) {
        rc = MOSQ_ERR_CONN_LOST;
    }
    if (rc == MOSQ_ERR_SUCCESS && (events & UV_READABLE)) {
        rc = mosquitto_loop_read(s->mosq, 1);
    }
    if (rc == MOSQ_ERR_SUCCESS && s->poll != NULL && (events & UV_WRITABLE)) {
        rc = mosquitto_loop_write(s->mosq, 1);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        lost(s, rc);
        return;
    }
    if (s->poll != NULL) {
        uv_poll_start(s->poll, UV_READABLE | (mosquitto_want_write(s->mosq) ? UV_WRITABLE : 0),
                      on_poll);
    }
}

static void start_poll(sprig_sync_t *s)
{
    int fd = mosquitto_socket(s->mosq);
    if (fd < 0) {
        return;
    }
    s->poll = sprig_malloc(sizeof(*s->poll));
    if (s->poll == NULL || uv_poll_init_socket(sprig_core_loop(s->core), s->poll, fd) != 0) {
        sprig_free(s->poll);
        s->poll = NULL;
        return;
    }
    s->poll->data = s;
    s->fd = fd;
    uv_poll_start(s->poll, UV_READABLE | UV_WRITABLE, on_poll);
}

static void try_connect(sprig_sync_t *s)
{
    int rc = mosquitto_connect_async(s->mosq, s->host, s->port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        lost(s, rc);
        return;
    }
    start_poll(s);
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    sprig_sync_t *s = obj;
    if (rc != 0) {
        s->state = "error";
        snprintf(s->error, sizeof(s->error), "the broker refused the connection: %s",
                 mosquitto_connack_string(rc));
        sprig_log_error("sync %s: %s", who(s), s->error);
        status_write(s);
        return;
    }
    s->connected = true;
    s->backoff_ms = 0;
    s->state = "syncing";
    s->error[0] = '\0';
    mosquitto_subscribe(s->mosq, NULL, s->sub_topic, 1);
    if (s->o.upstream) {
        mosquitto_subscribe(s->mosq, NULL, s->hist_topic, 1);
    }
    sprig_log_info("sync %s: connected to %s:%d", who(s), s->host, s->port);
    if (!s->o.upstream) {
        mosquitto_publish(s->mosq, NULL, s->status_topic, 6, "online", 1, true);
        sync_peer_t *p = s->peers[0];
        p->repairing = false;
        p->rounds = 0;
        p->hist_sent = 0; /* what was in flight is sent again from the acknowledged cursor */
        p->hist_ready = false;
        if (s->o.node_id != NULL) {
            sprig_tree_t *t = sprig_core_tree(s->core);
            sprig_node_t *sn = sprig_tree_node(t, s->o.node_id);
            const sprig_point_t *ha = sn != NULL ? sprig_tree_point(t, sn, "histAcked", "0") : NULL;
            if (ha != NULL && !ha->tombstone && (int64_t)ha->value > p->hist_acked) {
                p->hist_acked = (int64_t)ha->value;
            }
        }
        uv_timer_start(s->probe, on_probe_timer, 50, 0);
    }
    status_write(s);
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    sprig_sync_t *s = obj;
    if (s->connected) {
        lost(s, rc == 0 ? MOSQ_ERR_CONN_LOST : rc);
    }
}

static void on_tick(uv_timer_t *t)
{
    sprig_sync_t *s = t->data;
    if (s->poll != NULL) {
        int rc = mosquitto_loop_misc(s->mosq);
        if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
            lost(s, rc);
        }
        else if (s->poll != NULL && mosquitto_want_write(s->mosq)) {
            uv_poll_start(s->poll, UV_READABLE | UV_WRITABLE, on_poll);
        }
    }
    else if ((int64_t)uv_now(sprig_core_loop(s->core)) >= s->reconnect_at) {
        try_connect(s);
    }
    if (s->connected && !s->o.upstream && s->npeers > 0) {
        hist_pump(s->peers[0]);
    }
    int64_t now = sprig_wall_ns();
    if (now - s->last_status >= 1000000000) {
        s->last_status = now;
        status_write(s);
    }
}

/* --- start and stop ----------------------------------------------------------------- */

static int parse_uri(sprig_sync_t *s, sprig_error_t *err)
{
    const char *u = s->o.uri;
    if (u == NULL) {
        return sprig_error_set(err, -EINVAL, "sync: uri is missing (mqtt://host:port)");
    }
    const char *rest;
    if (strncmp(u, "mqtt://", 7) == 0) {
        rest = u + 7;
        s->port = 1883;
    }
    else if (strncmp(u, "mqtts://", 8) == 0) {
        rest = u + 8;
        s->port = 8883;
        s->tls = true;
    }
    else {
        return sprig_error_set(err, -EINVAL, "sync: uri \"%s\" must start with mqtt:// or mqtts://",
                               u);
    }
    const char *colon = strrchr(rest, ':');
    size_t hl = colon != NULL ? (size_t)(colon - rest) : strlen(rest);
    if (hl == 0 || hl >= sizeof(s->host)) {
        return sprig_error_set(err, -EINVAL, "sync: uri \"%s\" has no host", u);
    }
    memcpy(s->host, rest, hl);
    s->host[hl] = '\0';
    if (colon != NULL) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || (*end != '\0' && *end != '/') || p < 1 || p > 65535) {
            return sprig_error_set(err, -EINVAL, "sync: uri \"%s\": the port must be 1-65535", u);
        }
        s->port = (int)p;
    }
    return 0;
}

static const char *keep(sprig_sync_t *s, int i, const char *v)
{
    if (v == NULL) {
        return NULL;
    }
    s->strings[i] = sprig_strdup(v);
    return s->strings[i];
}

int sprig_sync_start(sprig_core_t *core, const sprig_sync_opts_t *opts, sprig_sync_t **out,
                     sprig_error_t *err)
{
    static bool lib;
    if (!lib) {
        mosquitto_lib_init();
        lib = true;
    }
    *out = NULL;
    sprig_sync_t *s = sprig_calloc(1, sizeof(*s));
    if (s == NULL) {
        return sprig_error_set(err, -ENOMEM, "sync: out of memory");
    }
    s->core = core;
    s->o = *opts;
    s->o.uri = keep(s, 0, opts->uri);
    s->o.ca_file = keep(s, 1, opts->ca_file);
    s->o.cert_file = keep(s, 2, opts->cert_file);
    s->o.key_file = keep(s, 3, opts->key_file);
    s->o.username = keep(s, 4, opts->username);
    s->o.password = keep(s, 5, opts->password);
    s->o.prefix = keep(s, 6, opts->prefix != NULL ? opts->prefix : "sprig");
    s->o.node_id = keep(s, 7, opts->node_id);
    s->o.period_s = opts->period_s > 0 ? opts->period_s : 20;
    s->o.max_msg = opts->max_msg != 0 ? opts->max_msg : 256 * 1024;
    s->state = "connecting";
    s->fd = -1;
    int rc = parse_uri(s, err);
    const char *device = opts->device_id != NULL && opts->device_id[0] != '\0'
                             ? opts->device_id
                             : sprig_core_root_id(core);
    char client_id[128];
    if (opts->upstream) {
        snprintf(client_id, sizeof(client_id), "sprig-upstream-%.60s", sprig_core_root_id(core));
        snprintf(s->sub_topic, sizeof(s->sub_topic), "%s/+/up", s->o.prefix);
        snprintf(s->hist_topic, sizeof(s->hist_topic), "%s/+/hist", s->o.prefix);
    }
    else {
        snprintf(client_id, sizeof(client_id), "%s", device);
        snprintf(s->sub_topic, sizeof(s->sub_topic), "%s/%s/down", s->o.prefix, device);
        snprintf(s->status_topic, sizeof(s->status_topic), "%s/%s/status", s->o.prefix, device);
    }
    if (rc == 0 && (s->mosq = mosquitto_new(client_id, false, s)) == NULL) {
        rc = sprig_error_set(err, -ENOMEM, "sync: out of memory");
    }
    if (rc == 0) {
        mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        mosquitto_int_option(s->mosq, MOSQ_OPT_TCP_NODELAY, 1);
        mosquitto_connect_callback_set(s->mosq, on_connect);
        mosquitto_disconnect_callback_set(s->mosq, on_disconnect);
        mosquitto_message_callback_set(s->mosq, on_message);
        if (s->tls && mosquitto_tls_set(s->mosq, s->o.ca_file, NULL, s->o.cert_file, s->o.key_file,
                                        NULL) != MOSQ_ERR_SUCCESS) {
            rc = sprig_error_set(err, -EINVAL,
                                 "sync: TLS files (caFile %s, certFile %s, keyFile %s) cannot "
                                 "be used",
                                 s->o.ca_file != NULL ? s->o.ca_file : "-",
                                 s->o.cert_file != NULL ? s->o.cert_file : "-",
                                 s->o.key_file != NULL ? s->o.key_file : "-");
        }
    }
    if (rc == 0 && s->o.username != NULL) {
        mosquitto_username_pw_set(s->mosq, s->o.username, s->o.password);
    }
    if (rc == 0 && !opts->upstream) {
        mosquitto_will_set(s->mosq, s->status_topic, 7, "offline", 1, true);
        if (peer_add(s, device) == NULL) {
            rc = sprig_error_set(err, -ENOMEM, "sync: out of memory");
        }
    }
    if (rc == 0) {
        uv_loop_t *loop = sprig_core_loop(core);
        s->tick = sprig_malloc(sizeof(*s->tick));
        s->flush = sprig_malloc(sizeof(*s->flush));
        s->probe = sprig_malloc(sizeof(*s->probe));
        if (s->tick == NULL || s->flush == NULL || s->probe == NULL) {
            sprig_free(s->tick);
            sprig_free(s->flush);
            sprig_free(s->probe);
            s->tick = s->flush = s->probe = NULL;
            rc = sprig_error_set(err, -ENOMEM, "sync: out of memory");
        }
        else {
            uv_timer_t *ts[3] = {s->tick, s->flush, s->probe};
            for (int i = 0; i < 3; i++) {
                uv_timer_init(loop, ts[i]);
                ts[i]->data = s;
            }
        }
    }
    if (rc == 0) {
        rc = sprig_bus_subscribe(sprig_core_bus(core), NULL, on_change, s, &s->sub);
    }
    if (rc != 0) {
        sprig_sync_stop(s);
        return rc;
    }
    uv_timer_start(s->tick, on_tick, 100, 100);
    try_connect(s);
    *out = s;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    sprig_free(h);
}

void sprig_sync_stop(sprig_sync_t *s)
{
    if (s == NULL) {
        return;
    }
    s->stopping = true;
    if (s->sub != NULL) {
        sprig_bus_unsubscribe(sprig_core_bus(s->core), s->sub);
    }
    if (s->connected) {
        for (size_t i = 0; i < s->npeers; i++) {
            flush_peer(s->peers[i]);
        }
        if (!s->o.upstream) {
            mosquitto_publish(s->mosq, NULL, s->status_topic, 7, "offline", 1, true);
        }
        mosquitto_disconnect(s->mosq);
        for (int i = 0; i < 10 && mosquitto_want_write(s->mosq); i++) {
            mosquitto_loop_write(s->mosq, 1);
        }
    }
    for (sync_ack_t *a = s->acks; a != NULL; a = a->next) {
        a->s = NULL; /* freed by its durable callback, which now does nothing else */
    }
    drop_poll(s);
    uv_timer_t *ts[3] = {s->tick, s->flush, s->probe};
    for (int i = 0; i < 3; i++) {
        if (ts[i] != NULL) {
            uv_close((uv_handle_t *)ts[i], timer_closed);
        }
    }
    if (s->mosq != NULL) {
        mosquitto_destroy(s->mosq);
    }
    for (size_t i = 0; i < s->npeers; i++) {
        sb_free(&s->peers[i]->batch);
        sprig_free(s->peers[i]);
    }
    sprig_free(s->peers);
    for (int i = 0; i < 8; i++) {
        sprig_free(s->strings[i]);
    }
    sprig_free(s);
}

void sprig_sync_stats(const sprig_sync_t *s, sprig_sync_stats_t *out)
{
    out->state = s->state;
    out->sync_count = s->sync_count;
    out->repair_count = s->repair_count;
    out->bytes_up = s->bytes_up;
    out->bytes_down = s->bytes_down;
    out->refused = s->refused;
    out->peers = s->npeers;
    out->last_sync = s->last_sync;
}
