/* Sync's history upload (DESIGN.md section 5, "History"): the downstream sends its
 * history in order on sprig/<device>/hist, one batch at a time, after the cursor the
 * upstream acknowledged; the upstream stores each row once (it keeps the device's cursor,
 * histCursor, with the rows) and acknowledges a batch once it is on disk. Rows of nodes
 * the upstream has not got yet (the tree is still being repaired) are acknowledged only
 * up to the row before, and sent again. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/log.h"
#include "sprig/util.h"
#include "sync_internal.h"

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
void sync__hist_pump(sync_peer_t *p)
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
    if (n <= 0 || h.rows == 0) {
        /* Nothing the upstream keeps (only this instance's local points): move on here,
         * without a message, and without writing histAcked (that would be history too). */
        if (n > 0) {
            p->hist_acked = h.last;
        }
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
    if (!b.oom && sync__mosq.publish(s->mosq, NULL, p->topic_hist, (int)b.len, b.p, 1, false) ==
                      MOSQ_ERR_SUCCESS) {
        sync__count(s, true, b.p, b.len);
        if (s->poll != NULL) {
            uv_poll_start(s->poll, UV_READABLE | UV_WRITABLE, sync__on_poll);
        }
    }
    else {
        p->hist_sent = 0;
    }
    sb_free(&b);
}

/* Downstream: the upstream has the batch up to `upto` on disk. */
void sync__on_hack(sync_peer_t *p, const cJSON *m)
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
            sprig_log_warn("sync %s: %s", sync__who(s), err.msg);
        }
    }
    sync__hist_pump(p);
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
        sync_peer_t *p = sync__peer_find(s, a->device);
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
int sync__on_hist(sync_peer_t *p, const cJSON *m)
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
        if (sprig_core_write(c, p->root, &cur, 1, p, &err) != 0) {
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

int64_t sync__hist_pending(sprig_sync_t *s)
{
    sprig_store_stats_t st;
    sprig_store_stats(sprig_core_store(s->core), &st);
    int64_t acked = s->npeers > 0 ? s->peers[0]->hist_acked : 0;
    return st.history_last_id > acked ? st.history_last_id - acked : 0;
}
