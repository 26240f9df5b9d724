/* The tree as one JSON document (sprig/exchange.h): export walks the tree, import checks
 * the whole document before it applies any of it through the core's write path. */
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

/* One import: the core, the document's root id (NULL: none given), the document's node
 * ids sorted (borrowed from the document) and where errors go. */
typedef struct import {
    sprig_core_t *core;
    sprig_tree_t *tree;
    const char *doc_root;
    const char **ids;
    size_t nids;
    sprig_error_t *err;
} import_t;

/* The document's root maps onto this instance's root. */
static const char *map_root(const import_t *im, const char *id)
{
    return im->doc_root != NULL && strcmp(id, im->doc_root) == 0 ? sprig_core_root_id(im->core)
                                                                 : id;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
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

/* Checks item i of one list (pass 0 nodes, 1 edges, 2 node points) without changing
 * anything. Returns 0 or -errno with im->err filled. */
static int check_item(const import_t *im, int pass, const cJSON *it, int i)
{
    const char *list = pass == 1 ? "edges" : "nodes";
    const char *fa = pass == 1 ? "up" : "id", *fb = pass == 1 ? "down" : "type";
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(it, fa);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(it, fb);
    sprig_point_t *pts;
    size_t n;
    char label[160];
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
        if (pass == 1 && sprig_tree_node(im->tree, map_root(im, names[k])) == NULL &&
            bsearch(&names[k], im->ids, im->nids, sizeof(*im->ids), cmp_str) == NULL) {
            return sprig_error_set(im->err, -ENOENT,
                                   "%s[%d].%s names node %s, which is neither in the document "
                                   "nor in this tree",
                                   list, i, k == 0 ? fa : fb, names[k]);
        }
    }
    if (pass == 0) {
        sprig_node_t *node = sprig_tree_node(im->tree, map_root(im, names[0]));
        if (node != NULL && strcmp(sprig_node_type(node), names[1]) != 0 &&
            node != sprig_tree_root(im->tree)) {
            return sprig_error_set(im->err, -EEXIST,
                                   "nodes[%d]: node %s exists here with type %s, not %s", i,
                                   names[0], sprig_node_type(node), names[1]);
        }
        /* A node new here must bring its schema's required points. */
        const sprig_schema_t *schema = sprig_core_schema(im->core);
        const sprig_schema_type_t *t =
            schema != NULL && node == NULL ? sprig_schema_type(schema, names[1]) : NULL;
        if (t == NULL) {
            return 0;
        }
        snprintf(label, sizeof(label), "nodes[%d].points", i);
        rc = read_points(cJSON_GetObjectItemCaseSensitive(it, "points"), label, &pts, &n, im->err);
        if (rc != 0) {
            return rc;
        }
        rc = sprig_schema_check_required(t, names[0], pts, n, im->err);
        sprig_free(pts);
        return rc;
    }
    snprintf(label, sizeof(label), "%s[%d].points", list, i);
    rc = read_points(cJSON_GetObjectItemCaseSensitive(it, "points"), label, &pts, &n, im->err);
    if (rc != 0) {
        return rc;
    }
    rc = sprig_core_check(im->core, label, pts, n, im->err);
    sprig_free(pts);
    return rc;
}

/* Applies item it, already checked, of one list (pass as for check_item), counting its
 * node in *nn or its points in *np. Returns 0 or the core's code with im->err filled. */
static int apply_item(const import_t *im, int pass, const cJSON *it, long *nn, long *np)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(it, pass == 1 ? "up" : "id");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(it, pass == 1 ? "down" : "type");
    const char *id = map_root(im, a->valuestring);
    sprig_point_t *pts;
    size_t n;
    int rc;
    if (pass == 0) {
        /* The root exists already, whatever type the document gives it. */
        if (strcmp(id, sprig_core_root_id(im->core)) != 0 &&
            (rc = sprig_core_add_node(im->core, id, b->valuestring, im->err)) != 0) {
            return rc;
        }
        (*nn)++;
        return 0;
    }
    rc = read_points(cJSON_GetObjectItemCaseSensitive(it, "points"), "points", &pts, &n, im->err);
    if (rc != 0) {
        return rc;
    }
    rc = pass == 1 ? sprig_core_write_edge(im->core, id, map_root(im, b->valuestring), pts, n, NULL,
                                           im->err)
                   : sprig_core_write(im->core, id, pts, n, NULL, im->err);
    sprig_free(pts);
    if (rc == 0) {
        *np += (long)n;
    }
    return rc;
}

int sprig_import_json(sprig_core_t *core, const cJSON *doc, long *nodes, long *points,
                      sprig_error_t *err)
{
    sprig_error_t scratch;
    import_t im = {
        .core = core, .tree = sprig_core_tree(core), .err = err != NULL ? err : &scratch};
    long nn = 0, np = 0;
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
    im.ids = sprig_calloc((size_t)cJSON_GetArraySize(list_nodes) + 1, sizeof(*im.ids));
    if (im.ids == NULL) {
        return sprig_error_set(im.err, -ENOMEM, "out of memory");
    }
    for (const cJSON *it = list_nodes->child; it != NULL; it = it->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsString(id)) {
            im.ids[im.nids++] = id->valuestring;
        }
    }
    qsort(im.ids, im.nids, sizeof(*im.ids), cmp_str);
    /* Steps 0-2 check nodes, edges and node points; steps 3-5 apply them in that order. */
    for (int step = 0; step < 6 && rc == 0; step++) {
        int pass = step % 3;
        const cJSON *list = pass == 1 ? list_edges : list_nodes;
        int i = 0;
        for (const cJSON *it = list != NULL ? list->child : NULL; it != NULL && rc == 0;
             it = it->next, i++) {
            rc = step < 3 ? check_item(&im, pass, it, i) : apply_item(&im, pass, it, &nn, &np);
        }
    }
    sprig_free(im.ids);
    if (rc == 0) {
        if (nodes != NULL) {
            *nodes = nn;
        }
        if (points != NULL) {
            *points = np;
        }
    }
    return rc;
}
