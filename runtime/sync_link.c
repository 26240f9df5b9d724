/* Sync's MQTT link (DESIGN.md section 5; STYLE.md "The loop"): libmosquitto driven from
 * the libuv loop through a uv_poll on its socket and a 100 ms timer (keepalive,
 * reconnection with backoff up to 5 s, status points once a second), never its own
 * thread; and the start and stop of a link. Messages are handled in sync.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/util.h"
#include "sync_internal.h"

/* --- the MQTT link ------------------------------------------------------------------ */

static void drop_poll(sprig_sync_t *s)
{
    if (s->poll != NULL) {
        uv_close((uv_handle_t *)s->poll, sprig_free_handle);
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
        sprig_log_warn("sync %s: disconnected from %s:%d: %s", sync__who(s), s->host, s->port,
                       sync__mosq.strerror(rc));
    }
    if (s->denied) {
        /* The broker answered and said no (on_connect has the reason): keep it. */
    }
    else if (rc == MOSQ_ERR_TLS || rc == MOSQ_ERR_TLS_HANDSHAKE || rc == MOSQ_ERR_AUTH ||
             rc == MOSQ_ERR_CONN_REFUSED || (s->tls && !was && s->reached)) {
        /* A TLS peer that reached the broker and was dropped before it was accepted: with
         * TLS 1.3 a refused client certificate shows only as a lost connection. */
        s->state = "error";
        if (s->tls && rc != MOSQ_ERR_TLS && rc != MOSQ_ERR_TLS_HANDSHAKE) {
            snprintf(s->error, sizeof(s->error),
                     "%.200s:%d closed the TLS connection before accepting it (%s): is the "
                     "client certificate (certFile, keyFile) signed by a CA the broker trusts?",
                     s->host, s->port, sync__mosq.strerror(rc));
        }
        else {
            snprintf(s->error, sizeof(s->error), "%.200s:%d refused the connection: %s%s", s->host,
                     s->port, sync__mosq.strerror(rc),
                     s->tls ? " (check caFile, certFile and keyFile against the broker's)" : "");
        }
    }
    else if (strcmp(s->state, "error") != 0 || was) {
        s->state = "connecting";
    }
    s->reached = false;
    s->backoff_ms = s->backoff_ms == 0 ? 250 : s->backoff_ms * 2 > 5000 ? 5000 : s->backoff_ms * 2;
    s->reconnect_at = (int64_t)uv_now(sprig_core_loop(s->core)) + s->backoff_ms;
    sync__status_write(s);
}

void sync__on_poll(uv_poll_t *h, int status, int events)
{
    sprig_sync_t *s = h->data;
    int rc = MOSQ_ERR_SUCCESS;
    if (status < 0) {
        rc = MOSQ_ERR_CONN_LOST;
    }
    if (rc == MOSQ_ERR_SUCCESS && (events & UV_READABLE)) {
        rc = sync__mosq.loop_read(s->mosq, 1);
    }
    if (rc == MOSQ_ERR_SUCCESS && s->poll != NULL && (events & UV_WRITABLE)) {
        rc = sync__mosq.loop_write(s->mosq, 1);
        s->reached |= rc == MOSQ_ERR_SUCCESS; /* the TCP connection is up */
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        lost(s, rc);
        return;
    }
    if (s->poll != NULL) {
        uv_poll_start(s->poll, UV_READABLE | (sync__mosq.want_write(s->mosq) ? UV_WRITABLE : 0),
                      sync__on_poll);
    }
}

static void start_poll(sprig_sync_t *s)
{
    int fd = sync__mosq.socket(s->mosq);
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
    uv_poll_start(s->poll, UV_READABLE | UV_WRITABLE, sync__on_poll);
}

static void try_connect(sprig_sync_t *s)
{
    int rc = sync__mosq.connect_async(s->mosq, s->host, s->port, 30);
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
        s->denied = true;
        snprintf(s->error, sizeof(s->error), "the broker refused the connection: %s",
                 sync__mosq.reason_string(rc));
        sprig_log_error("sync %s: %s", sync__who(s), s->error);
        sync__status_write(s);
        return;
    }
    s->connected = true;
    s->denied = false;
    s->backoff_ms = 0;
    s->state = "syncing";
    s->error[0] = '\0';
    sync__mosq.subscribe(s->mosq, NULL, s->sub_topic, 1);
    if (s->o.upstream) {
        sync__mosq.subscribe(s->mosq, NULL, s->hist_topic, 1);
    }
    sprig_log_info("sync %s: connected to %s:%d", sync__who(s), s->host, s->port);
    if (!s->o.upstream) {
        sync__mosq.publish(s->mosq, NULL, s->status_topic, 6, "online", 1, true);
        sync_peer_t *p = s->peers[0];
        p->repairing = false;
        p->rounds = 0;
        p->hist_sent = 0; /* what was in flight is sent again from the acknowledged cursor */
        p->hist_ready = false;
        p->root_told = false; /* pts name the root again until a probe is answered */
        if (s->o.node_id != NULL) {
            sprig_tree_t *t = sprig_core_tree(s->core);
            sprig_node_t *sn = sprig_tree_node(t, s->o.node_id);
            const sprig_point_t *ha = sn != NULL ? sprig_tree_point(t, sn, "histAcked", "0") : NULL;
            if (ha != NULL && !ha->tombstone && (int64_t)ha->value > p->hist_acked) {
                p->hist_acked = (int64_t)ha->value;
            }
        }
        uv_timer_start(s->probe, sync__on_probe_timer, 50, 0);
    }
    sync__status_write(s);
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
        int rc = sync__mosq.loop_misc(s->mosq);
        if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
            lost(s, rc);
        }
        else if (s->poll != NULL && sync__mosq.want_write(s->mosq)) {
            uv_poll_start(s->poll, UV_READABLE | UV_WRITABLE, sync__on_poll);
        }
    }
    else if ((int64_t)uv_now(sprig_core_loop(s->core)) >= s->reconnect_at) {
        try_connect(s);
    }
    if (s->connected && !s->o.upstream && s->npeers > 0) {
        sync__hist_pump(s->peers[0]);
    }
    int64_t now = sprig_wall_ns();
    if (now - s->last_status >= 1000000000) {
        s->last_status = now;
        sync__status_write(s);
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
    *out = NULL;
    int lrc = sync__mosq_load(err);
    if (lrc != 0) {
        return lrc;
    }
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
    s->o.max_msg = opts->max_msg != 0 ? opts->max_msg : 4 * 1024 * 1024;
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
    if (rc == 0 && (s->mosq = sync__mosq.new_(client_id, false, s)) == NULL) {
        rc = sprig_error_set(err, -ENOMEM, "sync: out of memory");
    }
    if (rc == 0) {
        sync__mosq.int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
        sync__mosq.int_option(s->mosq, MOSQ_OPT_TCP_NODELAY, 1);
        sync__mosq.connect_callback_set(s->mosq, on_connect);
        sync__mosq.disconnect_callback_set(s->mosq, on_disconnect);
        sync__mosq.message_callback_set(s->mosq, sync__on_message);
        if (s->tls && sync__mosq.tls_set(s->mosq, s->o.ca_file, NULL, s->o.cert_file, s->o.key_file,
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
        sync__mosq.username_pw_set(s->mosq, s->o.username, s->o.password);
    }
    if (rc == 0 && !opts->upstream) {
        sync__mosq.will_set(s->mosq, s->status_topic, 7, "offline", 1, true);
        if (sync__peer_add(s, device) == NULL) {
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
        rc = sprig_bus_subscribe(sprig_core_bus(core), NULL, sync__on_change, s, &s->sub);
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
            sync__flush_peer(s->peers[i]);
        }
        if (!s->o.upstream) {
            sync__mosq.publish(s->mosq, NULL, s->status_topic, 7, "offline", 1, true);
        }
        sync__mosq.disconnect(s->mosq);
        for (int i = 0; i < 10 && sync__mosq.want_write(s->mosq); i++) {
            sync__mosq.loop_write(s->mosq, 1);
        }
    }
    for (sync_ack_t *a = s->acks; a != NULL; a = a->next) {
        a->s = NULL; /* freed by its durable callback, which now does nothing else */
    }
    drop_poll(s);
    uv_timer_t *ts[3] = {s->tick, s->flush, s->probe};
    for (int i = 0; i < 3; i++) {
        if (ts[i] != NULL) {
            uv_close((uv_handle_t *)ts[i], sprig_free_handle);
        }
    }
    if (s->mosq != NULL) {
        sync__mosq.destroy(s->mosq);
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
