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

const char *sync__who(const sprig_sync_t *s)
{
    return s->o.upstream ? "upstream" : s->o.node_id;
}

/* --- peers -------------------------------------------------------------------------- */

sync_peer_t *sync__peer_find(sprig_sync_t *s, const char *device)
{
    for (size_t i = 0; i < s->npeers; i++) {
        if (strcmp(s->peers[i]->device, device) == 0) {
            return s->peers[i];
        }
    }
    return NULL;
}

sync_peer_t *sync__peer_add(sprig_sync_t *s, const char *device)
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
    if (!p->s->o.upstream) {
        return sprig_tree_root(t);
    }
    return p->root[0] != '\0' ? sprig_tree_node(t, p->root) : NULL;
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
    sprig_log_warn("sync %s: message from device %s refused: %s", sync__who(p->s), p->device, msg);
}

/* --- messages out ------------------------------------------------------------------- */

void sync__begin(sync_peer_t *p, sbuf_t *b, const char *t)
{
    sb_fmt(b, "{\"t\":\"%s\",\"seq\":\"%" PRIu64 "\"", t, ++p->out_seq);
    p->last_sent = p->out_seq;
}

void sync__send(sync_peer_t *p, sbuf_t *msg)
{
    sprig_sync_t *s = p->s;
    if (msg->oom) {
        sprig_log_error("sync %s: out of memory building a message", sync__who(s));
    }
    else if (s->connected) {
        int rc = sync__mosq.publish(s->mosq, NULL, p->topic_out, (int)msg->len, msg->p, 1, false);
        if (rc == MOSQ_ERR_SUCCESS) {
            sync__count(s, true, msg->p, msg->len);
        }
        else {
            sprig_log_warn("sync %s: publish to %s failed: %s", sync__who(s), p->topic_out,
                           sync__mosq.strerror(rc));
        }
        if (s->poll != NULL && sync__mosq.want_write(s->mosq)) {
            uv_poll_start(s->poll, UV_READABLE | UV_WRITABLE, sync__on_poll);
        }
    }
    sb_free(msg);
}

void sync__flush_peer(sync_peer_t *p)
{
    if (p->items == 0) {
        return;
    }
    sbuf_t m = {0};
    sync__begin(p, &m, "pts");
    if (!p->s->o.upstream && !p->root_told) {
        sb_str(&m, ",\"root\":"); /* which root this device id syncs (upstream: its own) */
        sb_json(&m, sprig_core_root_id(p->s->core));
    }
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
        sync__flush_peer(s->peers[i]);
    }
}

static void arm_flush(sprig_sync_t *s)
{
    if (!s->flush_armed) {
        s->flush_armed = true;
        uv_timer_start(s->flush, on_flush, 5, 0);
    }
}

/* The peer a device root belongs to: the one bound to it that its syncDevice names. */
static sync_peer_t *peer_of_root(sprig_sync_t *s, const sprig_node_t *r)
{
    const char *device = sync__bound_device(sprig_core_tree(s->core), r);
    for (size_t i = 0; i < s->npeers; i++) {
        sync_peer_t *p = s->peers[i];
        if (strcmp(p->root, sprig_node_id(r)) == 0 && strcmp(p->device, device) == 0) {
            return p;
        }
    }
    return NULL;
}

/* The device a node belongs to, upstream: the child of the root on its live path. */
static sync_peer_t *device_of(sprig_sync_t *s, sprig_node_t *n)
{
    sprig_tree_t *t = sprig_core_tree(s->core);
    sprig_node_t *root = sprig_tree_root(t);
    for (int depth = 0; n != NULL && n != root && depth < 256; depth++) {
        sprig_edge_t *e = sprig_node_live_parent(n);
        sprig_node_t *up = e != NULL ? sprig_edge_up(e) : NULL;
        if (up == root) {
            return peer_of_root(s, n);
        }
        n = up;
    }
    return NULL;
}

/* Forwards an accepted change to the peer its node belongs to (not back where it came
 * from, and never a local point). */
void sync__on_change(const sprig_event_t *ev, void *arg)
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
        sync__flush_peer(p);
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

/* Consecutive point items of one node, written in one call: under load a pts message
 * holds hundreds of points of a few nodes, and one write of many costs about what one
 * write of one does. */
#define SYNC_RUN_MAX 256
typedef struct pts_run {
    const char *node;
    sprig_point_t pts[SYNC_RUN_MAX];
    size_t n;
} pts_run_t;

/* Writes the run; when the call is refused (all or nothing), writes its points one by
 * one, so a refused point refuses only itself, as it did item by item. */
static void run_flush(sync_peer_t *p, pts_run_t *r, int *failed)
{
    sprig_core_t *c = p->s->core;
    sprig_error_t err;
    if (r->n == 0 || sprig_core_write(c, r->node, r->pts, r->n, p, &err) == 0) {
        r->n = 0;
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        if (sprig_core_write(c, r->node, &r->pts[i], 1, p, &err) != 0 && (*failed)++ == 0) {
            sprig_log_warn("sync %s: a change from device %s is refused: %s", sync__who(p->s),
                           p->device, err.msg);
        }
    }
    r->n = 0;
}

static void apply_pts(sync_peer_t *p, const cJSON *items)
{
    sprig_core_t *c = p->s->core;
    sprig_tree_t *t = sprig_core_tree(c);
    sprig_error_t err;
    int failed = 0;
    pts_run_t *run = sprig_malloc(sizeof(*run));
    if (run != NULL) {
        run->n = 0;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        const char *n = cJSON_GetObjectItemCaseSensitive(it, "n")->valuestring;
        const char *nt = cJSON_GetObjectItemCaseSensitive(it, "nt")->valuestring;
        const cJSON *up = cJSON_GetObjectItemCaseSensitive(it, "up");
        sprig_point_t pt;
        sync__point(cJSON_GetObjectItemCaseSensitive(it, "p"), &pt);
        if (run != NULL && run->n > 0 &&
            (up != NULL || run->n == SYNC_RUN_MAX || strcmp(run->node, n) != 0)) {
            run_flush(p, run, &failed);
        }
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
        else if (rc == 0 && run != NULL) {
            run->node = n;
            run->pts[run->n++] = pt;
        }
        else if (rc == 0) {
            rc = sprig_core_write(c, n, &pt, 1, p, &err);
        }
        if (rc != 0 && failed++ == 0) {
            sprig_log_warn("sync %s: a change from device %s is refused: %s", sync__who(p->s),
                           p->device, err.msg);
        }
    }
    if (run != NULL) {
        run_flush(p, run, &failed);
    }
    sprig_free(run);
}

static void on_probe(sync_peer_t *p, const cJSON *m)
{
    const cJSON *acked = cJSON_GetObjectItemCaseSensitive(m, "acked");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(m, "hash");
    if (!cJSON_IsString(acked) || !cJSON_IsString(hash)) {
        sync__refuse(p, "probe without acked and hash strings");
        return;
    }
    sync__flush_peer(p); /* what is pending was sent after acked: say wait */
    uint64_t ack = strtoull(acked->valuestring, NULL, 10);
    sbuf_t b = {0};
    /* wait when we sent something after acked; but a second probe with the same acked
     * means what we sent is lost (the device was away): compare what is there now. */
    if (p->last_sent > ack && ack != p->wait_ack) {
        p->wait_ack = ack;
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
        sb_json(&b, p->root);
        sb_str(&b, "]}");
        sync__send(p, &b);
    }
}

static void on_answer(sync_peer_t *p, const char *t, const char *why)
{
    sprig_sync_t *s = p->s;
    p->root_told = strcmp(t, "refused") != 0;
    if (strcmp(t, "match") == 0) {
        s->sync_count++;
        s->last_sync = sprig_wall_ns();
        s->state = "insync";
        s->error[0] = '\0';
        p->rounds = 0;
        p->repairing = false;
        p->hist_ready = true;
        uv_timer_start(s->probe, sync__on_probe_timer, (uint64_t)(s->o.period_s * 1000), 0);
        sync__status_write(s);
        return;
    }
    if (strcmp(t, "refused") == 0) {
        /* The upstream does not take this device's root under this device id: say why on
         * the sync node, and ask again at the next period (a person may fix it there). */
        s->state = "error";
        snprintf(s->error, sizeof(s->error), "the upstream refused this device: %.400s", why);
        p->repairing = false;
        p->rounds = 0;
        uv_timer_start(s->probe, sync__on_probe_timer, (uint64_t)(s->o.period_s * 1000), 0);
        sync__status_write(s);
        return;
    }
    /* wait: the upstream has sent more; probe again once it has arrived (not a repair). */
    uv_timer_start(s->probe, sync__on_probe_timer, 300, 0);
}

void sync__on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    sprig_sync_t *s = obj;
    sync__count(s, false, msg->payload, (size_t)msg->payloadlen);
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
    sync_peer_t *p = s->o.upstream ? sync__peer_find(s, device) : s->peers[0];
    if (p == NULL && s->o.upstream && sprig_id_valid(device)) {
        p = sync__peer_add(s, device);
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
        else if (sync__ensure_device(p, NULL, false) == 0 && sync__on_hist(p, j) == 0) {
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
    const char *type = t->valuestring;
    if (s->o.upstream) {
        const cJSON *root = cJSON_GetObjectItemCaseSensitive(j, "root");
        if (root != NULL && !id_ok(root)) {
            sync__refuse(p, "root is not a valid node id");
            cJSON_Delete(j);
            return;
        }
        if (sync__ensure_device(p, root != NULL ? root->valuestring : NULL,
                                strcmp(type, "probe") == 0) != 0) {
            cJSON_Delete(j);
            return;
        }
    }
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
    else if ((strcmp(type, "match") == 0 || strcmp(type, "wait") == 0 ||
              strcmp(type, "refused") == 0) &&
             !s->o.upstream) {
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(j, "error");
        p->in_seq = n;
        on_answer(p, type, cJSON_IsString(why) ? why->valuestring : "(no reason given)");
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
        sync__on_hack(p, j);
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
    sync__flush_peer(p);
    sbuf_t b = {0};
    sync__begin(p, &b, "probe");
    sb_str(&b, ",\"root\":");
    sb_json(&b, sprig_core_root_id(s->core));
    sb_fmt(&b, ",\"acked\":\"%" PRIu64 "\",\"hash\":\"%016" PRIx64 "\"}", p->in_seq,
           sprig_node_hash(sync__peer_root(p)));
    sync__send(p, &b);
}

void sync__on_probe_timer(uv_timer_t *t)
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
        sync__status_write(s);
        uv_timer_start(s->probe, sync__on_probe_timer, (uint64_t)(s->o.period_s * 1000), 0);
        return;
    }
    send_probe(p);
    /* An answer sets the next probe; none within 3 s (a probe lost while the broker or
     * the upstream came back) asks again. */
    uint64_t period = (uint64_t)(s->o.period_s * 1000);
    uv_timer_start(s->probe, sync__on_probe_timer, period < 3000 ? period : 3000, 0);
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
    uv_timer_start(s->probe, sync__on_probe_timer, 300, 0);
}

/* --- status (downstream: local points of the sync node) ------------------------------ */

void sync__status_write(sprig_sync_t *s)
{
    if (s->o.upstream || s->o.node_id == NULL) {
        return;
    }
    sprig_tree_t *t = sprig_core_tree(s->core);
    sprig_node_t *n = sprig_tree_node(t, s->o.node_id);
    if (n == NULL) {
        return;
    }
    char kinds[1024];
    sync__kinds_json(s, kinds, sizeof(kinds));
    sprig_point_t want[] = {
        {.type = "state", .text = s->state},
        {.type = "error", .text = s->error},
        {.type = "lastSync", .value = (double)s->last_sync},
        {.type = "syncCount", .value = (double)s->sync_count},
        {.type = "repairCount", .value = (double)s->repair_count},
        {.type = "bytesUp", .value = (double)s->bytes_up},
        {.type = "bytesDown", .value = (double)s->bytes_down},
        {.type = "histPending", .value = (double)sync__hist_pending(s)},
        {.type = "bytesByKind", .text = kinds},
        {.type = "broker", .text = s->brokers[s->cur].uri},
        {.type = "protocol", .text = sync__protocol(s)},
    };
    enum { NWANT = sizeof(want) / sizeof(want[0]) };
    sprig_point_t pts[NWANT];
    size_t k = 0;
    for (size_t i = 0; i < NWANT; i++) {
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
        sprig_log_warn("sync %s: %s", sync__who(s), err.msg);
    }
}
