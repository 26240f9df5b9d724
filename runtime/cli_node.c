/* `sprig node ...` and `sprig point ...`: read and change the daemon's tree through its
 * HTTP API (cli_http.c). Ids and point types are checked here, before any request, so a
 * mistyped one is a usage error (exit 2) rather than a server round trip. */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_http.h"
#include "sprig/json.h"
#include "sprig/util.h"

typedef struct node_args {
    const char *type, *parent, *id, *from, *to, *key;
    bool text;
    cJSON *points;        /* --point, an array of point objects */
    const char *where[8]; /* --where, for find */
    int nwhere;
} node_args_t;

/* Parses "TYPE=VALUE" or "TYPE[KEY]=VALUE" into a point object added to a->points. */
static int add_point_flag(cli_http_t *h, node_args_t *a, const char *arg)
{
    char type[SPRIG_ID_MAX + 1], key[SPRIG_ID_MAX + 1] = "";
    const char *eq = strchr(arg, '='), *br = strchr(arg, '[');
    size_t tn = eq != NULL ? (size_t)(eq - arg) : 0;
    if (br != NULL && eq != NULL && br < eq) {
        const char *close = memchr(br, ']', (size_t)(eq - br));
        if (close == NULL || close + 1 != eq || (size_t)(close - br - 1) > SPRIG_ID_MAX) {
            eq = NULL;
        }
        else {
            snprintf(key, sizeof(key), "%.*s", (int)(close - br - 1), br + 1);
            tn = (size_t)(br - arg);
        }
    }
    if (eq == NULL || tn == 0 || tn > SPRIG_ID_MAX) {
        fprintf(stderr, "sprig %s: --point \"%s\" must be TYPE=VALUE or TYPE[KEY]=VALUE\n", h->cmd,
                arg);
        return 2;
    }
    snprintf(type, sizeof(type), "%.*s", (int)tn, arg);
    if (cli_http_check_id(h, "--point type", type) != 0 ||
        (key[0] != '\0' && cli_http_check_id(h, "--point key", key) != 0)) {
        return 2;
    }
    const char *val = eq + 1;
    char *end;
    double v = strtod(val, &end);
    bool number = *val != '\0' && *end == '\0' && isfinite(v);
    cJSON *p = cJSON_CreateObject();
    if (p == NULL || cJSON_AddStringToObject(p, "type", type) == NULL ||
        (key[0] != '\0' && cJSON_AddStringToObject(p, "key", key) == NULL) ||
        (number ? sprig_json_add_exact(p, "value", v) == NULL
                : cJSON_AddStringToObject(p, "text", val) == NULL) ||
        (a->points == NULL && (a->points = cJSON_CreateArray()) == NULL) ||
        !cJSON_AddItemToArray(a->points, p)) {
        cJSON_Delete(p);
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        return 2;
    }
    return 0;
}

static int node_flag(cli_http_t *h, int ch, const char *arg, void *ctx)
{
    static const struct {
        int ch;
        const char *flag;
        size_t off;
    } ids[] = {
        {'t', "--type", offsetof(node_args_t, type)},
        {'p', "--parent", offsetof(node_args_t, parent)},
        {'i', "--id", offsetof(node_args_t, id)},
        {'f', "--from", offsetof(node_args_t, from)},
        {'T', "--to", offsetof(node_args_t, to)},
        {'k', "--key", offsetof(node_args_t, key)},
    };
    node_args_t *a = ctx;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        if (ch == ids[i].ch) {
            *(const char **)((char *)a + ids[i].off) = arg;
            return cli_http_check_id(h, ids[i].flag, arg);
        }
    }
    if (ch == 'x') {
        a->text = true;
        return 0;
    }
    if (ch == 'w') {
        if (a->nwhere == 8) {
            fprintf(stderr, "sprig %s: at most 8 --where conditions\n", h->cmd);
            return 2;
        }
        a->where[a->nwhere++] = arg;
        return 0;
    }
    return ch == 'P' ? add_point_flag(h, a, arg) : 2;
}

/* The array of nodes in a reply to GET /v1/nodes: the body itself, or its "nodes". */
static cJSON *node_list(cli_http_t *h, const cli_reply_t *r)
{
    cJSON *a =
        cJSON_IsArray(r->json) ? r->json : cJSON_GetObjectItemCaseSensitive(r->json, "nodes");
    if (!cJSON_IsArray(a)) {
        fprintf(stderr, "sprig %s: the server's node list is not a JSON array\n", h->cmd);
        return NULL;
    }
    return a;
}

/* The parent of a listed node: a string, or the first of an array; "" for the root. */
static const char *parent_of(const cJSON *n)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(n, "parent");
    if (cJSON_IsArray(p)) {
        p = cJSON_GetArrayItem(p, 0);
    }
    return cJSON_IsString(p) ? p->valuestring : "";
}

static const char ls_usage[] =
    "usage: sprig node ls [--type T] [FLAGS]\n"
    "\n"
    "Lists every node of the tree, one line each: id, type, parent (empty for the root)\n"
    "and the subtree hash.\n"
    "\n"
    "flags:\n"
    "  --type T           only nodes of type T\n" CLI_HTTP_FLAGS_HELP;

static const char find_usage[] =
    "usage: sprig node find [--type T] [--where 'POINT OP VALUE' ...] [FLAGS]\n"
    "\n"
    "Lists the nodes whose points meet every condition, like sprig node ls. POINT is a\n"
    "point type (TYPE[KEY] for a key other than 0), OP one of = != < <= > >=, VALUE a\n"
    "number (compared with the point's value) or a text (compared with its text).\n"
    "\n"
    "flags:\n"
    "  --type T           only nodes of type T\n"
    "  --where COND       a condition; several are AND-ed (at most 8)\n" CLI_HTTP_FLAGS_HELP;

/* Appends s to out percent-encoded for a query string. */
static void query_escape(char *out, size_t n, const char *s)
{
    size_t len = strlen(out);
    for (; *s != '\0' && len + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || strchr("-._~", c) != NULL) {
            out[len++] = (char)c;
        }
        else {
            len += (size_t)snprintf(out + len, n - len, "%%%02X", c);
        }
    }
    out[len] = '\0';
}

static int node_ls(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {{"type", required_argument, NULL, 't'},
                                         {"where", required_argument, NULL, 'w'},
                                         CLI_HTTP_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    bool find = strcmp(argv[0], "find") == 0;
    node_args_t a = {0};
    cli_reply_t r;
    char path[4096] = "/v1/nodes?";
    int rc = cli_http_parse(h, argc, argv, opts, node_flag, &a, find ? find_usage : ls_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 0, 0, "")) != 0) {
        return rc;
    }
    if (!find && a.nwhere > 0) {
        fprintf(stderr, "sprig %s: --where belongs to sprig node find\n", h->cmd);
        return 2;
    }
    if (a.type != NULL) {
        strcat(path, "type=");
        query_escape(path, sizeof(path), a.type);
    }
    for (int i = 0; i < a.nwhere; i++) {
        strcat(path, "&where=");
        query_escape(path, sizeof(path), a.where[i]);
    }
    if ((rc = cli_http_call(h, "GET", path, NULL, &r)) != 0) {
        return rc;
    }
    if (h->json) {
        rc = cli_http_print_body(h, &r);
        goto done;
    }
    cJSON *list = node_list(h, &r), *n;
    if (list == NULL) {
        rc = 1;
        goto done;
    }
    int wi = 2, wt = 4, wp = 6;
    cJSON_ArrayForEach(n, list)
    {
        int li = (int)strlen(cli_json_str(n, "id")), lt = (int)strlen(cli_json_str(n, "type"));
        int lp = (int)strlen(parent_of(n));
        wi = li > wi ? li : wi, wt = lt > wt ? lt : wt, wp = lp > wp ? lp : wp;
    }
    printf("%-*s  %-*s  %-*s  %s\n", wi, "ID", wt, "TYPE", wp, "PARENT", "HASH");
    cJSON_ArrayForEach(n, list)
    {
        printf("%-*s  %-*s  %-*s  %s\n", wi, cli_json_str(n, "id"), wt, cli_json_str(n, "type"), wp,
               parent_of(n), cli_json_str(n, "hash"));
    }
done:
    cli_reply_free(&r);
    return rc;
}

typedef struct entry {
    const char *id, *parent;
    const cJSON *node;
} entry_t;

static int by_parent(const void *x, const void *y)
{
    const entry_t *a = x, *b = y;
    int c = strcmp(a->parent, b->parent);
    return c != 0 ? c : strcmp(a->id, b->id);
}

/* Index of the first entry (sorted by parent) whose parent is id, or n when none. */
static size_t first_child(const entry_t *e, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(e[mid].parent, id) < 0) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo < n && strcmp(e[lo].parent, id) == 0 ? lo : n;
}

/* One line of the tree: id (type), the description, and a few other live points. */
static void tree_line(const entry_t *e, int depth)
{
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(e->node, "points"), *p;
    printf("%*s%s (%s)", depth * 2, "", e->id, cli_json_str(e->node, "type"));
    int shown = 0, more = 0;
    /* The description first, then the value, then the rest in the server's order. */
    for (int pass = 0; pass < 3; pass++) {
        cJSON_ArrayForEach(p, pts)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "tombstone");
            const char *type = cli_json_str(p, "type");
            int rank = strcmp(type, "description") == 0 ? 0 : strcmp(type, "value") == 0 ? 1 : 2;
            if ((cJSON_IsNumber(t) && t->valuedouble != 0) || rank != pass) {
                continue;
            }
            if (shown == 5) {
                more++;
                continue;
            }
            fputs(shown++ == 0 ? "  " : ", ", stdout);
            cli_print_point(stdout, p, false);
        }
    }
    if (more > 0) {
        printf(", +%d more", more);
    }
    putchar('\n');
}

/* Draws entry i and its subtree; counts the lines drawn in *drawn. */
static void tree_walk(const entry_t *e, size_t n, size_t i, int depth, const char **path,
                      size_t *drawn)
{
    tree_line(&e[i], depth);
    (*drawn)++;
    for (int d = 0; d < depth; d++) {
        if (strcmp(path[d], e[i].id) == 0) {
            printf("%*s(cycle: %s is its own ancestor)\n", depth * 2 + 2, "", e[i].id);
            return;
        }
    }
    if (depth >= 255) {
        printf("%*s(deeper than 256 levels: not drawn)\n", depth * 2 + 2, "");
        return;
    }
    path[depth] = e[i].id;
    for (size_t c = first_child(e, n, e[i].id); c < n && strcmp(e[c].parent, e[i].id) == 0; c++) {
        tree_walk(e, n, c, depth + 1, path, drawn);
    }
}

static const char tree_usage[] =
    "usage: sprig node tree [FLAGS]\n"
    "\n"
    "Draws the tree from the root, children indented under their parent, each line\n"
    "the node's id (type), its description and its first few points. A mirrored node\n"
    "is drawn under each of its parents.\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static int node_tree(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    node_args_t a = {0};
    cli_reply_t r;
    int rc = cli_http_parse(h, argc, argv, opts, node_flag, &a, tree_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 0, 0, "")) != 0) {
        return rc;
    }
    if ((rc = cli_http_call(h, "GET", "/v1/nodes", NULL, &r)) != 0) {
        return rc;
    }
    if (h->json) {
        rc = cli_http_print_body(h, &r);
        cli_reply_free(&r);
        return rc;
    }
    cJSON *list = node_list(h, &r), *nd;
    size_t n = 0, i = 0, drawn = 0;
    /* One entry per live parent, so a mirrored node is drawn under each of them. */
    cJSON_ArrayForEach(nd, list)
    {
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(nd, "parents");
        int k = cJSON_IsArray(ps) ? cJSON_GetArraySize(ps) : 0;
        n += k > 0 ? (size_t)k : 1;
    }
    entry_t *e = calloc(n + 1, sizeof(*e));
    const char *path[256];
    rc = 1;
    if (list == NULL || e == NULL) {
        goto done;
    }
    cJSON_ArrayForEach(nd, list)
    {
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(nd, "parents"), *pp;
        if (!cJSON_IsArray(ps) || cJSON_GetArraySize(ps) == 0) {
            e[i++] = (entry_t){cli_json_str(nd, "id"), parent_of(nd), nd};
            continue;
        }
        cJSON_ArrayForEach(pp, ps)
        {
            e[i++] =
                (entry_t){cli_json_str(nd, "id"), cJSON_IsString(pp) ? pp->valuestring : "", nd};
        }
    }
    qsort(e, n, sizeof(*e), by_parent);
    for (i = 0; i < n && e[i].parent[0] == '\0'; i++) {
        tree_walk(e, n, i, 0, path, &drawn);
    }
    if (drawn < n) {
        printf("(%zu listed nodes are not under the root: sprig node ls shows them)\n", n - drawn);
    }
    rc = 0;
done:
    free(e);
    cli_reply_free(&r);
    return rc;
}

/* Prints points, one line each with its time, under a heading (none when NULL). */
static void print_points(const char *heading, const cJSON *pts)
{
    const cJSON *p;
    if (cJSON_GetArraySize(pts) == 0) {
        return;
    }
    if (heading != NULL) {
        printf("%s\n", heading);
    }
    cJSON_ArrayForEach(p, pts)
    {
        printf("%s%-30s  ", heading != NULL ? "  " : "", cli_json_str(p, "time"));
        cli_print_point(stdout, p, true);
        putchar('\n');
    }
}

static const char get_usage[] =
    "usage: sprig node get ID [FLAGS]\n"
    "\n"
    "Prints the node ID: its type, parent, subtree hash, its points and the points of\n"
    "the edge from its parent, each with the time it was written.\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

/* GETs /v1/nodes/ID for the commands that name a node as their first argument. */
static int get_node(cli_http_t *h, const char *id, cli_reply_t *r)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/nodes/%s", id);
    int rc = cli_http_call(h, "GET", path, NULL, r);
    if (rc == 0 && !cJSON_IsObject(r->json)) {
        fprintf(stderr, "sprig %s: the server's node %s is not a JSON object\n", h->cmd, id);
        cli_reply_free(r);
        rc = 1;
    }
    return rc;
}

static int node_get(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    node_args_t a = {0};
    cli_reply_t r;
    int rc = cli_http_parse(h, argc, argv, opts, node_flag, &a, get_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 1, 1, "ID")) != 0 ||
        (rc = cli_http_check_id(h, "ID", argv[optind])) != 0 ||
        (rc = get_node(h, argv[optind], &r)) != 0) {
        return rc;
    }
    if (h->json) {
        rc = cli_http_print_body(h, &r);
        cli_reply_free(&r);
        return rc;
    }
    const char *parent = parent_of(r.json);
    char heading[SPRIG_ID_MAX + 40];
    printf("id      %s\ntype    %s\nparent  %s\nhash    %s\n", cli_json_str(r.json, "id"),
           cli_json_str(r.json, "type"), parent[0] != '\0' ? parent : "(none: the root)",
           cli_json_str(r.json, "hash"));
    print_points("points:", cJSON_GetObjectItemCaseSensitive(r.json, "points"));
    snprintf(heading, sizeof(heading), "edge points (from %s):", parent);
    print_points(heading, cJSON_GetObjectItemCaseSensitive(r.json, "edgePoints"));
    cli_reply_free(&r);
    return 0;
}

static const char add_usage[] =
    "usage: sprig node add --type T --parent P [--id ID] [--point TYPE=VALUE ...]\n"
    "\n"
    "Creates a node of type T under P with its points in one write, and prints its id.\n"
    "\n"
    "flags:\n"
    "  --type T           the new node's type (required)\n"
    "  --parent P         the id of its parent (required)\n"
    "  --id ID            its id (default: the server makes a UUID)\n"
    "  --point TYPE=VALUE\n"
    "                     a point to write with it; repeat for more. A VALUE that is a\n"
    "                     number sets the value, any other sets the text. TYPE[KEY]=VALUE\n"
    "                     gives a key other than 0\n" CLI_HTTP_FLAGS_HELP;

static int node_add(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {{"type", required_argument, NULL, 't'},
                                         {"parent", required_argument, NULL, 'p'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"point", required_argument, NULL, 'P'},
                                         CLI_HTTP_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    node_args_t a = {0};
    cli_reply_t r;
    cJSON *body = NULL;
    int rc = cli_http_parse(h, argc, argv, opts, node_flag, &a, add_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 0, 0, "--type T --parent P")) != 0) {
        goto done;
    }
    if (a.type == NULL || a.parent == NULL) {
        fprintf(stderr, "sprig %s: %s is required (see sprig node add --help)\n", h->cmd,
                a.type == NULL ? "--type" : "--parent");
        rc = 2;
        goto done;
    }
    if ((body = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(body, "type", a.type) == NULL ||
        cJSON_AddStringToObject(body, "parent", a.parent) == NULL ||
        (a.id != NULL && cJSON_AddStringToObject(body, "id", a.id) == NULL)) {
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        rc = 1;
        goto done;
    }
    if (a.points != NULL) {
        cJSON_AddItemToObject(body, "points", a.points);
        a.points = NULL;
    }
    if ((rc = cli_http_send(h, "POST", "/v1/nodes", body, &r)) != 0) {
        goto done;
    }
    if (h->json) {
        rc = cli_http_print_body(h, &r);
    }
    else if (cli_json_str(r.json, "id")[0] != '\0') {
        printf("%s\n", cli_json_str(r.json, "id"));
    }
    else {
        fprintf(stderr, "sprig %s: the server created the node but sent no id\n", h->cmd);
        rc = 1;
    }
    cli_reply_free(&r);
done:
    cJSON_Delete(a.points);
    cJSON_Delete(body);
    return rc;
}

static const char rm_usage[] =
    "usage: sprig node rm ID --parent P [FLAGS]\n"
    "\n"
    "Removes the node ID from its parent P (a tombstone on that edge; a node mirrored\n"
    "elsewhere stays under its other parents).\n"
    "\n"
    "flags:\n"
    "  --parent P         the parent to remove it from (required)\n" CLI_HTTP_FLAGS_HELP;

static const char mv_usage[] =
    "usage: sprig node mv ID --from P --to Q [FLAGS]\n"
    "\n"
    "Moves the node ID from parent P to parent Q, with its subtree.\n"
    "\n"
    "flags:\n"
    "  --from P           its parent now (required)\n"
    "  --to Q             its new parent (required)\n" CLI_HTTP_FLAGS_HELP;

static const char mirror_usage[] =
    "usage: sprig node mirror ID --to Q [FLAGS]\n"
    "\n"
    "Adds Q as another parent of the node ID; it stays under its parents as well.\n"
    "\n"
    "flags:\n"
    "  --to Q             the added parent (required)\n" CLI_HTTP_FLAGS_HELP;

/* rm, mv and mirror (told apart by the command's name): one node argument, required
 * flags, one request, one line. */
static int node_edge(cli_http_t *h, int argc, char **argv)
{
    static const struct option rm_opts[] = {
        {"parent", required_argument, NULL, 'p'}, CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    static const struct option mv_opts[] = {{"from", required_argument, NULL, 'f'},
                                            {"to", required_argument, NULL, 'T'},
                                            CLI_HTTP_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    static const struct option mirror_opts[] = {
        {"to", required_argument, NULL, 'T'}, CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    bool rm = strcmp(h->cmd, "node rm") == 0, mv = strcmp(h->cmd, "node mv") == 0;
    const char *op = mv ? "move" : "mirror";
    node_args_t a = {0};
    cli_reply_t r;
    char path[256];
    cJSON *body = NULL;
    int rc = cli_http_parse(h, argc, argv,
                            rm   ? rm_opts
                            : mv ? mv_opts
                                 : mirror_opts,
                            node_flag, &a,
                            rm   ? rm_usage
                            : mv ? mv_usage
                                 : mirror_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 1, 1, "ID")) != 0 ||
        (rc = cli_http_check_id(h, "ID", argv[optind])) != 0) {
        return rc;
    }
    const char *id = argv[optind];
    const char *missing = rm && a.parent == NULL ? "--parent"
                          : mv && a.from == NULL ? "--from"
                          : !rm && a.to == NULL  ? "--to"
                                                 : NULL;
    if (missing != NULL) {
        fprintf(stderr, "sprig %s: %s is required (see sprig %s --help)\n", h->cmd, missing,
                h->cmd);
        return 2;
    }
    if (rm) {
        snprintf(path, sizeof(path), "/v1/nodes/%s?parent=%s", id, a.parent);
        rc = cli_http_call(h, "DELETE", path, NULL, &r);
    }
    else {
        snprintf(path, sizeof(path), "/v1/nodes/%s/parents", id);
        if ((body = cJSON_CreateObject()) == NULL ||
            cJSON_AddStringToObject(body, "op", op) == NULL ||
            (mv && cJSON_AddStringToObject(body, "from", a.from) == NULL) ||
            cJSON_AddStringToObject(body, "to", a.to) == NULL) {
            fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
            cJSON_Delete(body);
            return 1;
        }
        rc = cli_http_send(h, "POST", path, body, &r);
        cJSON_Delete(body);
    }
    if (rc != 0) {
        return rc;
    }
    if (h->json) {
        rc = cli_http_print_body(h, &r);
    }
    else if (rm) {
        printf("removed %s from %s\n", id, a.parent);
    }
    else if (mv) {
        printf("moved %s from %s to %s\n", id, a.from, a.to);
    }
    else {
        printf("mirrored %s under %s\n", id, a.to);
    }
    cli_reply_free(&r);
    return rc;
}

static const char point_get_usage[] =
    "usage: sprig point get ID [TYPE [KEY]] [FLAGS]\n"
    "\n"
    "Prints the points of node ID, or only those of type TYPE (and key KEY), one line\n"
    "each with the time it was written. Exits 1 when none match.\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static int point_get(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    node_args_t a = {0};
    cli_reply_t r;
    int rc = cli_http_parse(h, argc, argv, opts, node_flag, &a, point_get_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 1, 3, "ID [TYPE [KEY]]")) != 0) {
        return rc;
    }
    const char *id = argv[optind], *type = optind + 1 < argc ? argv[optind + 1] : NULL;
    const char *key = optind + 2 < argc ? argv[optind + 2] : NULL;
    if ((rc = cli_http_check_id(h, "ID", id)) != 0 ||
        (type != NULL && (rc = cli_http_check_id(h, "TYPE", type)) != 0) ||
        (key != NULL && (rc = cli_http_check_id(h, "KEY", key)) != 0) ||
        (rc = get_node(h, id, &r)) != 0) {
        return rc;
    }
    cJSON *pts = cJSON_GetObjectItemCaseSensitive(r.json, "points"), *p, *next;
    for (p = pts != NULL ? pts->child : NULL; p != NULL; p = next) {
        next = p->next;
        if ((type != NULL && strcmp(cli_json_str(p, "type"), type) != 0) ||
            (key != NULL && strcmp(cli_json_str(p, "key"), key) != 0)) {
            cJSON_Delete(cJSON_DetachItemViaPointer(pts, p));
        }
    }
    if (cJSON_GetArraySize(pts) == 0) {
        fprintf(stderr, "sprig %s: node %s has no point%s%s%s%s%s\n", h->cmd, id,
                type != NULL ? " " : "s", type != NULL ? type : "", key != NULL ? "[" : "",
                key != NULL ? key : "", key != NULL ? "]" : "");
        rc = 1;
    }
    else if (h->json) {
        /* cJSON prints 15 digits; write each value with the 17 that read back exactly. */
        cJSON_ArrayForEach(p, pts)
        {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "value");
            if (cJSON_IsNumber(v)) {
                double d = v->valuedouble;
                cJSON_DeleteItemFromObjectCaseSensitive(p, "value");
                sprig_json_add_exact(p, "value", d);
            }
        }
        char *s = cJSON_PrintUnformatted(pts);
        rc = s != NULL && puts(s) >= 0 && fflush(stdout) == 0 ? 0 : 1;
        cJSON_free(s);
    }
    else {
        print_points(NULL, pts);
    }
    cli_reply_free(&r);
    return rc;
}

static const char point_set_usage[] =
    "usage: sprig point set ID TYPE VALUE [--key K] [--text] [FLAGS]\n"
    "\n"
    "Writes the point TYPE of node ID, and returns once the daemon has it on disk.\n"
    "VALUE is a number, or with --text a text.\n"
    "\n"
    "flags:\n"
    "  --key K            the point's key (default 0)\n"
    "  --text             VALUE is a text, not a number\n" CLI_HTTP_FLAGS_HELP;

static int point_set(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
                                         {"text", no_argument, NULL, 'x'},
                                         CLI_HTTP_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    node_args_t a = {0};
    cli_reply_t r;
    int rc = cli_http_parse(h, argc, argv, opts, node_flag, &a, point_set_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 3, 3, "ID TYPE VALUE")) != 0) {
        return rc;
    }
    const char *id = argv[optind], *type = argv[optind + 1], *val = argv[optind + 2];
    if ((rc = cli_http_check_id(h, "ID", id)) != 0 ||
        (rc = cli_http_check_id(h, "TYPE", type)) != 0) {
        return rc;
    }
    char *end;
    double v = strtod(val, &end);
    if (!a.text && (*val == '\0' || *end != '\0' || !isfinite(v))) {
        fprintf(stderr, "sprig %s: VALUE \"%s\" is not a number (--text writes a text)\n", h->cmd,
                val);
        return 2;
    }
    cJSON *p = cJSON_CreateObject();
    bool ok = p != NULL && cJSON_AddStringToObject(p, "type", type) != NULL &&
              (a.key == NULL || cJSON_AddStringToObject(p, "key", a.key) != NULL) &&
              (a.text ? cJSON_AddStringToObject(p, "text", val) != NULL
                      : sprig_json_add_exact(p, "value", v) != NULL);
    rc = cli_http_post_point(h, id, ok ? p : NULL, &r);
    if (rc == 0 && h->json) {
        rc = cli_http_print_body(h, &r);
    }
    else if (rc == 0) {
        if (!a.text) {
            /* The body carries the value as exact raw text; show it as the number. */
            cJSON_ReplaceItemInObjectCaseSensitive(p, "value", cJSON_CreateNumber(v));
        }
        printf("%s: ", id);
        cli_print_point(stdout, p, true);
        putchar('\n');
    }
    cJSON_Delete(p);
    cli_reply_free(&r);
    return rc;
}

int cli_node(int argc, char **argv)
{
    static const cli_subcmd_t table[] = {
        {"ls", node_ls},       {"tree", node_tree}, {"get", node_get},
        {"add", node_add},     {"rm", node_edge},   {"mv", node_edge},
        {"mirror", node_edge}, {"find", node_ls},   {NULL, NULL},
    };
    return cli_http_group("node", table, argc, argv);
}

int cli_point(int argc, char **argv)
{
    static const cli_subcmd_t table[] = {{"get", point_get}, {"set", point_set}, {NULL, NULL}};
    return cli_http_group("point", table, argc, argv);
}
