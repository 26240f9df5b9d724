/* Sync's MQTT link (DESIGN.md section 5; STYLE.md "The loop"): libmosquitto driven from
 * the libuv loop through a uv_poll on its socket and a 100 ms timer (keepalive,
 * reconnection with backoff up to 5 s, status points once a second), never its own
 * thread; and the start and stop of a link. Messages are handled in sync.c. */
#include <errno.h>
#include <sys/socket.h>
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

const char *sync__protocol(const sprig_sync_t *s)
{
    return !s->connected ? "" : s->proto == MQTT_PROTOCOL_V5 ? "5" : "3.1.1";
}

/* Why an attempt or a connection ended, for a person. */
static const char *why(int rc)
{
    return rc == MOSQ_ERR_TIMEOUT ? "no CONNACK within 10 s" : sync__mosq.strerror(rc);
}

/* The attempt (or the connection) to the current broker is over. MQTT 5 refused: the same
 * broker again at once with 3.1.1. Otherwise the next broker of the list, at once, or after
 * the backoff (250 ms doubling to 5 s) once every broker failed in this round; a connection
 * that lasted SYNC_STABLE_MS starts a new round, so a broker that takes us and drops us at
 * once does not make a tight loop. libmosquitto may report one loss twice (on_disconnect,
 * then the failed read): the second call does nothing. */
static void lost(sprig_sync_t *s, int rc)
{
    if (!s->attempt) {
        return;
    }
    s->attempt = false;
    bool was = s->connected;
    s->connected = false;
    drop_poll(s);
    if (s->stopping) {
        return;
    }
    sync_broker_t *b = &s->brokers[s->cur];
    int64_t now = (int64_t)uv_now(sprig_core_loop(s->core));
    bool tls_failed = rc == MOSQ_ERR_TLS || rc == MOSQ_ERR_TLS_HANDSHAKE;
    if (s->proto == MQTT_PROTOCOL_V5 && !was &&
        (s->refused_5 || (s->reached && !s->answered && !tls_failed))) {
        /* A CONNACK refusing the protocol version, or (some 3.1.1 brokers) the connection
         * closed after the CONNECT without any CONNACK. */
        sprig_log_info("sync %s: %s %s; connecting again with MQTT 3.1.1", sync__who(s), b->uri,
                       s->refused_5 ? "refused MQTT 5"
                                    : "closed the connection after an MQTT 5 CONNECT");
        s->next_311 = true;
        s->reached = false;
        s->reconnect_at = now;
        return;
    }
    s->next_311 = false;
    if (was || s->backoff_ms == 0) {
        sprig_log_warn("sync %s: %s from %s: %s", sync__who(s),
                       was ? "disconnected" : "no connection", b->uri, why(rc));
    }
    if (s->denied || s->sub_refused) {
        /* The broker answered and said no (on_connect or on_subscribe has the reason): keep
         * it. */
    }
    else if (tls_failed || rc == MOSQ_ERR_AUTH || rc == MOSQ_ERR_CONN_REFUSED ||
             (b->tls && !was && s->reached)) {
        /* A TLS peer that reached the broker and was dropped before it was accepted: with
         * TLS 1.3 a refused client certificate shows only as a lost connection. */
        s->state = "error";
        if (b->tls && !tls_failed) {
            snprintf(s->error, sizeof(s->error),
                     "%.200s closed the TLS connection before accepting it (%s): is the "
                     "client certificate (certFile, keyFile) signed by a CA the broker trusts?",
                     b->uri, why(rc));
        }
        else {
            snprintf(s->error, sizeof(s->error), "%.200s refused the connection: %s%s", b->uri,
                     why(rc),
                     b->tls ? " (check caFile, certFile and keyFile against the broker's)" : "");
        }
    }
    else if (!was && s->reached && !s->answered && s->proto == MQTT_PROTOCOL_V311) {
        /* MQTT 5 was refused (or never tried: the broker took 3.1.1 before), and 3.1.1 gets
         * no answer either. */
        s->state = "error";
        snprintf(s->error, sizeof(s->error),
                 "%.200s closed the connection after the MQTT 3.1.1 CONNECT without answering "
                 "it (NATS does so for a client id with '.' or ' ' in it: see the device id; "
                 "and while it fails over)",
                 b->uri);
    }
    else if (strcmp(s->state, "error") != 0 || was) {
        s->state = "connecting";
    }
    s->reached = false;
    if (was && now - s->connected_at >= SYNC_STABLE_MS) {
        s->tried = 0;
        s->backoff_ms = 0;
    }
    int64_t wait = 0;
    if (++s->tried >= s->nbrokers) {
        s->tried = 0;
        s->backoff_ms = s->backoff_ms == 0 ? 250 : s->backoff_ms * 2;
        s->backoff_ms = s->backoff_ms > 5000 ? 5000 : s->backoff_ms;
        wait = s->backoff_ms;
    }
    s->cur = (s->cur + 1) % s->nbrokers;
    s->reconnect_at = now + wait;
    sync__status_write(s);
}

/* Backpressure: whether the link holds back from reading. While the store has more than
 * SYNC_BACKLOG_MAX rows waiting (it lags, or it is failing: a database gone), what the
 * broker sends stays in the socket and the broker instead of piling up in memory as rows;
 * reading resumes below half of it. Only on a connected link: a CONNACK is always read.
 * A hold longer than the keepalive loses the connection, and the next probe repairs. */
static bool held_back(sprig_sync_t *s)
{
    size_t backlog = sprig_store_backlog(sprig_core_store(s->core));
    bool was = s->held;
    s->held = s->connected && (s->held ? backlog > SYNC_BACKLOG_MAX / 2 : backlog > SYNC_BACKLOG_MAX);
    if (s->held != was) {
        sprig_log_warn("sync link: %s reading from the broker (the store has %zu rows waiting)",
                       s->held ? "stops" : "resumes", backlog);
    }
    return s->held;
}

/* Watches the socket for what the link wants now: reading unless held back, writing when
 * libmosquitto has something to send. */
static void watch(sprig_sync_t *s, bool write)
{
    int events = (held_back(s) ? 0 : UV_READABLE) | (write ? UV_WRITABLE : 0);
    if (events != 0) {
        uv_poll_start(s->poll, events, sync__on_poll);
    }
    else {
        uv_poll_stop(s->poll);
    }
}

void sync__on_poll(uv_poll_t *h, int status, int events)
{
    sprig_sync_t *s = h->data;
    int rc = MOSQ_ERR_SUCCESS;
    if (status < 0) {
        rc = MOSQ_ERR_CONN_LOST;
    }
    if (rc == MOSQ_ERR_SUCCESS && (events & UV_READABLE) && !s->reached && s->fd >= 0) {
        /* Readable before any write of ours: libmosquitto may have sent the CONNECT inside
         * connect_async, and the broker may close at once (NATS refusing MQTT 5). The TCP
         * connection was up if the socket has a peer: read that before the read closes it. */
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        s->reached = getpeername(s->fd, (struct sockaddr *)&peer, &len) == 0;
    }
    if (rc == MOSQ_ERR_SUCCESS && (events & UV_READABLE) && !held_back(s)) {
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
        watch(s, sync__mosq.want_write(s->mosq));
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

static void on_connect(struct mosquitto *m, void *obj, int rc);
static void on_disconnect(struct mosquitto *m, void *obj, int rc);
static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted);

/* Makes s->mosq a client for MQTT version proto, with TLS or not, unless it is one already.
 * The clean-session flag is fixed at creation, hence a new client: with MQTT 5 a session
 * ends with its connection (no session expiry is sent), but a 3.1.1 session kept by the
 * broker would last forever and queue our topics while we are away, so 3.1.1 asks for a
 * clean one. 0, or -ENOMEM / -EINVAL (TLS files) with err set; s->mosq is then NULL. */
static int make_client(sprig_sync_t *s, bool tls, int proto, sprig_error_t *err)
{
    if (s->mosq != NULL && s->mosq_tls == tls && s->proto == proto) {
        return 0;
    }
    if (s->mosq != NULL) {
        sync__mosq.destroy(s->mosq);
        s->mosq = NULL;
    }
    struct mosquitto *m = sync__mosq.new_(s->client_id, proto != MQTT_PROTOCOL_V5, s);
    if (m == NULL) {
        return sprig_error_set(err, -ENOMEM, "sync: out of memory");
    }
    sync__mosq.int_option(m, MOSQ_OPT_PROTOCOL_VERSION, proto);
    sync__mosq.int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    sync__mosq.connect_callback_set(m, on_connect);
    sync__mosq.disconnect_callback_set(m, on_disconnect);
    sync__mosq.message_callback_set(m, sync__on_message);
    sync__mosq.subscribe_callback_set(m, on_subscribe);
    if (tls && sync__mosq.tls_set(m, s->o.ca_file, NULL, s->o.cert_file, s->o.key_file, NULL) !=
                   MOSQ_ERR_SUCCESS) {
        sync__mosq.destroy(m);
        return sprig_error_set(err, -EINVAL,
                               "sync: TLS files (caFile %s, certFile %s, keyFile %s) cannot "
                               "be used",
                               s->o.ca_file != NULL ? s->o.ca_file : "-",
                               s->o.cert_file != NULL ? s->o.cert_file : "-",
                               s->o.key_file != NULL ? s->o.key_file : "-");
    }
    if (s->o.username != NULL) {
        sync__mosq.username_pw_set(m, s->o.username, s->o.password);
    }
    if (!s->o.upstream) {
        sync__mosq.will_set(m, s->status_topic, 7, "offline", 1, true);
    }
    s->mosq = m;
    s->proto = proto;
    s->mosq_tls = tls;
    return 0;
}

static void try_connect(sprig_sync_t *s)
{
    sync_broker_t *b = &s->brokers[s->cur];
    int proto = s->next_311 || b->v311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5;
    sprig_error_t err;
    s->attempt = true;
    s->reached = s->answered = s->refused_5 = false;
    s->attempt_at = (int64_t)uv_now(sprig_core_loop(s->core));
    int made = make_client(s, b->tls, proto, &err);
    if (made != 0) {
        s->state = "error";
        s->denied = true;
        snprintf(s->error, sizeof(s->error), "%s", err.msg);
        sprig_log_error("sync %s: %s", sync__who(s), err.msg);
        lost(s, made == -ENOMEM ? MOSQ_ERR_NOMEM : MOSQ_ERR_TLS);
        return;
    }
    int rc = sync__mosq.connect_async(s->mosq, b->host, b->port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        lost(s, rc);
        return;
    }
    start_poll(s);
    sync__status_write(s);
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    sprig_sync_t *s = obj;
    sync_broker_t *b = &s->brokers[s->cur];
    s->answered = true;
    if (rc != 0 && s->proto == MQTT_PROTOCOL_V5 &&
        (rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION || rc == CONNACK_REFUSED_PROTOCOL_VERSION)) {
        s->refused_5 = true; /* lost(), which follows, connects again with 3.1.1 */
        return;
    }
    if (rc != 0) {
        s->state = "error";
        s->denied = true;
        /* MQTT 5 reason codes and 3.1.1 CONNACK codes are different tables. */
        snprintf(s->error, sizeof(s->error), "%.200s refused the connection: %s", b->uri,
                 s->proto == MQTT_PROTOCOL_V5 ? sync__mosq.reason_string(rc)
                                              : sync__mosq.connack_string(rc));
        sprig_log_error("sync %s: %s", sync__who(s), s->error);
        sync__status_write(s);
        return;
    }
    s->connected = true;
    s->denied = false;
    s->connected_at = (int64_t)uv_now(sprig_core_loop(s->core));
    b->v311 = s->proto == MQTT_PROTOCOL_V311;
    s->next_311 = false;
    if (!s->sub_refused) {
        s->state = "syncing";
        s->error[0] = '\0';
    }
    sync__mosq.subscribe(s->mosq, &s->sub_mid, s->sub_topic, 1);
    if (s->o.upstream) {
        sync__mosq.subscribe(s->mosq, NULL, s->hist_topic, 1);
    }
    sprig_log_info("sync %s: connected to %s (MQTT %s)", sync__who(s), b->uri, sync__protocol(s));
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
        /* The first probe goes once our topic is subscribed (on_subscribe): an answer sent
         * before would be lost on a broker slow to subscribe (NATS: up to a second). */
        uv_timer_start(s->probe, sync__on_probe_timer, 3000, 0);
    }
    sync__status_write(s);
}

/* A SUBACK. A refused subscription leaves the link deaf, so it disconnects (lost() moves on
 * as for a broker gone) and says why on the sync node until one is granted: NATS refuses a
 * topic with '.' or ' ' in it, and any subscription while it elects new stream leaders
 * after losing a node. The granted subscription to our own topic sends the first probe. */
static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted)
{
    (void)m;
    sprig_sync_t *s = obj;
    bool ok = n > 0;
    for (int i = 0; i < n; i++) {
        ok &= granted[i] >= 0 && granted[i] <= 2;
    }
    if (!ok) {
        s->sub_refused = true;
        s->state = "error";
        snprintf(s->error, sizeof(s->error),
                 "%.150s refused the subscription to %.150s; trying again (NATS refuses a topic "
                 "with '.' or ' ' in it, and any subscription while it fails over)",
                 s->brokers[s->cur].uri, mid == s->sub_mid ? s->sub_topic : s->hist_topic);
        sprig_log_error("sync %s: %s", sync__who(s), s->error);
        sync__status_write(s);
        /* on_disconnect runs once the DISCONNECT is written (sync__on_poll writes it). */
        sync__mosq.disconnect(s->mosq);
        return;
    }
    if (mid != s->sub_mid) {
        return;
    }
    if (s->sub_refused) {
        s->sub_refused = false;
        s->state = "syncing";
        s->error[0] = '\0';
        sync__status_write(s);
    }
    if (!s->o.upstream && s->connected) {
        uv_timer_start(s->probe, sync__on_probe_timer, 0, 0);
    }
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
    int64_t now_ms = (int64_t)uv_now(sprig_core_loop(s->core));
    if (s->poll != NULL && !s->connected && now_ms - s->attempt_at >= SYNC_CONNECT_MS) {
        lost(s, MOSQ_ERR_TIMEOUT); /* a broker that took the TCP connection and is silent */
    }
    else if (s->poll != NULL) {
        int rc = sync__mosq.loop_misc(s->mosq);
        if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
            lost(s, rc);
        }
        else if (s->poll != NULL && (sync__mosq.want_write(s->mosq) || s->held)) {
            watch(s, sync__mosq.want_write(s->mosq)); /* also ends a hold once drained */
        }
    }
    else if (now_ms >= s->reconnect_at) {
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
    int rc = sync__parse_uris(s->o.uri, s->brokers, SYNC_BROKERS_MAX, &s->nbrokers, err);
    const char *device = opts->device_id != NULL && opts->device_id[0] != '\0'
                             ? opts->device_id
                             : sprig_core_root_id(core);
    if (opts->upstream) {
        snprintf(s->client_id, sizeof(s->client_id), "sprig-upstream-%.60s",
                 sprig_core_root_id(core));
        snprintf(s->sub_topic, sizeof(s->sub_topic), "%s/+/up", s->o.prefix);
        snprintf(s->hist_topic, sizeof(s->hist_topic), "%s/+/hist", s->o.prefix);
    }
    else {
        snprintf(s->client_id, sizeof(s->client_id), "%s", device);
        snprintf(s->sub_topic, sizeof(s->sub_topic), "%s/%s/down", s->o.prefix, device);
        snprintf(s->status_topic, sizeof(s->status_topic), "%s/%s/status", s->o.prefix, device);
    }
    /* The client of the first attempt, made now so that TLS files that cannot be used are
     * refused at start: with TLS when any broker of the list takes it. */
    bool any_tls = false;
    for (size_t i = 0; i < s->nbrokers; i++) {
        any_tls |= s->brokers[i].tls;
    }
    if (rc == 0) {
        rc = make_client(s, any_tls, MQTT_PROTOCOL_V5, err);
    }
    if (rc == 0 && !opts->upstream && sync__peer_add(s, device) == NULL) {
        rc = sprig_error_set(err, -ENOMEM, "sync: out of memory");
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
    out->broker = s->nbrokers > 0 ? s->brokers[s->cur].uri : "";
    out->protocol = sync__protocol(s);
    out->sync_count = s->sync_count;
    out->repair_count = s->repair_count;
    out->bytes_up = s->bytes_up;
    out->bytes_down = s->bytes_down;
    out->refused = s->refused;
    out->peers = s->npeers;
    out->last_sync = s->last_sync;
}
