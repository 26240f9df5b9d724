/* The checks of a store's rows on load: see check.h. They live apart from the store
 * (which knows nothing of trees) and from the core (so `sprig store verify` runs them on
 * a tree of its own, without a loop). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/check.h"
#include "sprig/hash.h"
#include "sprig/util.h"

/* Nodes left out, remembered (up to a bound) so their rows can say why they are left out
 * too. */
#define LEFT_OUT_MAX 256

typedef struct check_ctx {
    sprig_tree_t *tree;
    sprig_check_fn fn;
    void *arg;
    sprig_check_result_t *res;
    char *left_out[LEFT_OUT_MAX];
    size_t n_left_out;
    char what[1024];
} check_ctx_t;

/* Appends s to out (n bytes, holding a string) with bytes that are not printable ASCII
 * written \xNN, and quotes; truncates. */
static void put_esc(char *out, size_t n, const char *s)
{
    size_t len = strlen(out);
    if (len + 1 < n) {
        out[len++] = '"';
    }
    for (; *s != '\0' && len + 5 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            len += (size_t)snprintf(out + len, n - len, "\\x%02x", ch);
        }
        else {
            out[len++] = (char)ch;
        }
    }
    if (len + 1 < n) {
        out[len++] = '"';
    }
    out[len] = '\0';
}

/* Appends a printf-formatted text to out (n bytes). */
static void put_fmt(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put_fmt(char *out, size_t n, const char *fmt, ...)
{
    size_t len = strlen(out);
    va_list ap;
    va_start(ap, fmt);
    if (len < n) {
        vsnprintf(out + len, n - len, fmt, ap);
    }
    va_end(ap);
}

static void report(check_ctx_t *c, const sprig_check_problem_t *pr)
{
    c->res->count[pr->kind]++;
    if (c->fn != NULL) {
        c->fn(pr, c->arg);
    }
}

static bool was_left_out(const check_ctx_t *c, const char *id)
{
    for (size_t i = 0; i < c->n_left_out; i++) {
        if (strcmp(c->left_out[i], id) == 0) {
            return true;
        }
    }
    return false;
}

/* "node X" or "edge X -> Y" into c->what, ids escaped when they are not ids. */
static void name_row(check_ctx_t *c, const char *up, const char *id)
{
    c->what[0] = '\0';
    if (up != NULL) {
        put_fmt(c->what, sizeof(c->what), "edge ");
        put_esc(c->what, sizeof(c->what), up);
        put_fmt(c->what, sizeof(c->what), " -> ");
    }
    else {
        put_fmt(c->what, sizeof(c->what), "node ");
    }
    put_esc(c->what, sizeof(c->what), id);
}

/* Appends why the node named id is missing: left out above, or not in the table. */
static void put_missing(check_ctx_t *c, const char *id)
{
    put_fmt(c->what, sizeof(c->what), " names node ");
    put_esc(c->what, sizeof(c->what), id);
    put_fmt(c->what, sizeof(c->what),
            was_left_out(c, id) ? ", which is not valid (left out)" : ", which does not exist");
}

/* The first rule p breaks, appended to c->what; false when it breaks none. */
static bool point_broken(check_ctx_t *c, const sprig_point_t *p)
{
    char *w = c->what;
    size_t n = sizeof(c->what);
    if (!sprig_id_valid(p->type) || !sprig_id_valid(p->key)) {
        put_fmt(w, n, ": point type ");
        put_esc(w, n, p->type);
        put_fmt(w, n, " key ");
        put_esc(w, n, p->key);
        put_fmt(w, n, " is not 1-64 bytes of [A-Za-z0-9._:-]");
        return true;
    }
    put_fmt(w, n, ": point %s/%s", p->type, p->key);
    if (!isfinite(p->value)) {
        put_fmt(w, n, " value = %g is not a finite number", p->value);
    }
    else if (p->origin[0] != '\0' && !sprig_id_valid(p->origin)) {
        put_fmt(w, n, " origin ");
        put_esc(w, n, p->origin);
        put_fmt(w, n, " is not 1-64 bytes of [A-Za-z0-9._:-]");
    }
    else if (p->tombstone != 0 && p->tombstone != 1) {
        put_fmt(w, n, " tombstone = %d is not 0 or 1", p->tombstone);
    }
    else if (p->time <= 0) {
        put_fmt(w, n, " time = %" PRId64 " is not after 1970", p->time);
    }
    else {
        return false;
    }
    return true;
}

static int c_node(const char *id, const char *type, void *arg)
{
    check_ctx_t *c = arg;
    c->res->rows++;
    if (sprig_id_valid(id) && sprig_id_valid(type)) {
        int rc = sprig_tree_node_add(c->tree, id, type, NULL);
        return rc == -EEXIST ? 0 : rc;
    }
    name_row(c, NULL, id);
    put_fmt(c->what, sizeof(c->what), " of type ");
    put_esc(c->what, sizeof(c->what), type);
    put_fmt(c->what, sizeof(c->what), ": %s is not 1-64 bytes of [A-Za-z0-9._:-]",
            sprig_id_valid(id) ? "its type" : "its id");
    if (c->n_left_out < LEFT_OUT_MAX) {
        char *copy = sprig_strdup(id);
        if (copy == NULL) {
            return -ENOMEM;
        }
        c->left_out[c->n_left_out++] = copy;
    }
    report(c, &(sprig_check_problem_t){
                  .kind = SPRIG_CHECK_NODE, .table = "nodes", .id = id, .what = c->what});
    return 0;
}

static int c_edge(const char *up, const char *down, void *arg)
{
    check_ctx_t *c = arg;
    sprig_node_t *u = sprig_tree_node(c->tree, up), *d = sprig_tree_node(c->tree, down);
    c->res->rows++;
    if (u != NULL && d != NULL) {
        return sprig_tree_edge_add(c->tree, u, d) != NULL ? 0 : -ENOMEM;
    }
    name_row(c, up, down);
    put_fmt(c->what, sizeof(c->what), ":");
    put_missing(c, u == NULL ? up : down);
    report(
        c,
        &(sprig_check_problem_t){
            .kind = SPRIG_CHECK_ORPHAN, .table = "edges", .up = up, .id = down, .what = c->what});
    return 0;
}

/* Notes p's time and compares the stored hash with ph() of the point the tree now holds
 * for it (computed as the tree stored it). */
static void observe(check_ctx_t *c, const sprig_point_t *p, const sprig_point_t *held,
                    uint64_t stored, const char *up, const char *id)
{
    if (p->time > c->res->max_time) {
        c->res->max_time = p->time;
    }
    uint64_t fresh = held != NULL ? sprig_tree_point_hash(held) : sprig_hash_point(p);
    if (fresh == stored) {
        return;
    }
    name_row(c, up, id);
    put_fmt(c->what, sizeof(c->what),
            ": point %s/%s does not match its stored hash (changed outside sprig)", p->type,
            p->key);
    report(c, &(sprig_check_problem_t){.kind = SPRIG_CHECK_HASH,
                                       .table = up != NULL ? "edge_points" : "points",
                                       .up = up,
                                       .id = id,
                                       .p = p,
                                       .hash = fresh,
                                       .what = c->what});
}


/* The end both point handlers share: a broken point is reported and left out, any other
 * merges into its node n (or edge e) and has its stored hash compared. */
static int merge_point(check_ctx_t *c, sprig_check_problem_t *pr, sprig_node_t *n,
                       sprig_edge_t *e, uint64_t stored)
{
    const sprig_point_t *p = pr->p;
    if (point_broken(c, p)) {
        pr->kind = SPRIG_CHECK_POINT;
        report(c, pr);
        return 0;
    }
    const sprig_point_t *held = NULL;
    int rc = n != NULL ? sprig_tree_point_merge(c->tree, n, p, &held)
                       : sprig_tree_edge_point_merge(c->tree, e, p, &held);
    if (rc < 0) {
        return rc;
    }
    observe(c, p, held, stored, pr->up, pr->id);
    return 0;
}

static int c_point(const char *node, const sprig_point_t *p, uint64_t stored, void *arg)
{
    check_ctx_t *c = arg;
    sprig_node_t *n = sprig_tree_node(c->tree, node);
    sprig_check_problem_t pr = {.table = "points", .id = node, .p = p, .what = c->what};
    c->res->rows++;
    name_row(c, NULL, node);
    if (n == NULL) {
        put_fmt(c->what, sizeof(c->what), ": point ");
        put_esc(c->what, sizeof(c->what), p->type);
        put_fmt(c->what, sizeof(c->what), " of a missing node:");
        put_missing(c, node);
        pr.kind = SPRIG_CHECK_ORPHAN;
        report(c, &pr);
        return 0;
    }
    return merge_point(c, &pr, n, NULL, stored);
}

static int c_edge_point(const char *up, const char *down, const sprig_point_t *p, uint64_t stored,
                        void *arg)
{
    check_ctx_t *c = arg;
    sprig_node_t *u = sprig_tree_node(c->tree, up), *d = sprig_tree_node(c->tree, down);
    sprig_edge_t *e = u != NULL && d != NULL ? sprig_tree_edge(c->tree, u, d) : NULL;
    sprig_check_problem_t pr = {
        .table = "edge_points", .up = up, .id = down, .p = p, .what = c->what};
    c->res->rows++;
    name_row(c, up, down);
    if (e == NULL) {
        put_fmt(c->what, sizeof(c->what), ": point ");
        put_esc(c->what, sizeof(c->what), p->type);
        put_fmt(c->what, sizeof(c->what), " of an edge that is missing or left out");
        pr.kind = SPRIG_CHECK_ORPHAN;
        report(c, &pr);
        return 0;
    }
    return merge_point(c, &pr, NULL, e, stored);
}

/* The time an edge was last written: the latest time of its points. An edge with no
 * points has no time to go by (sprig writes a tombstone point with the edges it makes)
 * and counts as the newest: INT64_MAX. */
static int64_t edge_time(const sprig_edge_t *e)
{
    int64_t t = sprig_edge_points(e) != NULL ? 0 : INT64_MAX;
    for (const sprig_point_t *p = sprig_edge_points(e); p != NULL; p = sprig_point_next(p)) {
        t = p->time > t ? p->time : t;
    }
    return t;
}

/* Whether a was written after b; ties go to the greater (up, down) ids, so the choice
 * does not depend on the order rows are read in. */
static bool newer(const sprig_edge_t *a, const sprig_edge_t *b)
{
    int64_t ta = edge_time(a), tb = edge_time(b);
    if (ta != tb) {
        return ta > tb;
    }
    int r = strcmp(sprig_node_id(sprig_edge_up(a)), sprig_node_id(sprig_edge_up(b)));
    return r != 0
               ? r > 0
               : strcmp(sprig_node_id(sprig_edge_down(a)), sprig_node_id(sprig_edge_down(b))) > 0;
}

/* Leaves out the newest edge of each live cycle until none is left. Each round removes one
 * edge, so this ends. */
static int break_cycles(check_ctx_t *c)
{
    for (;;) {
        sprig_edge_t **cyc;
        size_t n;
        int rc = sprig_tree_find_cycle(c->tree, &cyc, &n);
        if (rc != 0 || n == 0) {
            return rc;
        }
        size_t pick = 0;
        for (size_t i = 1; i < n; i++) {
            pick = newer(cyc[i], cyc[pick]) ? i : pick;
        }
        sprig_edge_t *e = cyc[pick];
        const char *up = sprig_node_id(sprig_edge_up(e)), *down = sprig_node_id(sprig_edge_down(e));
        name_row(c, up, down);
        put_fmt(c->what, sizeof(c->what), ": closes the cycle %s",
                sprig_node_id(sprig_edge_up(cyc[0])));
        for (size_t i = 0; i < n; i++) {
            put_fmt(c->what, sizeof(c->what), " -> %s", sprig_node_id(sprig_edge_down(cyc[i])));
        }
        if (n == 1) {
            put_fmt(c->what, sizeof(c->what), " (an edge to itself)");
        }
        else if (edge_time(e) == INT64_MAX) {
            put_fmt(c->what, sizeof(c->what), "; it is its newest edge (it has no points)");
        }
        else {
            char when[48];
            put_fmt(c->what, sizeof(c->what), "; it is its newest edge (written %s)",
                    sprig_time_format(edge_time(e), when, sizeof(when)));
        }
        sprig_free(cyc);
        report(c, &(sprig_check_problem_t){.kind = SPRIG_CHECK_CYCLE,
                                           .table = "edges",
                                           .up = up,
                                           .id = down,
                                           .edge = e,
                                           .what = c->what});
        if ((rc = sprig_tree_edge_remove(c->tree, e)) != 0) {
            return rc;
        }
    }
}

int sprig_check_load(sprig_store_t *s, sprig_tree_t *t, sprig_check_fn fn, void *arg,
                     sprig_check_result_t *res)
{
    check_ctx_t c = {.tree = t, .fn = fn, .arg = arg, .res = res};
    memset(res, 0, sizeof(*res));
    sprig_tree_hash_defer(t);
    sprig_store_visitor_t v = {c_node, c_edge, c_point, c_edge_point, &c};
    int rc = sprig_store_load(s, &v);
    if (rc == 0) {
        rc = break_cycles(&c);
    }
    for (size_t i = 0; i < c.n_left_out; i++) {
        sprig_free(c.left_out[i]);
    }
    return rc;
}

bool sprig_check_summary(const sprig_check_result_t *res, char *out, size_t n)
{
    static const char *const names[SPRIG_CHECK_KINDS][2] = {
        [SPRIG_CHECK_NODE] = {"node whose id or type is not valid",
                              "nodes whose id or type is not valid"},
        [SPRIG_CHECK_ORPHAN] = {"row of a missing node or edge", "rows of missing nodes or edges"},
        [SPRIG_CHECK_POINT] = {"point that is not valid", "points that are not valid"},
        [SPRIG_CHECK_CYCLE] = {"edge closing a cycle", "edges closing cycles"},
        [SPRIG_CHECK_HASH] = {"row changed outside sprig", "rows changed outside sprig"},
    };
    bool any = false;
    out[0] = '\0';
    for (int k = 0; k < SPRIG_CHECK_HASH; k++) {
        if (res->count[k] != 0) {
            put_fmt(out, n, "%s%zu %s", any ? ", " : "", res->count[k],
                    names[k][res->count[k] != 1]);
            any = true;
        }
    }
    if (any) {
        put_fmt(out, n, " left out");
    }
    if (res->count[SPRIG_CHECK_HASH] != 0) {
        put_fmt(out, n, "%s%zu %s (loaded as they are)", any ? "; " : "",
                res->count[SPRIG_CHECK_HASH],
                names[SPRIG_CHECK_HASH][res->count[SPRIG_CHECK_HASH] != 1]);
        any = true;
    }
    return any;
}
