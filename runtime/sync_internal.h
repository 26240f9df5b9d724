/* Internals of sync shared by sync.c (the MQTT link, peers, live forwarding, probes) and
 * sync_msg.c (message text in and out, and the repair exchange). Not a public header. */
#ifndef SPRIG_SYNC_INTERNAL_H
#define SPRIG_SYNC_INTERNAL_H

#include <cJSON.h>
#include "sync_mosq.h"

#include "sbuf.h"
#include "sprig/sync.h"

#define SYNC_BATCH_MAX (64 * 1024) /* a pts message is sent at this size, or after 5 ms */
#define SYNC_REPAIR_ROUNDS 8       /* probes that still differ after repair, then error */
#define SYNC_TREE_MAX 20000        /* nodes sent for one `need` of a whole subtree */
#define SYNC_KINDS 10              /* entries of sync__kinds */
#define SYNC_BROKERS_MAX 16        /* brokers in one uri list */
#define SYNC_CONNECT_MS 10000      /* an attempt without CONNACK by then is given up */
#define SYNC_STABLE_MS 5000        /* a connection that lasted this long starts a new round */
#define SYNC_BACKLOG_MAX 100000    /* store rows waiting above which the link stops reading */

/* Message text, in a growing buffer (sbuf.h). */
void sb_json(sbuf_t *b, const char *s); /* appends s as a JSON string literal */
void sb_point(sbuf_t *b, const sprig_point_t *p);

/* One device at the other end of the link: for a downstream its upstream (one peer, its
 * own device id), for an upstream each device that talks to it. */
typedef struct sync_peer {
    sprig_sync_t *s;
    char device[SPRIG_ID_MAX + 1]; /* the id in its topics (and, with an ACL, its client id) */
    /* Upstream: the id of the device's root node here, which the device names in its
     * probes and pts (`root`) and which may differ from its device id; empty until known.
     * The binding is kept in the store as the root node's local point syncDevice. */
    char root[SPRIG_ID_MAX + 1];
    char topic_out[320], topic_hist[320];
    uint64_t out_seq;   /* last seq given to a message for it */
    uint64_t last_sent; /* seq of the last message built for it (0: none yet) */
    uint64_t wait_ack;  /* upstream: the acked of the probe last answered `wait` */
    uint64_t in_seq;    /* last seq applied from it */
    sbuf_t batch;       /* pts items waiting to be sent */
    size_t items;
    int rounds; /* repair rounds since the last match */
    bool repairing;
    uint64_t refused;
    /* history (its own topic, so its own sequence) */
    uint64_t hist_out_seq, hist_in_seq;
    int64_t hist_acked;  /* downstream: the cursor the upstream acknowledged */
    int64_t hist_sent;   /* downstream: upto of the batch in flight, 0: none */
    int64_t hist_cursor; /* upstream: last row of this device stored here */
    bool hist_loaded;
    bool hist_ready;     /* downstream: a probe matched since connecting */
    bool root_told;      /* downstream: the upstream answered a probe (which names our root)
                            since connecting, so pts need not name it any more */
    int64_t hist_resume; /* downstream: no upload before this (ns) after a partial ack */
} sync_peer_t;

/* One broker of the link's uri list. */
typedef struct sync_broker {
    char uri[300]; /* the element as written (trimmed), for the status and messages */
    char host[256];
    int port;
    bool tls;  /* mqtts:// */
    bool v311; /* it refused MQTT 5 and took 3.1.1: later connections to it start with 3.1.1 */
} sync_broker_t;

/* Parses a uri (a sync node's point, --sync-broker): one mqtt://host[:port] or
 * mqtts://host[:port], or a comma-separated list of them (blanks around an element are
 * ignored). Fills out[0..*count) (at most max). 0, or -EINVAL with err naming the uri, the
 * element (its position from 1, when there are several), the rule and the value; *count is
 * then 0. */
int sync__parse_uris(const char *list, sync_broker_t *out, size_t max, size_t *count,
                     sprig_error_t *err);

struct sprig_sync {
    sprig_core_t *core;
    sprig_sync_opts_t o;
    char *strings[8]; /* owned copies of the option strings */
    sync_broker_t brokers[SYNC_BROKERS_MAX];
    size_t nbrokers;
    size_t cur;   /* the broker in use, or being tried */
    size_t tried; /* brokers that failed in this round (a round ends with a backoff) */
    char client_id[128];
    struct mosquitto *mosq;
    int proto;        /* MQTT_PROTOCOL_V5 or _V311: what mosq connects with */
    bool mosq_tls;    /* mosq is set up for TLS */
    bool next_311;    /* the broker just refused MQTT 5: the next attempt uses 3.1.1 */
    bool attempt;     /* an attempt (or a connection) is under way: lost() has not run for it */
    bool answered;    /* this attempt got a CONNACK */
    bool refused_5;   /* this attempt's CONNACK refused the protocol version */
    bool sub_refused; /* a SUBACK refused one of our subscriptions: error says which */
    int sub_mid;      /* the message id of the subscription to sub_topic */
    int64_t attempt_at, connected_at; /* loop time (ms) */
    uv_poll_t *poll;                  /* on mosquitto's socket, while one is open */
    int fd;
    uv_timer_t *tick;  /* keepalive, reconnect, status */
    uv_timer_t *flush; /* pending pts batches */
    uv_timer_t *probe; /* next probe (downstream) */
    bool connected, stopping, flush_armed;
    bool reached; /* this attempt's TCP connection came up (a later drop was a refusal) */
    bool held;    /* not reading from the broker: the store is SYNC_BACKLOG_MAX rows behind */
    bool denied;  /* the broker refused us (CONNACK, TLS files): error holds the reason */
    int64_t reconnect_at, backoff_ms, last_status;
    sync_peer_t **peers;
    size_t npeers, cappeers;
    sprig_bus_sub_t *sub;
    const char *state;
    char error[512];
    uint64_t sync_count, repair_count, bytes_up, bytes_down, refused;
    uint64_t kind_bytes[2][SYNC_KINDS]; /* [0] sent, [1] received, by sync__kinds */
    int64_t last_sync;
    char sub_topic[320], status_topic[320], hist_topic[320];
    struct sync_ack *acks; /* upstream: history acks waiting for their batch on disk */
};

/* An upstream's acknowledgement of a history batch, sent once its batch is durable. */
typedef struct sync_ack {
    struct sync_ack *next;
    sprig_sync_t *s; /* NULL once the link stopped */
    char device[SPRIG_ID_MAX + 1];
    int64_t upto;
} sync_ack_t;

/* sync.c */
void sync__send(sync_peer_t *p, sbuf_t *msg); /* publishes msg (consumed) to the peer */
/* Starts a message of type t for p: {"t":"T","seq":"N", (caller adds fields and "}"). */
void sync__begin(sync_peer_t *p, sbuf_t *b, const char *t);
sprig_node_t *sync__peer_root(sync_peer_t *p);
bool sync__in_subtree(sync_peer_t *p, const sprig_node_t *n);
void sync__refuse(sync_peer_t *p, const char *fmt, ...);
void sync__repair_activity(sync_peer_t *p);

const char *sync__who(const sprig_sync_t *s);
sync_peer_t *sync__peer_add(sprig_sync_t *s, const char *device);
void sync__on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg);
void sync__on_change(const sprig_event_t *ev, void *arg); /* the bus: forward a change */
void sync__flush_peer(sync_peer_t *p);
void sync__on_probe_timer(uv_timer_t *t);
void sync__status_write(sprig_sync_t *s); /* downstream: the sync node's status points */
sync_peer_t *sync__peer_find(sprig_sync_t *s, const char *device);
/* Upstream: binds the peer to its root node (claim: the root its message names, NULL when
 * it names none) and makes that node under our root the first time it talks. 0, or
 * -EINVAL when the claim is refused (counted, logged; a probe is answered `refused`). */
/* The device id that syncs root node r here: its syncDevice point, else its own id
 * (sync_device.c, as are the binding and sync__in_subtree). */
const char *sync__bound_device(sprig_tree_t *t, const sprig_node_t *r);
int sync__ensure_device(sync_peer_t *p, const char *claim, bool probe);
/* sync_link.c */
void sync__on_poll(uv_poll_t *h, int status, int events);
/* The MQTT version of the connection in use ("5", "3.1.1"), "" while not connected. */
const char *sync__protocol(const sprig_sync_t *s);

/* sync_hist.c */
void sync__hist_pump(sync_peer_t *p);               /* downstream: the next batch */
void sync__on_hack(sync_peer_t *p, const cJSON *m); /* downstream: an acknowledgement */
int sync__on_hist(sync_peer_t *p, const cJSON *m);  /* upstream: a batch */
int64_t sync__hist_pending(sprig_sync_t *s);        /* downstream: rows not acknowledged */

/* sync_msg.c */
/* The message kinds the byte counters tell apart; the last, "other", takes the rest. */
extern const char *const sync__kinds[SYNC_KINDS];
/* Counts a message of len bytes sent (up = true) or received under its kind, read from
 * its first field ({"t":"KIND",...}), and in bytes_up or bytes_down. */
void sync__count(sprig_sync_t *s, bool up, const void *msg, size_t len);
/* Writes the counters by kind as the JSON text of the sync node's bytesByKind point:
 * {"up":{"pts":N,...},"down":{...}}, kinds with no bytes left out. */
void sync__kinds_json(const sprig_sync_t *s, char *out, size_t size);
/* Reads a point object of a message into out (strings borrowed from o). 0 or -EINVAL. */
int sync__point(const cJSON *o, sprig_point_t *out);
/* Sends `kids` / `node` for a node of the local tree. */
void sync__send_kids(sync_peer_t *p, sprig_node_t *n);
void sync__send_node(sync_peer_t *p, sprig_node_t *n);
/* Handles the repair messages; 0, or -EINVAL (refused, already counted). */
int sync__on_kids(sync_peer_t *p, const cJSON *m);
int sync__on_node(sync_peer_t *p, const cJSON *m);
int sync__on_need(sync_peer_t *p, const cJSON *m);

#endif
