/* The core and its one write path: see core.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core_internal.h"
#include "sprig/alloc.h"
#include "sprig/check.h"
#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/util.h"

/* --- opening: load the store into the tree ------------------------------------------ */

/* Finds the root named in the store's metadata, or creates the root device of a new
 * database. */
static int open_root(sprig_core_t *c, const char *path, const char *root_id, sprig_error_t *err)
{
    int rc = sprig_store_meta_get(c->store, "root", c->root, sizeof(c->root));
    if (rc == 0) {
        sprig_node_t *root = sprig_tree_node(c->tree, c->root);
        if (root == NULL) {
            return sprig_error_set(err, SPRIG_ECORRUPT,
                                   "database %s: root node %s named in meta is missing", path,
                                   c->root);
        }
        sprig_tree_set_root(c->tree, root);
        return 0;
    }
    if (rc != -ENOENT) {
        return sprig_error_set(err, rc, "database %s: meta cannot be read: %s", path,
                               sprig_strerror(rc));
    }
    if (sprig_tree_node_count(c->tree) != 0) {
        return sprig_error_set(err, SPRIG_ECORRUPT, "database %s: has nodes but no root in meta",
                               path);
    }
    sprig_node_t *root;
    if (root_id != NULL) {
        snprintf(c->root, sizeof(c->root), "%s", root_id);
    }
    if ((root_id == NULL && (rc = sprig_uuid4(c->root)) != 0) ||
        (rc = sprig_tree_node_add(c->tree, c->root, "device", &root)) != 0 ||
        (rc = sprig_store_put_node(c->store, c->root, "device")) != 0 ||
        (rc = sprig_store_flush(c->store)) != 0 ||
        (rc = sprig_store_meta_set(c->store, "root", c->root)) != 0) {
        return sprig_error_set(err, rc, "database %s: cannot create the root node: %s", path,
                               sprig_strerror(rc));
    }
    sprig_tree_set_root(c->tree, root);
    sprig_log_info("database %s: new, root device %s", path, c->root);
    return 0;
}

/* The device whose tree holds node (its device root's id), "" for this instance's own:
 * the store's device column (DESIGN.md section 11). */
static const char *row_device(const char *node, void *arg)
{
    sprig_core_t *c = arg;
    const sprig_node_t *n = sprig_tree_node(c->tree, node);
    const sprig_node_t *d = n != NULL ? sprig_node_device(c->tree, n) : NULL;
    return d != NULL ? sprig_node_id(d) : "";
}

int sprig_core_open(uv_loop_t *loop, const sprig_core_opts_t *opts, sprig_core_t **out,
                    sprig_error_t *err)
{
    sprig_core_t *c = sprig_calloc(1, sizeof(*c));
    int rc;
    *out = NULL;
    if (c == NULL) {
        return sprig_error_set(err, -ENOMEM, "out of memory");
    }
    c->loop = loop;
    c->text_max = opts->text_max != 0 ? opts->text_max : SPRIG_TEXT_MAX_DEFAULT;
    sprig_hlc_init(&c->hlc, opts->drift_ns, opts->wall, opts->wall_arg);
    if (sprig_tree_open(&c->tree) != 0 || sprig_bus_open(&c->bus) != 0) {
        rc = sprig_error_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = sprig_store_open(opts->db_path, &opts->store, loop, &c->store, err)) != 0) {
        goto fail;
    }
    const char *db = sprig_store_name(c->store); /* a URI without its password */
    if (strcmp(sprig_store_backend(c->store), "postgresql") == 0) {
        sprig_store_set_device_fn(c->store, row_device, c); /* it keeps devices apart */
    }
    /* The rows go through the checks of `sprig store verify` (check.h): what it would
     * repair is left out here, and said once. */
    sprig_check_result_t res;
    if ((rc = sprig_check_load(c->store, c->tree, NULL, NULL, &res)) != 0) {
        rc = sprig_error_set(err, rc, "database %s: cannot be loaded: %s", db,
                             sprig_strerror(rc));
        goto fail;
    }
    /* A restart with a clock that went back must still write later times. */
    sprig_hlc_observe(&c->hlc, res.max_time);
    if ((rc = open_root(c, db, opts->root_id, err)) != 0) {
        goto fail;
    }
    if ((rc = sprig_tree_hash_rebuild(c->tree)) != 0) {
        rc = sprig_error_set(err, rc, "database %s: hashes cannot be built: %s", db,
                             sprig_strerror(rc));
        goto fail;
    }
    char sum[512];
    if (sprig_check_summary(&res, sum, sizeof(sum))) {
        bool uri = strstr(opts->db_path, "://") != NULL;
        sprig_log_warn("database %s: %s; to repair, stop sprig and run "
                       "`sprig store verify %s %s --fix`",
                       db, sum, uri ? "--store" : "--db", uri ? "URI" : db);
    }
    *out = c;
    return 0;
fail:
    sprig_store_close(c->store);
    c->store = NULL;
    sprig_core_close(c);
    return rc;
}

int sprig_core_close(sprig_core_t *c)
{
    if (c == NULL) {
        return 0;
    }
    sprig_free(c->rows);
    int rc = sprig_store_close(c->store);
    sprig_bus_close(c->bus);
    sprig_tree_close(c->tree);
    sprig_free(c);
    return rc;
}

static bool schema_local(const char *node_type, const char *point_type, void *arg)
{
    const sprig_core_t *c = arg;
    return c->schema != NULL && sprig_schema_is_local(c->schema, node_type, point_type);
}

void sprig_core_set_schema(sprig_core_t *c, const sprig_schema_t *schema)
{
    c->schema = schema;
    sprig_tree_set_local_fn(c->tree, schema != NULL ? schema_local : NULL, c);
    /* Which points are local may have changed: hashes follow. */
    sprig_tree_hash_rebuild(c->tree);
}

const sprig_schema_t *sprig_core_schema(const sprig_core_t *c)
{
    return c->schema;
}

int core__check_schema(sprig_core_t *c, const sprig_node_t *n, const sprig_point_t *pts,
                       size_t count, sprig_error_t *err)
{
    const sprig_schema_type_t *t =
        c->schema != NULL ? sprig_schema_type(c->schema, sprig_node_type(n)) : NULL;
    for (size_t i = 0; t != NULL && i < count; i++) {
        /* A driver-owned point is written by the node's own driver, or by the driver of a
         * live parent that serves it (a Modbus bus writes the values of its IOs). */
        const char *origin = pts[i].origin, *driver = NULL;
        if (origin != NULL && origin[0] != '\0' && strcmp(origin, sprig_node_id(n)) != 0) {
            for (sprig_edge_t *e = sprig_node_parents(n); e != NULL;
                 e = sprig_edge_next_parent(e)) {
                if (!sprig_edge_tombstone(e) &&
                    strcmp(sprig_node_id(sprig_edge_up(e)), origin) == 0) {
                    driver = origin;
                    break;
                }
            }
        }
        int rc = sprig_schema_check_point_as(t, sprig_node_id(n), driver, &pts[i], err);
        if (rc != 0) {
            return rc;
        }
        /* A rule writes data like a person, but not what configures the system: another
         * rule's code (its own too), a link's connection (DESIGN.md section 7). A person's
         * write pays nothing more; any other looks its origin up, and only a rule's looks
         * the point up in its type. */
        if (origin == NULL || origin[0] == '\0') {
            continue;
        }
        const sprig_node_t *by = sprig_tree_node(c->tree, origin);
        bool by_rule = by != NULL && strcmp(sprig_node_type(by), "rule") == 0;
        const sprig_schema_point_t *sp = by_rule ? sprig_schema_point(t, pts[i].type) : NULL;
        if (sp != NULL && sp->owner_people) {
            return sprig_error_set(err, -EINVAL,
                                   "node %s: point \"%s\" is changed by people only, not by "
                                   "rule \"%s\" (%s)",
                                   sprig_node_id(n), pts[i].type, origin, t->name);
        }
    }
    return 0;
}

sprig_tree_t *sprig_core_tree(sprig_core_t *c)
{
    return c->tree;
}

sprig_bus_t *sprig_core_bus(sprig_core_t *c)
{
    return c->bus;
}

sprig_store_t *sprig_core_store(sprig_core_t *c)
{
    return c->store;
}

sprig_hlc_t *sprig_core_hlc(sprig_core_t *c)
{
    return &c->hlc;
}

uv_loop_t *sprig_core_loop(sprig_core_t *c)
{
    return c->loop;
}

const char *sprig_core_root_id(const sprig_core_t *c)
{
    return c->root;
}

uint64_t sprig_core_batch(const sprig_core_t *c)
{
    return c->last_batch;
}

int sprig_core_when_durable(sprig_core_t *c, uint64_t batch, sprig_store_durable_cb cb, void *arg)
{
    return sprig_store_when_durable(c->store, batch, cb, arg);
}

void sprig_core_stats(const sprig_core_t *c, sprig_core_stats_t *out)
{
    *out = c->stats;
}

/* --- checks ------------------------------------------------------------------------- */

/* Quotes s for a message, cut to a readable length. */
static const char *quote(const char *s, char *buf, size_t n)
{
    size_t len = strlen(s);
    if (len + 3 > n) {
        snprintf(buf, n, "\"%.*s...\" (%zu bytes)", (int)(n > 40 ? n - 40 : 8), s, len);
    }
    else {
        snprintf(buf, n, "\"%s\"", s);
    }
    return buf;
}

static const char id_rule[] = "1-64 bytes of [A-Za-z0-9._:-]";

int core__find(sprig_core_t *c, const char *id, const char *role, sprig_node_t **out,
               sprig_error_t *err)
{
    char q[120];
    if (id == NULL || !sprig_id_valid(id)) {
        return sprig_error_set(err, -EINVAL, "%s id %s is not %s", role,
                               quote(id != NULL ? id : "", q, sizeof(q)), id_rule);
    }
    *out = sprig_tree_node(c->tree, id);
    if (*out == NULL) {
        return sprig_error_set(err, -ENOENT, "%s %s does not exist", role, id);
    }
    return 0;
}

int core__check_points(sprig_core_t *c, const char *what, const sprig_point_t *pts, size_t n,
                       sprig_error_t *err)
{
    char q[120];
    for (size_t i = 0; i < n; i++) {
        const sprig_point_t *p = &pts[i];
        if (p->type == NULL || !sprig_id_valid(p->type)) {
            return sprig_error_set(err, -EINVAL, "%s: point type %s is not %s", what,
                                   quote(p->type != NULL ? p->type : "", q, sizeof(q)), id_rule);
        }
        const char *key = p->key != NULL ? p->key : "0";
        if (!sprig_id_valid(key)) {
            return sprig_error_set(err, -EINVAL, "%s: point \"%s\" key %s is not %s", what, p->type,
                                   quote(key, q, sizeof(q)), id_rule);
        }
        if (p->origin != NULL && p->origin[0] != '\0' && !sprig_id_valid(p->origin)) {
            return sprig_error_set(err, -EINVAL, "%s: point \"%s\" origin %s is not %s", what,
                                   p->type, quote(p->origin, q, sizeof(q)), id_rule);
        }
        if (!isfinite(p->value)) {
            return sprig_error_set(err, -EINVAL, "%s: point \"%s\" value %f is not a finite number",
                                   what, p->type, p->value);
        }
        if (p->tombstone != 0 && p->tombstone != 1) {
            return sprig_error_set(err, -EINVAL, "%s: point \"%s\" tombstone %d is not 0 or 1",
                                   what, p->type, p->tombstone);
        }
        if (p->text != NULL) {
            size_t len = strlen(p->text);
            if (len > c->text_max) {
                return sprig_error_set(err, -EINVAL,
                                       "%s: point \"%s\" text of %zu bytes is over the limit of "
                                       "%zu bytes",
                                       what, p->type, len, c->text_max);
            }
            if (!sprig_utf8_valid(p->text, len)) {
                return sprig_error_set(err, -EINVAL, "%s: point \"%s\" text is not valid UTF-8",
                                       what, p->type);
            }
        }
        if (p->time != 0) {
            sprig_error_t e;
            int rc = sprig_hlc_check(&c->hlc, p->time, &e);
            if (rc != 0) {
                return sprig_error_set(err, rc, "%s: point \"%s\" %s", what, p->type, e.msg);
            }
        }
    }
    return 0;
}

/* --- applying ----------------------------------------------------------------------- */

/* The point as it will be stored: defaults filled, time from the HLC when not given. */
static void fill(sprig_core_t *c, const sprig_point_t *in, const char *origin, sprig_point_t *out)
{
    *out = *in;
    out->key = in->key != NULL ? in->key : "0";
    out->text = in->text != NULL ? in->text : "";
    out->origin = in->origin != NULL ? in->origin : (origin != NULL ? origin : "");
    /* One zero: SQLite stores a REAL -0.0 as the integer 0, so a -0 kept in the tree
     * would hash differently after a restart than before it. */
    if (out->value == 0) {
        out->value = 0;
    }
    if (in->time == 0) {
        out->time = sprig_hlc_now(&c->hlc);
    }
    else {
        sprig_hlc_observe(&c->hlc, in->time);
    }
}

/* A row for the store, with the event that follows it for a point: queued and published
 * at once, or held back while sprig_core_apply runs (then p is a copy of the point as
 * merged, its text owned by the row, as a later change of the list may replace the
 * tree's). */
typedef enum { ROW_NODE, ROW_EDGE, ROW_POINT, ROW_EDGE_POINT } row_kind_t;

typedef struct core_row {
    row_kind_t kind;
    sprig_node_t *node, *up; /* the node (an edge's child), and an edge's parent */
    sprig_point_t p;         /* ROW_POINT, ROW_EDGE_POINT: as merged */
    uint64_t hash;
    bool history;
    const void *source;
} core_row_t;

static void publish(sprig_core_t *c, const core_row_t *r, const sprig_point_t *p)
{
    sprig_event_t ev = {
        .node = sprig_node_id(r->node),
        .node_type = sprig_node_type(r->node),
        .edge_up = r->kind == ROW_EDGE_POINT ? sprig_node_id(r->up) : NULL,
        .point = p,
        .source = r->source,
        .batch = c->last_batch,
    };
    sprig_bus_publish(c->bus, &ev);
}

/* Queues the row for the store and publishes its point p: the tree's own point when the
 * row is emitted as it is merged (a subscriber that writes it again changes what later
 * subscribers read, never frees it under them), the row's copy when it was held back. */
static int emit(sprig_core_t *c, const core_row_t *r, const sprig_point_t *p)
{
    int rc;
    switch (r->kind) {
    case ROW_NODE:
        rc = sprig_store_put_node(c->store, sprig_node_id(r->node), sprig_node_type(r->node));
        break;
    case ROW_EDGE:
        rc = sprig_store_put_edge(c->store, sprig_node_id(r->up), sprig_node_id(r->node));
        break;
    case ROW_POINT:
        /* A point that came in on a link (sync) was sampled elsewhere: its history is
         * that instance's, uploaded on its own, so it is not appended here twice. A local
         * point (a counter, a status) has no history. */
        rc = sprig_store_put_point_ex(c->store, sprig_node_id(r->node), p, r->hash, r->history);
        break;
    default:
        rc = sprig_store_put_edge_point(c->store, sprig_node_id(r->up), sprig_node_id(r->node), p,
                                        r->hash);
        break;
    }
    if (rc != 0) {
        return rc;
    }
    c->last_batch = sprig_store_last_batch(c->store);
    if (r->kind == ROW_POINT || r->kind == ROW_EDGE_POINT) {
        publish(c, r, p);
    }
    return 0;
}

static void row_free_text(core_row_t *r)
{
    if ((r->kind == ROW_POINT || r->kind == ROW_EDGE_POINT) && r->p.text[0] != '\0') {
        sprig_free((char *)r->p.text);
    }
}

/* Emits r now, with held (the tree's point, NULL for a node or edge row), or holds it
 * back while sprig_core_apply runs. 0 or -ENOMEM. */
static int put_row(sprig_core_t *c, core_row_t *r, const sprig_point_t *held)
{
    if (!c->applying) {
        return emit(c, r, held);
    }
    if (sprig_grow((void **)&c->rows, &c->caprows, c->nrows + 1, sizeof(*c->rows)) != 0) {
        return -ENOMEM;
    }
    if ((r->kind == ROW_POINT || r->kind == ROW_EDGE_POINT) && r->p.text[0] != '\0' &&
        (r->p.text = sprig_strdup(r->p.text)) == NULL) {
        return -ENOMEM;
    }
    c->rows[c->nrows++] = *r;
    return 0;
}

int core__put_node(sprig_core_t *c, sprig_node_t *node)
{
    core_row_t r = {.kind = ROW_NODE, .node = node};
    return put_row(c, &r, NULL);
}

int core__put_edge(sprig_core_t *c, sprig_node_t *up, sprig_node_t *down)
{
    core_row_t r = {.kind = ROW_EDGE, .node = down, .up = up};
    return put_row(c, &r, NULL);
}

/* Stores and publishes held, the tree's point just merged into node (up NULL) or into the
 * edge up -> node. */
static int put_point(sprig_core_t *c, sprig_node_t *node, sprig_node_t *up,
                     const sprig_point_t *held, const void *source)
{
    core_row_t r = {
        .kind = up != NULL ? ROW_EDGE_POINT : ROW_POINT,
        .node = node,
        .up = up,
        .p = *held,
        .hash = sprig_tree_point_hash(held),
        .history = up == NULL && source == NULL && !sprig_tree_point_local(held),
        .source = source,
    };
    c->stats.accepted++;
    return put_row(c, &r, held);
}

int core__apply_node(sprig_core_t *c, sprig_node_t *node, const sprig_point_t *pts, size_t n,
                     const char *origin, const void *source)
{
    for (size_t i = 0; i < n; i++) {
        sprig_point_t p;
        fill(c, &pts[i], origin, &p);
        const sprig_point_t *held = NULL;
        int rc = sprig_tree_point_merge(c->tree, node, &p, &held);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            c->stats.stale++;
            continue;
        }
        if ((rc = put_point(c, node, NULL, held, source)) != 0) {
            return rc;
        }
    }
    return 0;
}

int core__apply_edge(sprig_core_t *c, sprig_node_t *up, sprig_node_t *down,
                     const sprig_point_t *pts, size_t n, const char *origin, const void *source)
{
    sprig_edge_t *e = sprig_tree_edge(c->tree, up, down);
    int rc;
    if (e == NULL) {
        if ((e = sprig_tree_edge_add(c->tree, up, down)) == NULL) {
            return -ENOMEM;
        }
        if ((rc = core__put_edge(c, up, down)) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < n; i++) {
        sprig_point_t p;
        fill(c, &pts[i], origin, &p);
        const sprig_point_t *held = NULL;
        rc = sprig_tree_edge_point_merge(c->tree, e, &p, &held);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            c->stats.stale++;
            continue;
        }
        if ((rc = put_point(c, down, up, held, source)) != 0) {
            return rc;
        }
    }
    return 0;
}

int sprig_core_write(sprig_core_t *c, const char *node, const sprig_point_t *pts, size_t n,
                     const void *source, sprig_error_t *err)
{
    sprig_node_t *nd;
    char what[SPRIG_ID_MAX + 8];
    int rc = core__find(c, node, "node", &nd, err);
    if (rc == 0) {
        snprintf(what, sizeof(what), "node %s", node);
        rc = core__check_points(c, what, pts, n, err);
    }
    if (rc == 0) {
        rc = core__check_schema(c, nd, pts, n, err);
    }
    if (rc != 0) {
        c->stats.refused++;
        return rc;
    }
    return core__apply_node(c, nd, pts, n, NULL, source);
}

/* --- a list of changes as one write --------------------------------------------------- */

static int apply_one(sprig_core_t *c, const sprig_core_change_t *ch, const void *source,
                     sprig_error_t *err)
{
    switch (ch->kind) {
    case SPRIG_CHANGE_NODE:
        /* A node new here must be of a declared type; one that exists keeps its type. */
        if (ch->node != NULL && sprig_id_valid(ch->node) && ch->type != NULL &&
            sprig_id_valid(ch->type) && sprig_tree_node(c->tree, ch->node) == NULL) {
            int rc = core__check_type(c, ch->node, ch->type, err);
            if (rc != 0) {
                return rc;
            }
        }
        return sprig_core_add_node(c, ch->node, ch->type, err);
    case SPRIG_CHANGE_EDGE:
        return sprig_core_write_edge(c, ch->up, ch->node, ch->pts, ch->n, source, err);
    case SPRIG_CHANGE_POINTS:
        return sprig_core_write(c, ch->node, ch->pts, ch->n, source, err);
    }
    return sprig_error_set(err, -EINVAL, "change kind %d is not a node, edge or points",
                           (int)ch->kind);
}

/* Hands the rows held back by this apply to the caller (count in *n), who frees them. */
static core_row_t *take_rows(sprig_core_t *c, size_t *n)
{
    core_row_t *rows = c->rows;
    *n = c->nrows;
    c->rows = NULL;
    c->nrows = c->caprows = 0;
    return rows;
}

int sprig_core_apply(sprig_core_t *c, const sprig_core_change_t *changes, size_t n,
                     const void *source, sprig_error_t *err)
{
    sprig_error_t scratch;
    err = err != NULL ? err : &scratch;
    if (c->applying || sprig_tree_begin(c->tree) != 0) {
        return sprig_error_set(err, -EBUSY, "a list of changes is being applied already");
    }
    sprig_core_stats_t stats = c->stats;
    int64_t clock = c->hlc.last;
    int rc = 0;
    size_t i = 0;
    c->applying = true;
    for (; i < n && rc == 0; i++) {
        rc = apply_one(c, &changes[i], source, err);
    }
    c->applying = false;
    size_t nrows;
    core_row_t *rows = take_rows(c, &nrows);
    if (rc != 0) {
        sprig_tree_rollback(c->tree);
        for (size_t k = 0; k < nrows; k++) {
            row_free_text(&rows[k]);
        }
        sprig_free(rows);
        c->stats = stats;
        c->stats.refused++;
        c->hlc.last = clock;
        const char *label = changes[i - 1].label;
        if (label != NULL) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            sprig_error_set(err, rc, "%s: %s", label, msg);
        }
        return rc;
    }
    sprig_tree_commit(c->tree);
    /* The list is in the tree: now the store and the bus, in list order. A subscriber may
     * write (or apply a list) from its callback: the rows are this call's alone. */
    size_t k = 0;
    for (; k < nrows && rc == 0; k++) {
        rc = emit(c, &rows[k], &rows[k].p);
    }
    if (rc != 0) {
        sprig_log_error("store: %zu of %zu rows of an applied list could not be queued: %s",
                        nrows - k + 1, nrows, sprig_strerror(rc));
        sprig_error_set(err, rc,
                        "the changes were applied, but %zu of %zu store rows could "
                        "not be queued: %s",
                        nrows - k + 1, nrows, sprig_strerror(rc));
    }
    for (k = 0; k < nrows; k++) {
        row_free_text(&rows[k]);
    }
    sprig_free(rows);
    return rc;
}
