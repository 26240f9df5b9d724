/* Sync over MQTT (DESIGN.md section 5). One link is one MQTT client on the loop (libmosquitto
 * driven through a uv_poll on its socket, never its own thread):
 *   - downstream: a gateway's link to its upstream, started for each `sync` node; it
 *     forwards the accepted changes of its tree (`pts` on sprig/<device>/up), applies the
 *     upstream's stream (sprig/<device>/down) through the write path, probes the hashes on
 *     connect and every period, and repairs a difference level by level;
 *   - upstream: `sprig run --serve-sync`; it keeps each device's tree under its own root,
 *     answers probes (`match`/`wait`), takes part in repair, forwards changes made here to
 *     the device they belong to, and refuses (and counts) a message that is malformed,
 *     oversized, replayed, or names a node outside the sending device's subtree.
 * A device id (topics, client id) may differ from the device's root id, which its root keeps
 * upstream: the downstream names its root in probes, and in pts until a probe of the
 * connection is answered (`root`); the upstream binds the device id to it (the root's local
 * point syncDevice, so it survives restarts) and refuses that root under any other device id,
 * answering such a probe `refused` with the reason, which the downstream shows on its sync
 * node (state error). A person moves a root to a new device id by setting syncDevice on the
 * upstream.
 * Loop thread only. */
#ifndef SPRIG_SYNC_H
#define SPRIG_SYNC_H

#include "sprig/core.h"

typedef struct sprig_sync sprig_sync_t;

typedef struct sprig_sync_opts {
    const char *uri;       /* mqtt://host:port or mqtts://host:port, or a comma-separated list
                              of them: the first is used, then the next when it is gone */
    const char *ca_file;   /* mqtts: the CA that signs the broker's certificate */
    const char *cert_file; /* mqtts: this client's certificate (optional) */
    const char *key_file;
    const char *username;
    const char *password;
    const char *prefix;    /* topic prefix; NULL: "sprig" */
    bool upstream;         /* serve devices rather than be one */
    const char *device_id; /* downstream: its id upstream; NULL: the root id */
    const char *node_id;   /* downstream: the sync node that gets the status points */
    double period_s;       /* downstream: between two probes; 0: 20 s */
    size_t max_msg;        /* largest message taken; 0: 4 MiB (repair lists a node's children in one
                              message) */
} sprig_sync_opts_t;

/* Starts a link (connecting in the background; when the broker in use is gone, moving to
 * the next of the list, with a backoff after each round of the whole list). Each
 * connection tries MQTT 5 first and falls back to 3.1.1 on a broker that refuses 5, then
 * starts with 3.1.1 on that broker for the life of the link. Returns 0 or -EINVAL (bad uri,
 * unreadable files) / -ENOMEM with err naming the option (and the element of a list). */
SPRIG_API int sprig_sync_start(sprig_core_t *core, const sprig_sync_opts_t *opts,
                               sprig_sync_t **out, sprig_error_t *err);
/* Publishes `offline`, disconnects and frees the link; NULL is a no-op. Run the loop
 * afterwards so its handles close. */
SPRIG_API void sprig_sync_stop(sprig_sync_t *s);

typedef struct sprig_sync_stats {
    const char *state;    /* connecting, syncing, insync, error */
    const char *broker;   /* the uri of the broker in use or being tried (valid while s is) */
    const char *protocol; /* the MQTT version in use: "5", "3.1.1", "" while not connected */
    uint64_t sync_count, repair_count, bytes_up, bytes_down, refused, peers;
    int64_t last_sync;
} sprig_sync_stats_t;
SPRIG_API void sprig_sync_stats(const sprig_sync_t *s, sprig_sync_stats_t *out);

#endif
