/* `sprig run`: the daemon. One libuv loop runs the core, the drivers and the printer of
 * accepted changes; SIGINT or SIGTERM stops it after the last batch is committed. It
 * exits 0 when every accepted row is on disk, 1 when some could not be written at the
 * stop (each lost batch is logged), 2 when it cannot start (bad usage, or a database it
 * cannot write). */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include "cli.h"
#include "sprig/api.h"
#include "sprig/core.h"
#include "sprig/store.h"
#include "sprig/driver.h"
#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/rules.h"
#include "sprig/sync.h"
#include "sprig/util.h"

typedef struct run_ctx {
    sprig_core_t *core;
    const char *schema_dirs[2];
    size_t nschema;
    sprig_schema_t *schema;  /* in force */
    uv_fs_event_t *watch[2]; /* the schema folders, for hot reload; freed when closed */
    uv_timer_t *reload;      /* debounce of a burst of file events */
    uv_loop_t *loop;
    uv_signal_t sigint, sigterm;
    bool json, quiet;
    uint64_t watched_batch; /* newest batch a durable line is awaited for */
    int stop_signal;
} run_ctx_t;

static void run_usage(FILE *f)
{
    fputs("usage: sprig run [FLAGS]\n"
          "\n"
          "Runs the daemon: loads the tree from the database, starts a driver for each\n"
          "driver node, and prints every accepted point change, one line each, until\n"
          "SIGINT or SIGTERM (the last batch is committed before it exits).\n"
          "\n"
          "It refuses to start (exit 2) on a database it cannot write. While the database\n"
          "cannot be written (disk full, I/O error) API writes answer 503 and the store\n"
          "tries again until it can; exit 1 means rows could not be written at the stop.\n"
          "\n"
          "flags:\n"
          "  --db FILE           SQLite database (default sprig.db); created when missing\n"
          "  --store URI         the database as a URI instead: postgresql://USER@HOST[:PORT]/DB\n"
          "                      (libpq's form; the tables are created in DB) or sqlite:FILE\n"
          "  --demo              seed a demo plant of signal generators when the tree is empty\n"
          "  --demo-rate HZ      sample rate of the demo generators, 1-1000 (default 2)\n"
          "  --schema DIR        node types of your own, beside the shipped ones (the\n"
          "                      folders are watched: a valid edit applies at once)\n"
          "  --rules DIR         import every DIR/NAME.lua as rule NAME, and follow edits\n"
          "                      (default: rules/ when it exists; with --demo, the shipped\n"
          "                      example rules; \"off\" imports none)\n"
          "  --serve-sync        be an upstream: keep the trees of the devices that sync\n"
          "                      to --sync-broker under this root (DESIGN.md section 5)\n"
          "  --sync-broker URI   mqtt://host:port or mqtts://host:port, or a comma-separated\n"
          "                      list of them: the next is used when one is gone\n"
          "  --sync-ca FILE, --sync-cert FILE, --sync-key FILE\n"
          "                      TLS: the broker's CA, this client's certificate and key\n"
          "  --sync-user NAME, --sync-password-file FILE\n"
          "                      credentials at the broker\n"
          "  --sync-max-message BYTES\n"
          "                      largest message taken from a device, 1024-268435456\n"
          "                      (default 4 MiB)\n"
          "  --listen ADDR:PORT  serve the HTTP API there (default 127.0.0.1:8118; port 0\n"
          "                      picks a free one; \"off\" serves none)\n"
          "  --token-file FILE   require this bearer token (needed off loopback)\n"
          "  --import-max BYTES  largest POST /v1/import body (a whole export), 1048576-\n"
          "                      4294967296 (default 64 MiB); other requests take 1 MiB\n"
          "  --json              print one JSON object per change, and {\"durable\":N} once\n"
          "                      store batch N is on disk\n"
          "  --quiet             do not print changes\n"
          "  --commit-ms MS      longest wait before a store batch is committed, 1-1000\n"
          "                      (default 5)\n"
          "  --log-level LEVEL   error, warn, info (default) or debug\n"
          "  -h, --help          show this help\n",
          f);
}

static void print_durable(uint64_t batch, int status, void *arg)
{
    (void)arg;
    if (status == 0) {
        printf("{\"durable\":%" PRIu64 "}\n", batch);
    }
}

static void print_json(run_ctx_t *r, const sprig_event_t *ev)
{
    char t[40];
    const sprig_point_t *p = ev->point;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return;
    }
    cJSON_AddStringToObject(o, "node", ev->node);
    if (ev->edge_up != NULL) {
        cJSON_AddStringToObject(o, "up", ev->edge_up);
    }
    cJSON_AddStringToObject(o, "type", p->type);
    cJSON_AddStringToObject(o, "key", p->key);
    cJSON_AddStringToObject(o, "time", sprig_time_format(p->time, t, sizeof(t)));
    /* cJSON prints 15 digits; 17 are needed for the value to read back bit for bit. */
    char value[32];
    snprintf(value, sizeof(value), "%.17g", p->value);
    cJSON_AddRawToObject(o, "value", value);
    cJSON_AddStringToObject(o, "text", p->text);
    cJSON_AddNumberToObject(o, "tombstone", p->tombstone);
    cJSON_AddStringToObject(o, "origin", p->origin);
    cJSON_AddNumberToObject(o, "batch", (double)ev->batch);
    char *s = cJSON_PrintUnformatted(o);
    if (s != NULL) {
        puts(s);
        cJSON_free(s);
    }
    cJSON_Delete(o);
    if (ev->batch > r->watched_batch) {
        r->watched_batch = ev->batch;
        sprig_core_when_durable(r->core, ev->batch, print_durable, r);
    }
}

static void on_change(const sprig_event_t *ev, void *arg)
{
    run_ctx_t *r = arg;
    if (r->json) {
        print_json(r, ev);
        return;
    }
    char t[40], what[2 * SPRIG_ID_MAX + 8], name[2 * SPRIG_ID_MAX + 8];
    const sprig_point_t *p = ev->point;
    sprig_time_format(p->time, t, sizeof(t));
    t[23] = 'Z', t[24] = '\0'; /* milliseconds are enough to read */
    if (ev->edge_up != NULL) {
        snprintf(what, sizeof(what), "%s -> %s", ev->edge_up, ev->node);
    }
    else {
        snprintf(what, sizeof(what), "%s", ev->node);
    }
    if (strcmp(p->key, "0") != 0) {
        snprintf(name, sizeof(name), "%s[%s]", p->type, p->key);
    }
    else {
        snprintf(name, sizeof(name), "%s", p->type);
    }
    char value[48] = "";
    if (p->text[0] == '\0' || p->value != 0) {
        snprintf(value, sizeof(value), "%.6g%s", p->value, p->text[0] != '\0' ? " " : "");
    }
    printf("%s  %-16s %-12s = %s%s%s%s%s%s%s\n", t, what, name, value,
           p->text[0] != '\0' ? "\"" : "", p->text, p->text[0] != '\0' ? "\"" : "",
           p->tombstone ? " (deleted)" : "", p->origin[0] != '\0' ? "  by " : "", p->origin);
}

/* Reads a bearer token from a file (surrounding white space dropped); prints the error. */
static int read_token(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "sprig run: --token-file %s cannot be read: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len = fread(out, 1, n - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    out[len] = '\0';
    char *s = out;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
        s++;
    }
    len = strlen(s);
    while (len > 0 &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r')) {
        s[--len] = '\0';
    }
    memmove(out, s, len + 1);
    if (more || len < 16) {
        fprintf(stderr, "sprig run: --token-file %s: the token must be 16 to %zu bytes (has %s)\n",
                path, n - 1, more ? "more" : "fewer");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (out[i] < 0x21 || out[i] > 0x7e) {
            fprintf(stderr,
                    "sprig run: --token-file %s: the token must be printable ASCII "
                    "without spaces\n",
                    path);
            return -1;
        }
    }
    return 0;
}

static void print_schema_error(const char *msg, void *arg)
{
    (void)arg;
    sprig_log_error("schema: %s", msg);
}

/* The nodes of types the schema in force does not declare: how many, and the first few
 * of those types. */
typedef struct undeclared {
    const sprig_schema_t *schema;
    size_t nodes, ntypes; /* ntypes: how many of types[] are filled */
    bool more;            /* there are further types than types[] holds */
    const char *types[4];
} undeclared_t;

static int count_undeclared(sprig_node_t *n, void *arg)
{
    undeclared_t *u = arg;
    const char *type = sprig_node_type(n);
    if (sprig_schema_type(u->schema, type) != NULL) {
        return 0;
    }
    u->nodes++;
    for (size_t i = 0; i < u->ntypes; i++) {
        if (strcmp(u->types[i], type) == 0) {
            return 0;
        }
    }
    if (u->ntypes < sizeof(u->types) / sizeof(u->types[0])) {
        u->types[u->ntypes++] = type;
    }
    else {
        u->more = true;
    }
    return 0;
}

/* Says once per load that nodes of undeclared types (a database made under another
 * schema) are kept and written unchecked, while new ones of those types are refused. */
static void warn_undeclared(run_ctx_t *r)
{
    undeclared_t u = {.schema = r->schema};
    sprig_tree_each_node(sprig_core_tree(r->core), count_undeclared, &u);
    if (u.nodes == 0) {
        return;
    }
    char list[4 * (SPRIG_ID_MAX + 2) + 16] = "";
    size_t used = 0;
    for (size_t i = 0; i < u.ntypes; i++) {
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i > 0 ? ", " : "",
                                 u.types[i]);
    }
    if (u.more) {
        snprintf(list + used, sizeof(list) - used, ", ...");
    }
    sprig_log_warn("schema: %zu node%s of a type no schema declares (%s): kept and written "
                   "unchecked, but no new node of such a type is accepted until a schema "
                   "declares it (open = true takes any point)",
                   u.nodes, u.nodes == 1 ? " is" : "s are", list);
}

/* Loads the schema folders; on success swaps the new schema in. */
static int load_schema(run_ctx_t *r)
{
    sprig_schema_t *s = NULL;
    int errors = sprig_schema_load(r->schema_dirs, r->nschema, &s, print_schema_error, NULL);
    if (errors != 0) {
        return -1;
    }
    sprig_core_set_schema(r->core, s);
    sprig_schema_free(r->schema);
    r->schema = s;
    size_t n = 0;
    while (sprig_schema_type_at(s, n) != NULL) {
        n++;
    }
    sprig_log_info("schema: %zu node types from %s%s%s", n, r->schema_dirs[0],
                   r->nschema > 1 ? " and " : "", r->nschema > 1 ? r->schema_dirs[1] : "");
    warn_undeclared(r);
    return 0;
}

static void on_reload(uv_timer_t *t)
{
    run_ctx_t *r = t->data;
    if (load_schema(r) != 0) {
        sprig_log_error("schema: the edit is refused; the previous schema stays in force");
    }
}

static void on_schema_change(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)events;
    run_ctx_t *r = h->data;
    if (status == 0 && name != NULL && strlen(name) > 4 &&
        strcmp(name + strlen(name) - 4, ".lua") == 0) {
        uv_timer_start(r->reload, on_reload, 100, 0);
    }
}

static void free_on_close(uv_handle_t *h)
{
    free(h);
}

static void on_signal(uv_signal_t *h, int signum)
{
    run_ctx_t *r = h->data;
    r->stop_signal = signum;
    uv_stop(r->loop);
}

typedef struct demo_gen {
    const char *id, *kind, *description;
    double amplitude, offset, period;
} demo_gen_t;

static const demo_gen_t demo_gens[] = {
    {"demo-temp", "sine", "Tank temperature (degC), sine", 5, 21, 30},
    {"demo-pump", "square", "Pump running (1/0), square", 0.5, 0.5, 20},
    {"demo-level", "triangle", "Tank level (%), triangle", 40, 50, 60},
    {"demo-flow", "random", "Flow (l/min), random walk", 3, 12, 15},
};

/* Seeds the demo plant when the root has no children; with a rate, sets it either way. */
static int seed_demo(sprig_core_t *c, long rate, bool rate_given)
{
    sprig_error_t err;
    const char *root = sprig_core_root_id(c);
    sprig_node_t *rn = sprig_tree_root(sprig_core_tree(c));
    int rc;
    if (sprig_node_children(rn) == NULL) {
        sprig_point_t gp[] = {{.type = "description", .text = "Demo plant"}};
        if ((rc = sprig_core_create(c, "demo-plant", "group", root, gp, 1, NULL, NULL, &err)) !=
            0) {
            goto fail;
        }
        for (size_t i = 0; i < sizeof(demo_gens) / sizeof(demo_gens[0]); i++) {
            const demo_gen_t *g = &demo_gens[i];
            sprig_point_t pts[] = {
                {.type = "description", .text = g->description},
                {.type = "signalType", .text = g->kind},
                {.type = "amplitude", .value = g->amplitude},
                {.type = "offset", .value = g->offset},
                {.type = "period", .value = g->period},
                {.type = "sampleRate", .value = (double)rate},
            };
            if ((rc = sprig_core_create(c, g->id, "signalGenerator", "demo-plant", pts, 6, NULL,
                                        NULL, &err)) != 0) {
                goto fail;
            }
        }
        sprig_point_t cp[] = {
            {.type = "description", .text = "Cooler, driven by the example rules"}};
        if ((rc = sprig_core_create(c, "demo-cooler", "group", "demo-plant", cp, 1, NULL, NULL,
                                    &err)) != 0) {
            goto fail;
        }
        sprig_log_info("demo: seeded demo-plant with %zu signal generators and demo-cooler",
                       sizeof(demo_gens) / sizeof(demo_gens[0]));
        return 0;
    }
    for (size_t i = 0; rate_given && i < sizeof(demo_gens) / sizeof(demo_gens[0]); i++) {
        sprig_point_t p = {.type = "sampleRate", .value = (double)rate};
        if (sprig_tree_node(sprig_core_tree(c), demo_gens[i].id) != NULL &&
            (rc = sprig_core_write(c, demo_gens[i].id, &p, 1, NULL, &err)) != 0) {
            goto fail;
        }
    }
    return 0;
fail:
    sprig_log_error("demo: %s", err.msg);
    return rc;
}

int cli_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"store", required_argument, NULL, 'O'},
        {"demo", no_argument, NULL, 'D'},
        {"demo-rate", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"commit-ms", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"listen", required_argument, NULL, 'L'},
        {"schema", required_argument, NULL, 'S'},
        {"token-file", required_argument, NULL, 't'},
        {"rules", required_argument, NULL, 'R'},
        {"serve-sync", no_argument, NULL, 's'},
        {"sync-broker", required_argument, NULL, 'B'},
        {"sync-ca", required_argument, NULL, 'A'},
        {"sync-cert", required_argument, NULL, 'C'},
        {"sync-key", required_argument, NULL, 'K'},
        {"sync-user", required_argument, NULL, 'U'},
        {"sync-password-file", required_argument, NULL, 'P'},
        {"sync-max-message", required_argument, NULL, 'M'},
        {"import-max", required_argument, NULL, 'I'},
        {NULL, 0, NULL, 0},
    };
    const char *db = "sprig.db", *listen = "127.0.0.1:8118", *token_file = NULL;
    const char *rules_dir = NULL;
    bool serve_sync = false;
    sprig_sync_opts_t so = {.upstream = true};
    const char *sync_password_file = NULL;
    char sync_password[256] = "";
    char token[256] = "";
    bool demo = false, rate_given = false, db_given = false;
    long rate = 2, commit_ms = 5, import_max = 0;
    run_ctx_t r = {0};
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd':
        case 'O':
            if (cli_store_flag("sprig run", ch == 'd' ? "db" : "store", optarg, &db,
                               &db_given) != 0) {
                return 2;
            }
            break;
        case 'D':
            demo = true;
            break;
        case 'L':
            listen = optarg;
            break;
        case 'S':
            r.schema_dirs[1] = optarg;
            break;
        case 't':
            token_file = optarg;
            break;
        case 's':
            serve_sync = true;
            break;
        case 'B':
            so.uri = optarg;
            break;
        case 'A':
            so.ca_file = optarg;
            break;
        case 'C':
            so.cert_file = optarg;
            break;
        case 'K':
            so.key_file = optarg;
            break;
        case 'U':
            so.username = optarg;
            break;
        case 'P':
            sync_password_file = optarg;
            break;
        case 'M': {
            long v;
            if (cli_parse_long("run", "--sync-max-message", optarg, 1024, 268435456L, &v) != 0) {
                return 2;
            }
            so.max_msg = (size_t)v;
            break;
        }
        case 'I':
            if (cli_parse_long("run", "--import-max", optarg, 1048576L, 4294967296L, &import_max) !=
                0) {
                return 2;
            }
            break;
        case 'R':
            if (optarg[0] == '\0') {
                fprintf(stderr, "sprig run: --rules \"\" must name a folder, or be \"off\"\n");
                return 2;
            }
            rules_dir = optarg;
            break;
        case 'r':
            if (cli_parse_long("run", "--demo-rate", optarg, 1, 1000, &rate) != 0) {
                return 2;
            }
            rate_given = true;
            break;
        case 'j':
            r.json = true;
            break;
        case 'q':
            r.quiet = true;
            break;
        case 'c':
            if (cli_parse_long("run", "--commit-ms", optarg, 1, 1000, &commit_ms) != 0) {
                return 2;
            }
            break;
        case 'l': {
            sprig_log_level_t level;
            if (sprig_log_parse_level(optarg, &level) != 0) {
                fprintf(stderr,
                        "sprig run: --log-level \"%s\" must be error, warn, info or debug\n",
                        optarg);
                return 2;
            }
            sprig_log_set_level(level);
            break;
        }
        case 'h':
            run_usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "sprig run: flag %s needs a value (see sprig run --help)\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "sprig run: unknown flag %s (see sprig run --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sprig run: unexpected argument \"%s\" (see sprig run --help)\n",
                argv[optind]);
        return 2;
    }
    if (rate_given && !demo) {
        fprintf(stderr, "sprig run: --demo-rate needs --demo\n");
        return 2;
    }
    if (token_file != NULL && read_token(token_file, token, sizeof(token)) != 0) {
        return 2;
    }
    if (serve_sync != (so.uri != NULL)) {
        fprintf(stderr, "sprig run: --serve-sync and --sync-broker go together\n");
        return 2;
    }
    if (sync_password_file != NULL) {
        FILE *f = fopen(sync_password_file, "r");
        if (f == NULL || fgets(sync_password, sizeof(sync_password), f) == NULL) {
            fprintf(stderr, "sprig run: --sync-password-file %s cannot be read\n",
                    sync_password_file);
            if (f != NULL) {
                fclose(f);
            }
            return 2;
        }
        fclose(f);
        sync_password[strcspn(sync_password, "\r\n")] = '\0';
        so.password = sync_password;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    uv_loop_t loop;
    sprig_error_t err;
    sprig_drivers_t *drivers = NULL;
    sprig_api_t *api = NULL;
    sprig_rules_t *rules = NULL;
    sprig_rules_dir_t *rdir = NULL;
    sprig_sync_t *upstream = NULL;
    char examples[PATH_MAX];
    struct stat st;
    if (rules_dir == NULL && demo) {
        rules_dir =
            cli_shipped_dir("scripts/examples", "SPRIG_EXAMPLES_DIR", examples, sizeof(examples));
    }
    else if (rules_dir == NULL && stat("rules", &st) == 0 && S_ISDIR(st.st_mode)) {
        rules_dir = "rules";
    }
    else if (rules_dir != NULL && strcmp(rules_dir, "off") != 0 &&
             (stat(rules_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "sprig run: --rules %s is not a folder\n", rules_dir);
        return 2;
    }
    if (rules_dir != NULL && strcmp(rules_dir, "off") == 0) {
        rules_dir = NULL;
    }
    int code = 2;
    /* Past a file size limit (ulimit -f) a write then fails with EFBIG, which the store
     * reports and retries like a full disk, instead of the signal killing the daemon. */
    signal(SIGXFSZ, SIG_IGN);
    uv_loop_init(&loop);
    r.loop = &loop;
    sprig_core_opts_t co = {.db_path = db, .store = {.commit_ms = (unsigned)commit_ms}};
    if (sprig_core_open(&loop, &co, &r.core, &err) != 0) {
        fprintf(stderr, "sprig run: %s\n", err.msg);
        goto done;
    }
    char db_name[512]; /* as logs show it: a URI without its password */
    snprintf(db_name, sizeof(db_name), "%s", sprig_store_name(sprig_core_store(r.core)));
    db = db_name;
    sprig_tree_t *t = sprig_core_tree(r.core);
    sprig_log_info("database %s: %zu nodes, %zu points, root %s hash %016" PRIx64, db,
                   sprig_tree_node_count(t), sprig_tree_point_count(t), sprig_core_root_id(r.core),
                   sprig_tree_root_hash(t));
    char shipped[PATH_MAX];
    r.schema_dirs[0] = cli_schema_shipped_dir(shipped, sizeof(shipped));
    r.nschema = r.schema_dirs[1] != NULL ? 2 : 1;
    if (load_schema(&r) != 0) {
        fprintf(stderr, "sprig run: the schema in %s%s%s has errors (above)\n", r.schema_dirs[0],
                r.nschema > 1 ? " and " : "", r.nschema > 1 ? r.schema_dirs[1] : "");
        goto done;
    }
    r.reload = malloc(sizeof(*r.reload));
    if (r.reload != NULL) {
        uv_timer_init(&loop, r.reload);
        r.reload->data = &r;
    }
    for (size_t i = 0; i < r.nschema && r.reload != NULL; i++) {
        r.watch[i] = malloc(sizeof(*r.watch[i]));
        if (r.watch[i] != NULL) {
            uv_fs_event_init(&loop, r.watch[i]);
            r.watch[i]->data = &r;
            if (uv_fs_event_start(r.watch[i], on_schema_change, r.schema_dirs[i], 0) != 0) {
                sprig_log_warn("schema: %s cannot be watched; edits apply at the next start",
                               r.schema_dirs[i]);
            }
        }
    }
    if (!r.quiet && sprig_bus_subscribe(sprig_core_bus(r.core), NULL, on_change, &r, NULL) != 0) {
        goto done;
    }
    if (demo && seed_demo(r.core, rate, rate_given) != 0) {
        goto done;
    }
    if (strcmp(listen, "off") != 0) {
        sprig_api_opts_t ao = {.listen = listen,
                               .token = token[0] != '\0' ? token : NULL,
                               .import_max = (size_t)import_max};
        if (sprig_api_start(r.core, &ao, &api, &err) != 0) {
            fprintf(stderr, "sprig run: --listen: %s\n", err.msg);
            goto done;
        }
    }
    if (sprig_drivers_start(r.core, sprig_drivers, &drivers) != 0) {
        fprintf(stderr, "sprig run: drivers cannot start: out of memory\n");
        goto done;
    }
    if (rules_dir != NULL && sprig_rules_dir_open(r.core, rules_dir, true, &rdir, &err) != 0) {
        fprintf(stderr, "sprig run: %s\n", err.msg);
        goto done;
    }
    if (sprig_rules_start(r.core, NULL, &rules) != 0) {
        fprintf(stderr, "sprig run: rules cannot start: out of memory\n");
        goto done;
    }
    if (serve_sync && sprig_sync_start(r.core, &so, &upstream, &err) != 0) {
        fprintf(stderr, "sprig run: --sync-broker: %s\n", err.msg);
        goto done;
    }
    uv_signal_init(&loop, &r.sigint);
    uv_signal_init(&loop, &r.sigterm);
    r.sigint.data = r.sigterm.data = &r;
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
    sprig_log_info("signal %d: stopping", r.stop_signal);
    code = 0;
done:
    sprig_sync_stop(upstream);
    sprig_rules_dir_close(rdir);
    sprig_rules_stop(rules);
    sprig_drivers_stop(drivers);
    sprig_api_stop(api);
    if (r.core != NULL) {
        t = sprig_core_tree(r.core);
        uint64_t root_hash = sprig_tree_root_hash(t);
        if (sprig_core_close(r.core) != 0) {
            sprig_log_error("database %s: closed, but rows accepted before the stop could not "
                            "be written (lost batches above)",
                            db);
            code = code == 0 ? 1 : code;
        }
        else if (code == 0) {
            sprig_log_info("database %s: closed, every batch committed, root hash %016" PRIx64, db,
                           root_hash);
        }
    }
    for (size_t i = 0; i < 2; i++) {
        if (r.watch[i] != NULL) {
            uv_close((uv_handle_t *)r.watch[i], free_on_close);
        }
    }
    if (r.reload != NULL) {
        uv_close((uv_handle_t *)r.reload, free_on_close);
    }
    if (uv_is_active((uv_handle_t *)&r.sigint) || r.sigint.loop != NULL) {
        uv_close((uv_handle_t *)&r.sigint, NULL);
        uv_close((uv_handle_t *)&r.sigterm, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    sprig_schema_free(r.schema);
    return code;
}
