/* The core's changes to the shape of the tree: creating nodes and writing edge points
 * (delete, move, mirror are tombstone points on edges). Same write path as core.c. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core_internal.h"
#include "sprig/err.h"
#include "sprig/merge.h"
#include "sprig/util.h"

/* Whether the edge up -> down is live once pts are applied: a missing edge starts live,
 * and the tombstone point that wins the merge decides. */
static bool live_after(sprig_tree_t *t, sprig_node_t *up, sprig_node_t *down,
                       const sprig_point_t *pts, size_t n)
{
    sprig_edge_t *e = sprig_tree_edge(t, up, down);
    const sprig_point_t *win = e != NULL ? sprig_edge_point(e, "tombstone", "0") : NULL;
    for (size_t i = 0; i < n; i++) {
        const sprig_point_t *p = &pts[i];
        const char *key = p->key != NULL ? p->key : "0";
        if (strcmp(p->type, "tombstone") != 0 || strcmp(key, "0") != 0) {
            continue;
        }
        sprig_point_t cand = *p;
        cand.key = key;
        cand.text = p->text != NULL ? p->text : "";
        cand.origin = p->origin != NULL ? p->origin : "";
        /* A local point without a time gets one from the HLC, later than any held. */
        if (p->time == 0 || win == NULL || sprig_merge_cmp(&cand, win) > 0) {
            win = p;
        }
    }
    return win == NULL || win->tombstone != 0 || win->value == 0;
}

static int check_cycle(sprig_core_t *c, sprig_node_t *up, sprig_node_t *down, sprig_error_t *err)
{
    sprig_edge_t *e = sprig_tree_edge(c->tree, up, down);
    if (e != NULL && !sprig_edge_tombstone(e)) {
        return 0; /* already live: nothing new */
    }
    if (sprig_tree_would_cycle(c->tree, up, down)) {
        return sprig_error_set(err, SPRIG_ECYCLE, "edge %s -> %s: would make a cycle (%s is %s %s)",
                               sprig_node_id(up), sprig_node_id(down), sprig_node_id(down),
                               up == down ? "the same node as" : "an ancestor of",
                               sprig_node_id(up));
    }
    return 0;
}

/* The schema's parents rule for a live edge up -> down (create checks it on its own). */
static int check_parent(sprig_core_t *c, sprig_node_t *up, sprig_node_t *down, sprig_error_t *err)
{
    const sprig_schema_type_t *t =
        c->schema != NULL ? sprig_schema_type(c->schema, sprig_node_type(down)) : NULL;
    return t != NULL ? sprig_schema_check_parent(t, sprig_node_id(down), sprig_node_type(up), err)
                     : 0;
}

int core__check_type(sprig_core_t *c, const char *id, const char *type, sprig_error_t *err)
{
    return c->schema != NULL ? sprig_schema_check_type(c->schema, id, type, err) : 0;
}

static int refused(sprig_core_t *c, int rc)
{
    c->stats.refused++;
    return rc;
}

int sprig_core_write_edge(sprig_core_t *c, const char *up, const char *down,
                          const sprig_point_t *pts, size_t n, const void *source,
                          sprig_error_t *err)
{
    sprig_node_t *u, *d;
    char what[2 * SPRIG_ID_MAX + 16];
    int rc;
    if ((rc = core__find(c, up, "parent", &u, err)) != 0 ||
        (rc = core__find(c, down, "node", &d, err)) != 0) {
        return refused(c, rc);
    }
    snprintf(what, sizeof(what), "edge %s -> %s", up, down);
    if ((rc = core__check_points(c, what, pts, n, err)) != 0) {
        return refused(c, rc);
    }
    if (live_after(c->tree, u, d, pts, n) &&
        ((rc = check_cycle(c, u, d, err)) != 0 || (rc = check_parent(c, u, d, err)) != 0)) {
        return refused(c, rc);
    }
    return core__apply_edge(c, u, d, pts, n, NULL, source);
}

int sprig_core_create(sprig_core_t *c, const char *id, const char *type, const char *parent,
                      const sprig_point_t *pts, size_t n, const char *origin, char *out_id,
                      sprig_error_t *err)
{
    char gen[37], what[SPRIG_ID_MAX + 8];
    sprig_node_t *up, *node;
    int rc;
    if (id == NULL) {
        if ((rc = sprig_uuid4(gen)) != 0) {
            return sprig_error_set(err, rc, "cannot generate a node id: %s", sprig_strerror(rc));
        }
        id = gen;
    }
    if (!sprig_id_valid(id)) {
        char q[100];
        snprintf(q, sizeof(q), "%.64s%s", id, strlen(id) > 64 ? "..." : "");
        return refused(c, sprig_error_set(err, -EINVAL,
                                          "node id \"%s\" (%zu bytes) is not 1-64 bytes of "
                                          "[A-Za-z0-9._:-]",
                                          q, strlen(id)));
    }
    if (type == NULL || !sprig_id_valid(type)) {
        return refused(c, sprig_error_set(err, -EINVAL,
                                          "node %s: type \"%.64s\" is not 1-64 bytes of "
                                          "[A-Za-z0-9._:-]",
                                          id, type != NULL ? type : ""));
    }
    if (sprig_tree_node(c->tree, id) != NULL) {
        return refused(c, sprig_error_set(err, -EEXIST, "node %s already exists", id));
    }
    if ((rc = core__check_type(c, id, type, err)) != 0 ||
        (rc = core__find(c, parent, "parent", &up, err)) != 0) {
        return refused(c, rc);
    }
    snprintf(what, sizeof(what), "node %s", id);
    if (origin != NULL && origin[0] != '\0' && !sprig_id_valid(origin)) {
        return refused(c, sprig_error_set(err, -EINVAL,
                                          "node %s: origin \"%.64s\" is not 1-64 "
                                          "bytes of [A-Za-z0-9._:-]",
                                          id, origin));
    }
    if ((rc = core__check_points(c, what, pts, n, err)) != 0) {
        return refused(c, rc);
    }
    /* The schema: parent type, required points, each point; then its defaults. */
    const sprig_schema_type_t *st = c->schema != NULL ? sprig_schema_type(c->schema, type) : NULL;
    sprig_point_t *all = NULL;
    size_t nall = n;
    if (st != NULL) {
        if ((rc = sprig_schema_check_create(st, id, sprig_node_type(up), pts, n, err)) != 0) {
            return refused(c, rc);
        }
        for (size_t i = 0; i < n; i++) {
            if ((rc = sprig_schema_check_point(st, id, &pts[i], err)) != 0) {
                return refused(c, rc);
            }
        }
        all = calloc(n + st->npoints + 1, sizeof(*all));
        if (all == NULL) {
            return -ENOMEM;
        }
        if (n > 0) {
            memcpy(all, pts, n * sizeof(*pts));
        }
        for (size_t i = 0; i < st->npoints; i++) {
            const sprig_schema_point_t *sp = &st->points[i];
            bool given = false;
            for (size_t k = 0; k < n && !given; k++) {
                given = strcmp(pts[k].type, sp->name) == 0;
            }
            if (sp->has_default && !given && !sp->owner_driver) {
                all[nall++] = (sprig_point_t){
                    .type = sp->name, .value = sp->default_value, .text = sp->default_text};
            }
        }
        pts = all;
    }
    if ((rc = sprig_tree_node_add(c->tree, id, type, &node)) != 0 ||
        (rc = core__put_node(c, node)) != 0) {
        free(all);
        return rc;
    }
    sprig_point_t live = {.type = "tombstone", .origin = origin};
    if ((rc = core__apply_edge(c, up, node, &live, 1, NULL, NULL)) != 0 ||
        (rc = core__apply_node(c, node, pts, nall, origin, NULL)) != 0) {
        free(all);
        return rc;
    }
    free(all);
    if (out_id != NULL) {
        snprintf(out_id, SPRIG_ID_MAX + 1, "%s", id);
    }
    return 0;
}

int sprig_core_add_node(sprig_core_t *c, const char *id, const char *type, sprig_error_t *err)
{
    if (id == NULL || !sprig_id_valid(id)) {
        return refused(c, sprig_error_set(err, -EINVAL,
                                          "node id \"%.64s\" is not 1-64 bytes of "
                                          "[A-Za-z0-9._:-]",
                                          id != NULL ? id : ""));
    }
    if (type == NULL || !sprig_id_valid(type)) {
        return refused(c, sprig_error_set(err, -EINVAL,
                                          "node %s: type \"%.64s\" is not 1-64 bytes of "
                                          "[A-Za-z0-9._:-]",
                                          id, type != NULL ? type : ""));
    }
    sprig_node_t *n = sprig_tree_node(c->tree, id);
    if (n != NULL) {
        if (strcmp(sprig_node_type(n), type) != 0) {
            return refused(c, sprig_error_set(err, -EEXIST, "node %s exists with type %s, not %s",
                                              id, sprig_node_type(n), type));
        }
        return 0;
    }
    int rc = sprig_tree_node_add(c->tree, id, type, &n);
    if (rc == 0) {
        rc = core__put_node(c, n);
    }
    return rc;
}

/* Finds the edge parent -> node and requires it to be live. */
static int live_edge(sprig_core_t *c, const char *node, const char *parent, sprig_node_t **n,
                     sprig_node_t **up, sprig_error_t *err)
{
    int rc;
    if ((rc = core__find(c, node, "node", n, err)) != 0 ||
        (rc = core__find(c, parent, "parent", up, err)) != 0) {
        return rc;
    }
    sprig_edge_t *e = sprig_tree_edge(c->tree, *up, *n);
    if (e == NULL || sprig_edge_tombstone(e)) {
        return sprig_error_set(err, -ENOENT, "node %s is not a child of %s", node, parent);
    }
    return 0;
}

int sprig_core_delete(sprig_core_t *c, const char *node, const char *parent, const char *origin,
                      sprig_error_t *err)
{
    sprig_node_t *n, *up;
    int rc = live_edge(c, node, parent, &n, &up, err);
    if (rc != 0) {
        return refused(c, rc);
    }
    sprig_point_t dead = {.type = "tombstone", .value = 1, .origin = origin};
    return core__apply_edge(c, up, n, &dead, 1, NULL, NULL);
}

int sprig_core_move(sprig_core_t *c, const char *node, const char *from, const char *to,
                    const char *origin, sprig_error_t *err)
{
    sprig_node_t *n, *up, *dest;
    int rc;
    if ((rc = live_edge(c, node, from, &n, &up, err)) != 0 ||
        (rc = core__find(c, to, "new parent", &dest, err)) != 0 ||
        (rc = check_cycle(c, dest, n, err)) != 0 || (rc = check_parent(c, dest, n, err)) != 0) {
        return refused(c, rc);
    }
    if (up == dest) {
        return 0;
    }
    sprig_point_t live = {.type = "tombstone", .origin = origin};
    sprig_point_t dead = {.type = "tombstone", .value = 1, .origin = origin};
    if ((rc = core__apply_edge(c, dest, n, &live, 1, NULL, NULL)) != 0) {
        return rc;
    }
    return core__apply_edge(c, up, n, &dead, 1, NULL, NULL);
}

int sprig_core_mirror(sprig_core_t *c, const char *node, const char *to, const char *origin,
                      sprig_error_t *err)
{
    sprig_node_t *n, *dest;
    int rc;
    if ((rc = core__find(c, node, "node", &n, err)) != 0 ||
        (rc = core__find(c, to, "new parent", &dest, err)) != 0) {
        return refused(c, rc);
    }
    sprig_edge_t *e = sprig_tree_edge(c->tree, dest, n);
    if (e != NULL && !sprig_edge_tombstone(e)) {
        return refused(c,
                       sprig_error_set(err, -EEXIST, "node %s is already a child of %s", node, to));
    }
    if ((rc = check_cycle(c, dest, n, err)) != 0 || (rc = check_parent(c, dest, n, err)) != 0) {
        return refused(c, rc);
    }
    sprig_point_t live = {.type = "tombstone", .origin = origin};
    return core__apply_edge(c, dest, n, &live, 1, NULL, NULL);
}
