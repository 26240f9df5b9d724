/* The tree as one JSON document (sprig/exchange.h): export walks the tree, import reads
 * and checks the whole document into one list of changes that the core applies all or
 * nothing (sprig_core_apply), so no refusal, wherever it is found, leaves part of it. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/exchange.h"
#include "sprig/json.h"
#include "sprig/util.h"

/* The longest list of points one item may bring: the API's limit for a single write. */
#define MAX_POINTS 100000

/* --- export ------------------------------------------------------------------------- */

/* Adds "points": [...] for the list p to o; false when out of memory. */
static bool add_points(cJSON *o, const sprig_point_t *p)
{
    cJSON *a = cJSON_AddArrayToObject(o, "points");
    for (; a != NULL && p != NULL; p = sprig_point_next(p)) {
        cJSON *po = sprig_json_from_point(p);
        if (po == NULL || !cJSON_AddItemToArray(a, po)) {
            cJSON_Delete(po);
            return false;
        }
    }
    return a != NULL;
}

/* Adds node n to lists[0] and each of its child edges to lists[1]. Each object joins its
 * list before it is filled, so a failure leaves nothing the caller cannot free. Returns 0,
 * or -ENOMEM, which stops the walk. */
static int export_one(sprig_node_t *n, void *arg)
{
    cJSON **lists = arg;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToArray(lists[0], o)) {
        cJSON_Delete(o);
        return -ENOMEM;
    }
    if (cJSON_AddStringToObject(o, "id", sprig_node_id(n)) == NULL ||
        cJSON_AddStringToObject(o, "type", sprig_node_type(n)) == NULL ||
        !add_points(o, sprig_node_points(n))) {
        return -ENOMEM;
    }
    for (sprig_edge_t *e = sprig_node_children(n); e != NULL; e = sprig_edge_next_child(e)) {
        cJSON *eo = cJSON_CreateObject();
        if (eo == NULL || !cJSON_AddItemToArray(lists[1], eo)) {
            cJSON_Delete(eo);
            return -ENOMEM;
        }
        if (cJSON_AddStringToObject(eo, "up", sprig_node_id(n)) == NULL ||
            cJSON_AddStringToObject(eo, "down", sprig_node_id(sprig_edge_down(e))) == NULL ||
            !add_points(eo, sprig_edge_points(e))) {
            return -ENOMEM;
        }
    }
    return 0;
}

cJSON *sprig_export_json(sprig_core_t *core)
{
    sprig_tree_t *tree = sprig_core_tree(core);
    cJSON *lists[2] = {NULL, NULL};
    char hash[17];
    snprintf(hash, sizeof(hash), "%016" PRIx64, sprig_tree_root_hash(tree));
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddStringToObject(o, "root", sprig_core_root_id(core)) == NULL ||
        cJSON_AddStringToObject(o, "hash", hash) == NULL ||
        (lists[0] = cJSON_AddArrayToObject(o, "nodes")) == NULL ||
        (lists[1] = cJSON_AddArrayToObject(o, "edges")) == NULL ||
        sprig_tree_each_node(tree, export_one, lists) != 0) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* --- import ------------------------------------------------------------------------- */

/* A node id of the document, with its place in the "nodes" list. */
typedef struct doc_id {
    const char *id;
    int index;
} doc_id_t;

/* One import: the core, the document's root id (NULL: none given), the document's node
 * ids sorted (borrowed from the document), the list of changes being built (each with
 * its label and its points, owned) and where errors go. */
typedef struct import {
    sprig_core_t *core;
    sprig_tree_t *tree;
    const char *doc_root;
    doc_id_t *ids;
    size_t nids;
    sprig_core_change_t *changes;
    char (*labels)[32];
    size_t nchanges;
    long npoints;
    sprig_error_t *err;
} import_t;

/* The document's root maps onto this instance's root. */
static const char *map_root(const import_t *im, const char *id)
{
    return im->doc_root != NULL && strcmp(id, im->doc_root) == 0 ? sprig_core_root_id(im->core)
                                                                 : id;
}

static int cmp_id(const void *a, const void *b)
{
    const doc_id_t *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

static bool in_document(const import_t *im, const char *id)
{
    doc_id_t key = {id, -1};
    size_t lo = 0, hi = im->nids;
    while (lo < hi) { /* the first entry not below key: ids sort by (id, index) */
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_id(&im->ids[mid], &key) < 0) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo < im->nids && strcmp(im->ids[lo].id, id) == 0;
}

/* Reads the array of points j (NULL: none) into *out, a new array the caller frees with
 * sprig_free even when it is empty; strings are borrowed from j. `what` names the list in
 * errors. Returns 0, -EINVAL, -E2BIG (over MAX_POINTS) or -ENOMEM. */
static int read_points(const cJSON *j, const char *what, sprig_point_t **out, size_t *n,
                       sprig_error_t *err)
{
    char label[96];
    *out = NULL;
    *n = 0;
    if (j != NULL && !cJSON_IsArray(j)) {
        return sprig_error_set(err, -EINVAL, "%s must be an array of points", what);
    }
    int count = j != NULL ? cJSON_GetArraySize(j) : 0;
    if (count > MAX_POINTS) {
        return sprig_error_set(err, -E2BIG, "%s has %d points, over the limit of %d", what, count,
                               MAX_POINTS);
    }
    sprig_point_t *pts = sprig_calloc((size_t)count + 1, sizeof(*pts));
    if (pts == NULL) {
        return sprig_error_set(err, -ENOMEM, "out of memory");
    }
    int i = 0;
    for (const cJSON *p = j != NULL ? j->child : NULL; p != NULL; p = p->next, i++) {
        snprintf(label, sizeof(label), "%s[%d]", what, i);
        int rc = sprig_json_to_point(p, label, &pts[i], err);
        if (rc != 0) {
            sprig_free(pts);
            return rc;
        }
    }
    *out = pts;
    *n = (size_t)count;
    return 0;
}

/* Appends a change to the list, labelled "list[i]" plus suffix; it takes pts. */
static void add_change(import_t *im, const sprig_core_change_t *ch, const char *list, int i,
                       const char *suffix)
{
    size_t k = im->nchanges++;
    im->changes[k] = *ch;
    snprintf(im->labels[k], sizeof(im->labels[k]), "%s[%d]%s", list, i, suffix);
    im->changes[k].label = im->labels[k];
    im->npoints += (long)ch->n;
}

/* Checks item i of "nodes" (edges false) or "edges" without changing anything, and
 * appends its change: a node, or an edge with its points. A node's points are read into
 * *pts (n in *npts) for the list's end, after every edge, so that a point owned by a
 * driver finds the parent that the document links. Returns 0 or -errno with im->err. */
static int read_item(import_t *im, bool edges, const cJSON *it, int i, sprig_point_t **pts,
                     size_t *npts)
{
    const char *list = edges ? "edges" : "nodes";
    const char *fa = edges ? "up" : "id", *fb = edges ? "down" : "type";
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(it, fa);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(it, fb);
    char label[48];
    int rc;
    if (!cJSON_IsString(a) || !cJSON_IsString(b)) {
        return sprig_error_set(im->err, -EINVAL, "%s[%d] must have string \"%s\" and \"%s\"", list,
                               i, fa, fb);
    }
    const char *names[2] = {a->valuestring, b->valuestring};
    for (int k = 0; k < 2; k++) {
        if (!sprig_id_valid(names[k])) {
            return sprig_error_set(im->err, -EINVAL,
                                   "%s[%d].%s \"%.64s\" is not 1-64 bytes of [A-Za-z0-9._:-]", list,
                                   i, k == 0 ? fa : fb, names[k]);
        }
        if (edges && sprig_tree_node(im->tree, map_root(im, names[k])) == NULL &&
            !in_document(im, names[k])) {
            return sprig_error_set(im->err, -ENOENT,
                                   "%s[%d].%s names node %s, which is neither in the document "
                                   "nor in this tree",
                                   list, i, k == 0 ? fa : fb, names[k]);
        }
    }
    snprintf(label, sizeof(label), "%s[%d].points", list, i);
    if ((rc = read_points(cJSON_GetObjectItemCaseSensitive(it, "points"), label, pts, npts,
                          im->err)) != 0) {
        return rc;
    }
    const char *id = map_root(im, names[0]);
    if (edges) {
        sprig_core_change_t ch = {.kind = SPRIG_CHANGE_EDGE,
                                  .up = id,
                                  .node = map_root(im, names[1]),
                                  .pts = *pts,
                                  .n = *npts};
        add_change(im, &ch, list, i, "");
        *pts = NULL;
        return 0;
    }
    sprig_node_t *node = sprig_tree_node(im->tree, id);
    if (node != NULL && strcmp(sprig_node_type(node), names[1]) != 0 &&
        node != sprig_tree_root(im->tree)) {
        return sprig_error_set(im->err, -EEXIST,
                               "nodes[%d]: node %s exists here with type %s, not %s", i, names[0],
                               sprig_node_type(node), names[1]);
    }
    /* A node new here must bring its schema's required points. */
    const sprig_schema_t *schema = sprig_core_schema(im->core);
    const sprig_schema_type_t *t =
        schema != NULL && node == NULL ? sprig_schema_type(schema, names[1]) : NULL;
    if (t != NULL && (rc = sprig_schema_check_required(t, names[0], *pts, *npts, im->err)) != 0) {
        char msg[sizeof(im->err->msg)];
        snprintf(msg, sizeof(msg), "%s", im->err->msg);
        return sprig_error_set(im->err, rc, "nodes[%d]: %s", i, msg);
    }
    /* The root exists already, whatever type the document gives it. */
    if (strcmp(id, sprig_core_root_id(im->core)) != 0) {
        sprig_core_change_t ch = {.kind = SPRIG_CHANGE_NODE, .node = id, .type = names[1]};
        add_change(im, &ch, list, i, "");
    }
    return 0;
}

/* Fills im->ids with the document's node ids, sorted; a node listed twice is refused. */
static int read_ids(import_t *im, const cJSON *list_nodes)
{
    int i = 0;
    for (const cJSON *it = list_nodes->child; it != NULL; it = it->next, i++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsString(id)) {
            im->ids[im->nids++] = (doc_id_t){id->valuestring, i};
        }
    }
    qsort(im->ids, im->nids, sizeof(*im->ids), cmp_id);
    for (size_t k = 1; k < im->nids; k++) {
        if (strcmp(im->ids[k].id, im->ids[k - 1].id) == 0) {
            return sprig_error_set(im->err, -EEXIST,
                                   "nodes[%d]: node %.64s is listed twice (also nodes[%d]); a "
                                   "document names each node once",
                                   im->ids[k].index, im->ids[k].id, im->ids[k - 1].index);
        }
    }
    return 0;
}

int sprig_import_json(sprig_core_t *core, const cJSON *doc, long *nodes, long *points,
                      sprig_error_t *err)
{
    sprig_error_t scratch;
    import_t im = {
        .core = core, .tree = sprig_core_tree(core), .err = err != NULL ? err : &scratch};
    int rc = 0;
    im.err->msg[0] = '\0';
    if (nodes != NULL) {
        *nodes = 0;
    }
    if (points != NULL) {
        *points = 0;
    }
    const cJSON *root = cJSON_GetObjectItemCaseSensitive(doc, "root");
    const cJSON *list_nodes = cJSON_GetObjectItemCaseSensitive(doc, "nodes");
    const cJSON *list_edges = cJSON_GetObjectItemCaseSensitive(doc, "edges");
    if (!cJSON_IsObject(doc) || !cJSON_IsArray(list_nodes) ||
        (list_edges != NULL && !cJSON_IsArray(list_edges))) {
        return sprig_error_set(im.err, -EINVAL,
                               "body must be {\"root\": id, \"nodes\": [...], \"edges\": [...]}");
    }
    im.doc_root = cJSON_IsString(root) ? root->valuestring : NULL;
    size_t nn = (size_t)cJSON_GetArraySize(list_nodes);
    size_t ne = list_edges != NULL ? (size_t)cJSON_GetArraySize(list_edges) : 0;
    /* Each node's points wait in node_pts[i] for the end of the list. */
    sprig_point_t **node_pts = sprig_calloc(nn + 1, sizeof(*node_pts));
    size_t *node_npts = sprig_calloc(nn + 1, sizeof(*node_npts));
    im.ids = sprig_calloc(nn + 1, sizeof(*im.ids));
    im.changes = sprig_calloc(2 * nn + ne + 1, sizeof(*im.changes));
    im.labels = sprig_calloc(2 * nn + ne + 1, sizeof(*im.labels));
    if (node_pts == NULL || node_npts == NULL || im.ids == NULL || im.changes == NULL ||
        im.labels == NULL) {
        rc = sprig_error_set(im.err, -ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = read_ids(&im, list_nodes)) != 0) {
        goto done;
    }
    int i = 0;
    for (const cJSON *it = list_nodes->child; it != NULL && rc == 0; it = it->next, i++) {
        rc = read_item(&im, false, it, i, &node_pts[i], &node_npts[i]);
    }
    i = 0;
    for (const cJSON *it = list_edges != NULL ? list_edges->child : NULL; it != NULL && rc == 0;
         it = it->next, i++) {
        sprig_point_t *pts = NULL;
        size_t n = 0;
        rc = read_item(&im, true, it, i, &pts, &n);
        sprig_free(pts);
    }
    i = 0;
    for (const cJSON *it = list_nodes->child; it != NULL && rc == 0; it = it->next, i++) {
        if (node_npts[i] > 0) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
            sprig_core_change_t ch = {.kind = SPRIG_CHANGE_POINTS,
                                      .node = map_root(&im, id->valuestring),
                                      .pts = node_pts[i],
                                      .n = node_npts[i]};
            add_change(&im, &ch, "nodes", i, ".points");
        }
    }
    if (rc == 0) {
        rc = sprig_core_apply(core, im.changes, im.nchanges, NULL, im.err);
    }
    if (rc == 0) {
        if (nodes != NULL) {
            *nodes = (long)nn;
        }
        if (points != NULL) {
            *points = im.npoints;
        }
    }
done:
    for (size_t k = 0; k < im.nchanges; k++) {
        if (im.changes[k].kind != SPRIG_CHANGE_POINTS) {
            sprig_free((sprig_point_t *)im.changes[k].pts);
        }
    }
    for (size_t k = 0; node_pts != NULL && k < nn; k++) {
        sprig_free(node_pts[k]);
    }
    sprig_free(node_pts);
    sprig_free(node_npts);
    sprig_free(im.ids);
    sprig_free(im.changes);
    sprig_free(im.labels);
    return rc;
}
