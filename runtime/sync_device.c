/* Sync's devices, upstream: which root node a device id syncs (the binding kept in the
 * root's local point syncDevice, DESIGN.md section 5), the claims a device makes and their
 * refusals, and whether a node lies in a device's tree. See sync.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sprig/log.h"
#include "sync_internal.h"

/* --- which root a device id syncs (upstream) ------------------------------------------ */

/* The device id that syncs root node r here: its local point syncDevice, else its own id
 * (a root that has synced only under its own id, or before device ids could differ). */
const char *sync__bound_device(sprig_tree_t *t, const sprig_node_t *r)
{
    const sprig_point_t *pt = sprig_tree_point(t, r, "syncDevice", "0");
    return pt != NULL && !pt->tombstone && pt->text[0] != '\0' ? pt->text : sprig_node_id(r);
}

/* True when n hangs from our root by a live edge (a device here, not deleted). */
static bool live_device(sprig_tree_t *t, const sprig_node_t *n)
{
    sprig_node_t *root = sprig_tree_root(t);
    for (sprig_edge_t *e = sprig_node_parents(n); e != NULL; e = sprig_edge_next_parent(e)) {
        if (sprig_edge_up(e) == root && !sprig_edge_tombstone(e)) {
            return true;
        }
    }
    return false;
}

/* The live device root that names `device` in its syncDevice point, or NULL. */
static sprig_node_t *root_bound_to(sprig_tree_t *t, const char *device)
{
    sprig_node_t *root = sprig_tree_root(t);
    for (sprig_edge_t *e = sprig_node_children(root); e != NULL; e = sprig_edge_next_child(e)) {
        sprig_node_t *d = sprig_edge_down(e);
        const sprig_point_t *pt = sprig_tree_point(t, d, "syncDevice", "0");
        if (!sprig_edge_tombstone(e) && pt != NULL && !pt->tombstone &&
            strcmp(pt->text, device) == 0) {
            return d;
        }
    }
    return NULL;
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

/* Upstream: a claim refused. A probe is answered with `refused` and the reason, so the
 * gateway's sync node shows it (state error); other messages are only counted. */
static int refuse_claim(sync_peer_t *p, bool probe, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sync__refuse(p, "%s", msg);
    if (probe) {
        sbuf_t b = {0};
        sync__begin(p, &b, "refused");
        sb_str(&b, ",\"error\":");
        sb_json(&b, msg);
        sb_str(&b, "}");
        sync__send(p, &b);
    }
    return -EINVAL;
}

/* Upstream: binds a device id to its root node (DESIGN.md section 5: the root keeps its id
 * here, whatever device id names the topics). The root a device syncs is the one its
 * messages name (`root`), else the one bound to it before (kept in the store as the root's
 * local point syncDevice), else an existing node with the device's own id (a store from
 * before roots were named); a device that names none of these is refused. A live root bound
 * to another device id is refused: the upstream cannot tell a second gateway claiming it (a
 * spoof) from a gateway whose deviceId changed, so a person moves it by setting syncDevice
 * on the root here; from then on the old device id is refused for it. A device id bound to
 * one live root that names another is refused too (delete the old root here first), and so
 * is a root that is a node inside a device's tree or our own root. */
int sync__ensure_device(sync_peer_t *p, const char *claim, bool probe)
{
    sprig_core_t *c = p->s->core;
    sprig_tree_t *t = sprig_core_tree(c);
    sprig_error_t err;
    const char *want = claim;
    if (want == NULL && p->root[0] != '\0') {
        want = p->root;
    }
    if (want == NULL) {
        sprig_node_t *r = root_bound_to(t, p->device);
        want = r != NULL ? sprig_node_id(r) : p->device;
        if (r == NULL && sprig_tree_node(t, want) == NULL) {
            /* Nothing made for a device that has not named its root (its probe does). */
            return refuse_claim(p, probe, "device %s has not named its root yet", p->device);
        }
    }
    sprig_node_t *d = sprig_tree_node(t, want);
    if (d != NULL && strcmp(sprig_node_type(d), "device") != 0) {
        return refuse_claim(p, probe, "root %s: node %s exists here with type %s, not device", want,
                            want, sprig_node_type(d));
    }
    for (sprig_edge_t *e = d != NULL ? sprig_node_parents(d) : NULL; e != NULL;
         e = sprig_edge_next_parent(e)) {
        if (sprig_edge_up(e) != sprig_tree_root(t)) {
            return refuse_claim(p, probe,
                                "root %s: node %s is inside the tree of %s here, not a "
                                "device's root",
                                want, want, sprig_node_id(sprig_edge_up(e)));
        }
    }
    if (d != NULL && d == sprig_tree_root(t)) {
        return refuse_claim(p, probe, "root %s is this upstream's own root", want);
    }
    if (d != NULL && live_device(t, d)) {
        const char *owner = sync__bound_device(t, d);
        if (strcmp(owner, p->device) != 0) {
            return refuse_claim(p, probe,
                                "device %s names root %s, which syncs here as device %s: a "
                                "second gateway with that root is refused; if its deviceId "
                                "changed, run `sprig point set %s syncDevice %s --text` on the "
                                "upstream",
                                p->device, want, owner, want, p->device);
        }
    }
    else {
        sprig_node_t *other = root_bound_to(t, p->device);
        if (other != NULL) {
            return refuse_claim(p, probe,
                                "device %s names root %s, but it syncs root %s here: delete "
                                "node %s on the upstream first if the gateway was replaced",
                                p->device, want, sprig_node_id(other), sprig_node_id(other));
        }
        sprig_point_t live = {.type = "tombstone", .value = 0};
        if ((d == NULL && sprig_core_add_node(c, want, "device", &err) != 0) ||
            sprig_core_write_edge(c, sprig_core_root_id(c), want, &live, 1, p, &err) != 0) {
            sprig_log_error("sync upstream: device %s (root %s) cannot be added: %s", p->device,
                            want, err.msg);
            return -EINVAL;
        }
        d = sprig_tree_node(t, want);
        sprig_log_info("sync upstream: device %s joined with root %s", p->device, want);
    }
    const sprig_point_t *bound = sprig_tree_point(t, d, "syncDevice", "0");
    if (bound == NULL || bound->tombstone || strcmp(bound->text, p->device) != 0) {
        sprig_point_t pt = {.type = "syncDevice", .text = p->device};
        if (sprig_core_write(c, want, &pt, 1, p, &err) != 0) {
            sprig_log_warn("sync upstream: device %s: %s", p->device, err.msg);
        }
    }
    if (strcmp(p->root, want) != 0) {
        snprintf(p->root, sizeof(p->root), "%s", want);
        p->hist_loaded = false; /* the cursor is the root's */
    }
    return 0;
}
