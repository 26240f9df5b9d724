/* `sprig store verify [--db FILE] [--fix]`: loads every row into a fresh tree, keeping the
 * hashes incrementally as the daemon does, then checks three things: each row's stored
 * hash against ph() of its fields (a row changed outside sprig), each node's incremental
 * hash against one recomputed from scratch, and rows that cannot belong to the tree
 * (unknown nodes, bad ids, values that are not numbers). --fix rewrites the stored hash
 * of changed rows (their content becomes the truth, and sync repair reconciles it with
 * other replicas) and deletes rows that cannot be loaded. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sprig/err.h"
#include "sprig/hash.h"
#include "sprig/store.h"
#include "sprig/tree.h"
#include "sprig/util.h"

typedef struct verify_ctx {
    sprig_tree_t *tree;
    sprig_store_t *store;
    bool fix;
    long problems, fixed, rows;
} verify_ctx_t;

static void problem(verify_ctx_t *v, int fix_rc, const char *fmt, const char *a, const char *b,
                    const char *c)
{
    v->problems++;
    printf("problem: ");
    printf(fmt, a, b, c);
    if (v->fix) {
        if (fix_rc == 0) {
            v->fixed++;
            printf(" -- fixed");
        }
        else {
            printf(" -- not fixed: %s", sprig_strerror(fix_rc));
        }
    }
    putchar('\n');
}

static bool point_ok(const sprig_point_t *p)
{
    return sprig_id_valid(p->type) && sprig_id_valid(p->key) && isfinite(p->value) &&
           (p->origin[0] == '\0' || sprig_id_valid(p->origin)) &&
           (p->tombstone == 0 || p->tombstone == 1) && p->time > 0;
}

static int v_node(const char *id, const char *type, void *arg)
{
    verify_ctx_t *v = arg;
    v->rows++;
    if (!sprig_id_valid(id) || !sprig_id_valid(type)) {
        int rc = v->fix ? sprig_store_delete_row(v->store, "nodes", id, NULL, NULL, NULL) : 0;
        problem(v, rc,
                "node \"%s\" of type \"%s\": id or type is not 1-64 bytes of "
                "[A-Za-z0-9._:-]%s",
                id, type, "");
        return 0;
    }
    return sprig_tree_node_add(v->tree, id, type, NULL) == -ENOMEM ? -ENOMEM : 0;
}

static int v_edge(const char *up, const char *down, void *arg)
{
    verify_ctx_t *v = arg;
    sprig_node_t *u = sprig_tree_node(v->tree, up), *d = sprig_tree_node(v->tree, down);
    v->rows++;
    if (u == NULL || d == NULL) {
        int rc = v->fix ? sprig_store_delete_row(v->store, "edges", up, down, NULL, NULL) : 0;
        problem(v, rc, "edge %s -> %s: names a node that does not exist%s", up, down, "");
        return 0;
    }
    return sprig_tree_edge_add(v->tree, u, d) != NULL ? 0 : -ENOMEM;
}

static void check_hash(verify_ctx_t *v, const char *up, const char *node, const sprig_point_t *p,
                       uint64_t stored)
{
    uint64_t fresh = sprig_hash_point(p);
    if (fresh == stored) {
        return;
    }
    char what[3 * SPRIG_ID_MAX + 16];
    int rc = v->fix ? sprig_store_fix_hash(v->store, up, node, p->type, p->key, fresh) : 0;
    if (up != NULL) {
        snprintf(what, sizeof(what), "edge %s -> %s", up, node);
    }
    else {
        snprintf(what, sizeof(what), "node %s", node);
    }
    problem(v, rc, "%s: point %s/%s does not match its stored hash (changed outside sprig)", what,
            p->type, p->key);
}

static int v_point(const char *node, const sprig_point_t *p, uint64_t stored, void *arg)
{
    verify_ctx_t *v = arg;
    sprig_node_t *n = sprig_tree_node(v->tree, node);
    v->rows++;
    if (n == NULL || !point_ok(p)) {
        int rc =
            v->fix ? sprig_store_delete_row(v->store, "points", node, NULL, p->type, p->key) : 0;
        problem(v, rc, "node %s: point %s/%s is of an unknown node or not a valid point", node,
                p->type, p->key);
        return 0;
    }
    check_hash(v, NULL, node, p, stored);
    return sprig_tree_point_put(v->tree, n, p) < 0 ? -ENOMEM : 0;
}

static int v_edge_point(const char *up, const char *down, const sprig_point_t *p, uint64_t stored,
                        void *arg)
{
    verify_ctx_t *v = arg;
    sprig_node_t *u = sprig_tree_node(v->tree, up), *d = sprig_tree_node(v->tree, down);
    sprig_edge_t *e = u != NULL && d != NULL ? sprig_tree_edge(v->tree, u, d) : NULL;
    v->rows++;
    if (e == NULL || !point_ok(p)) {
        int rc =
            v->fix ? sprig_store_delete_row(v->store, "edge_points", up, down, p->type, p->key) : 0;
        problem(v, rc, "edge %s -> %s: point of an unknown edge or not a valid point (type %s)", up,
                down, p->type);
        return 0;
    }
    check_hash(v, up, down, p, stored);
    return sprig_tree_edge_point_put(v->tree, e, p) < 0 ? -ENOMEM : 0;
}

static void report_node(const sprig_node_t *n, uint64_t kept, uint64_t fresh, void *arg)
{
    (void)arg;
    printf("problem: node %s: incremental hash %016" PRIx64 " differs from the one recomputed "
           "from scratch %016" PRIx64 "\n",
           sprig_node_id(n), kept, fresh);
}

static void store_usage(FILE *f)
{
    fputs("usage: sprig store verify [--db FILE] [--fix]\n"
          "\n"
          "Recomputes every hash of the database from scratch and compares: each point with\n"
          "its stored hash, and each node's incrementally kept hash with a fresh one. Exits\n"
          "0 when all agree, 1 when a problem was found (and, with --fix, not repaired).\n"
          "\n"
          "flags:\n"
          "  --db FILE    SQLite database (default sprig.db)\n"
          "  --fix        rewrite the stored hash of rows changed outside sprig, and delete\n"
          "               rows that cannot be loaded; needs the daemon to be stopped\n"
          "  -h, --help   show this help\n",
          f);
}

static int verify(const char *db, bool fix)
{
    sprig_store_opts_t so = {.read_only = !fix};
    sprig_error_t err;
    verify_ctx_t v = {.fix = fix};
    int code = 2;
    FILE *probe = fopen(db, "rb");
    if (probe == NULL) {
        fprintf(stderr, "sprig store verify: database %s does not exist\n", db);
        return 2;
    }
    fclose(probe);
    if (sprig_store_open(db, &so, NULL, &v.store, &err) != 0) {
        fprintf(stderr, "sprig store verify: %s\n", err.msg);
        return 2;
    }
    if (sprig_tree_open(&v.tree) != 0) {
        goto done;
    }
    sprig_store_visitor_t vis = {v_node, v_edge, v_point, v_edge_point, &v};
    int rc = sprig_store_load(v.store, &vis);
    if (rc != 0) {
        fprintf(stderr, "sprig store verify: database %s cannot be read: %s\n", db,
                sprig_strerror(rc));
        goto done;
    }
    char root[SPRIG_ID_MAX + 1];
    sprig_node_t *rn = NULL;
    if (sprig_store_meta_get(v.store, "root", root, sizeof(root)) != 0 ||
        (rn = sprig_tree_node(v.tree, root)) == NULL) {
        v.problems++;
        printf("problem: the root node named in meta is missing (not fixable here)\n");
    }
    sprig_tree_set_root(v.tree, rn);
    long bad = sprig_tree_hash_check(v.tree, report_node, NULL);
    if (bad < 0) {
        goto done;
    }
    v.problems += bad;
    printf("verify %s: %zu nodes, %zu points, %ld rows, root hash %016" PRIx64 ": ", db,
           sprig_tree_node_count(v.tree), sprig_tree_point_count(v.tree), v.rows,
           sprig_tree_root_hash(v.tree));
    if (v.problems == 0) {
        printf("ok\n");
        code = 0;
    }
    else if (fix && v.fixed == v.problems) {
        printf("%ld problems, all fixed\n", v.problems);
        code = 0;
    }
    else {
        printf("%ld problems%s\n", v.problems - v.fixed,
               fix ? " left" : " (run with --fix to repair)");
        code = 1;
    }
done:
    sprig_tree_close(v.tree);
    if (sprig_store_close(v.store) != 0) {
        code = 2;
    }
    return code;
}

int cli_store(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"fix", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        store_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "verify") != 0) {
        fprintf(stderr, "sprig store: unknown subcommand \"%s\" (subcommands: verify)\n", argv[1]);
        return 2;
    }
    const char *db = "sprig.db";
    bool fix = false;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            if (optarg[0] == '\0') {
                fprintf(stderr, "sprig store verify: --db \"\" must name a database file\n");
                return 2;
            }
            db = optarg;
            break;
        case 'f':
            fix = true;
            break;
        case 'h':
            store_usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "sprig store verify: flag %s needs a value\n", argv[optind]);
            return 2;
        default:
            fprintf(stderr, "sprig store verify: unknown flag %s (see sprig store --help)\n",
                    argv[optind]);
            return 2;
        }
    }
    if (optind < argc - 1) {
        fprintf(stderr, "sprig store verify: unexpected argument \"%s\"\n", argv[optind + 1]);
        return 2;
    }
    return verify(db, fix);
}
