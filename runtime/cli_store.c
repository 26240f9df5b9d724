/* `sprig store verify [--db FILE] [--fix]`: loads every row into a fresh tree through the
 * daemon's own checks (check.h), which also compare each row's stored hash with its
 * fields, and prints each problem. --fix repairs every problem it prints, saying how: a row
 * changed outside sprig keeps its content and gets its hash rewritten (sync repair then
 * reconciles it with other replicas); a point that is not valid is deleted (the node falls
 * back to its default, or to a peer's value at the next sync); a node whose id or type is
 * not valid is deleted with its edges and points (its children stay, under their other
 * parents or none); the newest edge of a cycle is deleted with its points; rows of missing
 * nodes or edges are deleted. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sprig/check.h"
#include "sprig/err.h"
#include "sprig/store.h"
#include "sprig/tree.h"
#include "sprig/util.h"

typedef struct verify_ctx {
    sprig_store_t *store;
    bool fix;
    long problems, fixed;
} verify_ctx_t;

/* Deletes the newest edge of a cycle with its points. */
static int drop_edge(sprig_store_t *s, const sprig_check_problem_t *pr)
{
    for (const sprig_point_t *p = sprig_edge_points(pr->edge); p != NULL; p = sprig_point_next(p)) {
        int rc = sprig_store_delete_row(s, "edge_points", pr->up, pr->id, p->type, p->key);
        if (rc != 0) {
            return rc;
        }
    }
    return sprig_store_delete_row(s, "edges", pr->up, pr->id, NULL, NULL);
}

static int repair(sprig_store_t *s, const sprig_check_problem_t *pr)
{
    switch (pr->kind) {
    case SPRIG_CHECK_HASH:
        return sprig_store_fix_hash(s, pr->up, pr->id, pr->p->type, pr->p->key, pr->hash);
    case SPRIG_CHECK_CYCLE:
        return drop_edge(s, pr);
    default:
        return sprig_store_delete_row(
            s, pr->table, pr->up != NULL ? pr->up : pr->id, pr->up != NULL ? pr->id : NULL,
            pr->p != NULL ? pr->p->type : NULL, pr->p != NULL ? pr->p->key : NULL);
    }
}

/* What --fix does to each kind of problem, in the words it prints. */
static const char *const fix_words[SPRIG_CHECK_KINDS] = {
    [SPRIG_CHECK_NODE] = "node deleted (its edges and points below too)",
    [SPRIG_CHECK_ORPHAN] = "row deleted",
    [SPRIG_CHECK_POINT] = "point deleted (the node falls back to its default, or to a peer's "
                          "value at the next sync)",
    [SPRIG_CHECK_CYCLE] = "edge deleted with its points",
    [SPRIG_CHECK_HASH] = "stored hash rewritten (the row's content is kept)",
};

static void on_problem(const sprig_check_problem_t *pr, void *arg)
{
    verify_ctx_t *v = arg;
    v->problems++;
    if (!v->fix) {
        printf("problem: %s (--fix: %s)\n", pr->what, fix_words[pr->kind]);
        return;
    }
    int rc = repair(v->store, pr);
    if (rc == 0) {
        v->fixed++;
        printf("problem: %s -- fixed: %s\n", pr->what, fix_words[pr->kind]);
    }
    else {
        printf("problem: %s -- not fixed: %s\n", pr->what, sprig_strerror(rc));
    }
}

int cli_store_flag(const char *cmd, const char *flag, const char *value, const char **db,
                   bool *given)
{
    if (*given) {
        fprintf(stderr, "%s: --db and --store name the database: give one of them, once\n", cmd);
        return 2;
    }
    *given = true;
    if (strcmp(flag, "db") == 0) {
        if (value[0] == '\0') {
            fprintf(stderr, "%s: --db \"\" must name a database file\n", cmd);
            return 2;
        }
        *db = value;
        return 0;
    }
    bool pg = strncmp(value, "postgresql://", 13) == 0 || strncmp(value, "postgres://", 11) == 0;
    if (!pg && (strncmp(value, "sqlite:", 7) != 0 || value[7] == '\0')) {
        fprintf(stderr,
                "%s: --store \"%.80s\" is not a store: give postgresql://USER@HOST[:PORT]/DB "
                "(libpq's URI) or sqlite:FILE\n",
                cmd, value);
        return 2;
    }
    *db = value;
    return 0;
}

static void store_usage(FILE *f)
{
    fputs("usage: sprig store verify [--db FILE | --store URI] [--fix]\n"
          "\n"
          "Runs the checks the daemon runs when it loads the database (ids, types, points,\n"
          "cycles, rows of missing nodes) and compares each point with its stored hash. Exits\n"
          "0 when all agree, 1 when a problem was found (and, with --fix, not repaired).\n"
          "\n"
          "flags:\n"
          "  --db FILE    SQLite database (default sprig.db)\n"
          "  --store URI  the database as a URI: postgresql://USER@HOST[:PORT]/DB (libpq's\n"
          "               form) or sqlite:FILE\n"
          "  --fix        repair every problem found, saying how: rewrite the stored hash\n"
          "               of rows changed outside sprig; delete points that are not valid,\n"
          "               nodes whose id or type is not valid (with their edges and\n"
          "               points), the newest edge of each cycle, and rows of missing\n"
          "               nodes; needs the daemon to be stopped\n"
          "  -h, --help   show this help\n",
          f);
}

static int verify(const char *db, bool fix)
{
    sprig_store_opts_t so = {.read_only = !fix};
    sprig_error_t err;
    verify_ctx_t v = {.fix = fix};
    sprig_tree_t *tree = NULL;
    sprig_check_result_t res;
    int code = 2;
    const char *file = strncmp(db, "sqlite:", 7) == 0 ? db + 7 : db;
    if (strstr(db, "://") == NULL) {
        FILE *probe = fopen(file, "rb");
        if (probe == NULL) {
            fprintf(stderr, "sprig store verify: database %s does not exist\n", file);
            return 2;
        }
        fclose(probe);
    }
    if (sprig_store_open(db, &so, NULL, &v.store, &err) != 0) {
        fprintf(stderr, "sprig store verify: %s\n", err.msg);
        return 2;
    }
    db = sprig_store_name(v.store); /* a URI without its password */
    if (sprig_tree_open(&tree) != 0) {
        goto done;
    }
    int rc = sprig_check_load(v.store, tree, on_problem, &v, &res);
    if (rc == 0) {
        rc = sprig_tree_hash_rebuild(tree);
    }
    if (rc != 0) {
        fprintf(stderr, "sprig store verify: database %s cannot be read: %s\n", db,
                sprig_strerror(rc));
        goto done;
    }
    char root[SPRIG_ID_MAX + 1];
    sprig_node_t *rn = NULL;
    if (sprig_store_meta_get(v.store, "root", root, sizeof(root)) != 0 ||
        (rn = sprig_tree_node(tree, root)) == NULL) {
        v.problems++;
        printf("problem: the root node named in meta is missing (not fixable here: restore "
               "the database from a backup, or import an export into a new one)\n");
    }
    sprig_tree_set_root(tree, rn);
    printf("verify %s: %zu nodes, %zu points, %zu rows, root hash %016" PRIx64 ": ", db,
           sprig_tree_node_count(tree), sprig_tree_point_count(tree), res.rows,
           sprig_tree_root_hash(tree));
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
    sprig_tree_close(tree);
    if (sprig_store_close(v.store) != 0) {
        code = 2;
    }
    return code;
}

int cli_store(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"store", required_argument, NULL, 's'},
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
    bool fix = false, db_given = false;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd':
        case 's':
            if (cli_store_flag("sprig store verify", ch == 'd' ? "db" : "store", optarg, &db,
                               &db_given) != 0) {
                return 2;
            }
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
