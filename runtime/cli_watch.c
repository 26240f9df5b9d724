/* `sprig watch`, `sprig status`, `sprig export` and `sprig import`: follow the daemon's
 * accepted changes, show its counters, and move a whole tree in and out as one JSON
 * document, all through its HTTP API (cli_http.c). Also the point and number formatting
 * that watch and the node commands share. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <unistd.h>

#include "cli.h"
#include "cli_http.h"

#define IMPORT_MAX ((size_t)1 << 30)

typedef struct watch_args {
    const char *node, *type;
} watch_args_t;

static volatile sig_atomic_t stop_watch;

static void on_stop_signal(int signum)
{
    (void)signum;
    stop_watch = 1;
}

static int watch_flag(cli_http_t *h, int ch, const char *arg, void *ctx)
{
    watch_args_t *w = ctx;
    if (ch == 'n') {
        w->node = arg;
        return cli_http_check_id(h, "--node", arg);
    }
    if (ch == 't') {
        w->type = arg;
        return cli_http_check_id(h, "--type", arg);
    }
    return 2;
}

static const char watch_usage[] =
    "usage: sprig watch [--node ID] [--type T] [FLAGS]\n"
    "\n"
    "Follows the daemon's accepted changes and prints one line per point: time (to the\n"
    "millisecond), node (\"PARENT -> NODE\" for a point of an edge), type[key], value,\n"
    "text, \"(deleted)\" for a tombstone and who wrote it, until Ctrl-C. With --json,\n"
    "prints each event's JSON as it came, one per line.\n"
    "\n"
    "flags:\n"
    "  --node ID          only changes of node ID\n"
    "  --type T           only points of type T\n" CLI_HTTP_FLAGS_HELP;

typedef struct watch_ctx {
    cli_http_t *h;
} watch_ctx_t;

static int on_event(const char *event, const char *data, void *arg)
{
    watch_ctx_t *w = arg;
    if (strcmp(event, "points") != 0) {
        return 0; /* an event this CLI does not know yet */
    }
    if (w->h->json) {
        puts(data);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    cJSON *ev = cJSON_Parse(data), *p;
    if (!cJSON_IsObject(ev)) {
        fprintf(stderr, "sprig %s: skipped an event that is not a JSON object: %.80s\n", w->h->cmd,
                data);
        cJSON_Delete(ev);
        return 0;
    }
    const char *node = cli_json_str(ev, "node"), *up = cli_json_str(ev, "up");
    char what[160];
    if (up[0] != '\0') {
        snprintf(what, sizeof(what), "%s -> %s", up, node);
    }
    else {
        snprintf(what, sizeof(what), "%s", node);
    }
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(ev, "points"))
    {
        /* Milliseconds are enough to read: 2026-11-27T21:05:00.123Z. */
        const char *t = cli_json_str(p, "time");
        if (strlen(t) > 24 && t[19] == '.') {
            printf("%.23sZ  %-16s ", t, what);
        }
        else {
            printf("%-24s  %-16s ", t, what);
        }
        cli_print_point(stdout, p, false);
        putchar('\n');
    }
    cJSON_Delete(ev);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int watch(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {{"node", required_argument, NULL, 'n'},
                                         {"type", required_argument, NULL, 't'},
                                         CLI_HTTP_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    watch_args_t a = {0};
    char path[256] = "/v1/events";
    int rc = cli_http_parse(h, argc, argv, opts, watch_flag, &a, watch_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 0, 0, "")) != 0) {
        return rc;
    }
    if (a.node != NULL || a.type != NULL) {
        snprintf(path, sizeof(path), "/v1/events?%s%s%s%s%s", a.node != NULL ? "node=" : "",
                 a.node != NULL ? a.node : "", a.node != NULL && a.type != NULL ? "&" : "",
                 a.type != NULL ? "type=" : "", a.type != NULL ? a.type : "");
    }
    /* No SA_RESTART: Ctrl-C wakes libcurl's wait, and a second one ends the process. */
    struct sigaction sa = {.sa_handler = on_stop_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    watch_ctx_t w = {h};
    return cli_http_stream(h, path, on_event, &w, &stop_watch);
}

/* Writes seconds as "1d 02h 03m 04s", leaving out leading zero units. */
static void print_uptime(double s)
{
    long v = (long)s, d = v / 86400, hh = v / 3600 % 24, m = v / 60 % 60, sec = v % 60;
    if (d > 0) {
        printf("%ldd %02ldh %02ldm %02lds", d, hh, m, sec);
    }
    else if (hh > 0) {
        printf("%ldh %02ldm %02lds", hh, m, sec);
    }
    else if (m > 0) {
        printf("%ldm %02lds", m, sec);
    }
    else {
        printf("%lds", sec);
    }
}

static const char status_usage[] =
    "usage: sprig status [FLAGS]\n"
    "\n"
    "Prints the daemon's version, root node and root hash, node and point counts,\n"
    "uptime and counters, one per line.\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static int status(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    cli_reply_t r;
    int rc = cli_http_parse(h, argc, argv, opts, cli_no_flag, NULL, status_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 0, 0, "")) != 0 ||
        (rc = cli_http_call(h, "GET", "/v1/status", NULL, &r)) != 0) {
        return rc;
    }
    if (h->json || !cJSON_IsObject(r.json)) {
        rc = cli_http_print_body(h, &r);
        cli_reply_free(&r);
        return rc;
    }
    const cJSON *m;
    int w = 0;
    cJSON_ArrayForEach(m, r.json)
    {
        int n = (int)strlen(m->string);
        w = n > w ? n : w;
    }
    cJSON_ArrayForEach(m, r.json)
    {
        char num[40];
        printf("%-*s  ", w, m->string);
        if (cJSON_IsString(m)) {
            fputs(m->valuestring, stdout);
        }
        else if (cJSON_IsNumber(m) && strcmp(m->string, "uptime") == 0) {
            print_uptime(m->valuedouble);
        }
        else if (cJSON_IsNumber(m)) {
            fputs(cli_fmt_number(m->valuedouble, num, sizeof(num)), stdout);
        }
        else if (cJSON_IsArray(m) && strcmp(m->string, "sync") == 0) {
            /* One short line per link; `sprig sync status` has the rest. */
            const cJSON *l;
            int i = 0;
            if (cJSON_GetArraySize(m) == 0) {
                fputs("none", stdout);
            }
            cJSON_ArrayForEach(l, m)
            {
                const char *state = cli_json_str(l, "state");
                printf("%s%s %s", i++ > 0 ? ", " : "", cli_json_str(l, "id"),
                       state[0] != '\0' ? state : "-");
            }
        }
        else {
            char *s = cJSON_PrintUnformatted(m);
            fputs(s != NULL ? s : "?", stdout);
            cJSON_free(s);
        }
        putchar('\n');
    }
    cli_reply_free(&r);
    return fflush(stdout) == 0 ? 0 : 1;
}

static const char export_usage[] =
    "usage: sprig export [FLAGS] > tree.json\n"
    "\n"
    "Writes the daemon's whole tree to stdout as one JSON document: the root's id,\n"
    "every node with its points, every edge with its points, with exact times, so that\n"
    "`sprig import` on another instance merges it back as it was. Prints nothing when\n"
    "the export fails.\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static int export_tree(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    cli_reply_t r;
    int rc = cli_http_parse(h, argc, argv, opts, cli_no_flag, NULL, export_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 0, 0, "")) != 0 ||
        (rc = cli_http_call(h, "GET", "/v1/export", NULL, &r)) != 0) {
        return rc;
    }
    if (!cJSON_IsObject(r.json)) {
        fprintf(stderr, "sprig %s: the server's export is not a JSON object\n", h->cmd);
        rc = 1;
    }
    else {
        rc = cli_http_print_body(h, &r);
    }
    cli_reply_free(&r);
    return rc;
}

/* Reads all of path ("-" for stdin) into a new NUL-terminated string; caller frees. Returns
 * NULL after printing why. */
static char *read_file(cli_http_t *h, const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *s = NULL;
    size_t n = 0, cap = 0;
    if (f == NULL) {
        fprintf(stderr, "sprig %s: FILE \"%s\" cannot be read: %s\n", h->cmd, path,
                strerror(errno));
        return NULL;
    }
    for (;;) {
        if (n + 1 >= cap) {
            size_t ncap = cap != 0 ? cap * 2 : 65536;
            char *p = ncap <= IMPORT_MAX + 1 ? realloc(s, ncap) : NULL;
            if (p == NULL) {
                fprintf(stderr, "sprig %s: FILE \"%s\" is larger than %zu MiB\n", h->cmd, path,
                        IMPORT_MAX >> 20);
                goto fail;
            }
            s = p, cap = ncap;
        }
        size_t got = fread(s + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "sprig %s: FILE \"%s\" cannot be read: %s\n", h->cmd, path,
                strerror(errno));
        goto fail;
    }
    s[n] = '\0';
    *len = n;
    if (f != stdin) {
        fclose(f);
    }
    return s;
fail:
    free(s);
    if (f != stdin) {
        fclose(f);
    }
    return NULL;
}

static const char import_usage[] =
    "usage: sprig import FILE [FLAGS]\n"
    "\n"
    "Merges a document written by `sprig export` (FILE, or - for stdin) into the\n"
    "daemon's tree through its write path: its root maps onto the daemon's root, and\n"
    "each point wins or loses by the merge rule. Prints how many nodes and points\n"
    "were merged once they are on disk. The document goes to POST /v1/import, which\n"
    "takes up to the daemon's --import-max (64 MiB by default) and applies all of it\n"
    "or, when one item is refused, none of it.\n"
    "\n"
    "flags:\n"
    "  --progress         show the bytes sent on stderr (the default on a terminal)\n"
    CLI_HTTP_FLAGS_HELP;

static int import_flag(cli_http_t *h, int ch, const char *arg, void *ctx)
{
    (void)arg, (void)ctx;
    if (ch == 'p') {
        h->progress = true;
        return 0;
    }
    return 2;
}

static int import_tree(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {
        {"progress", no_argument, NULL, 'p'}, CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    cli_reply_t r;
    size_t len = 0;
    h->progress = isatty(STDERR_FILENO) == 1;
    int rc = cli_http_parse(h, argc, argv, opts, import_flag, NULL, import_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 1, 1, "FILE")) != 0) {
        return rc;
    }
    const char *path = argv[optind];
    char *doc = read_file(h, path, &len);
    if (doc == NULL) {
        return 2;
    }
    /* Check here that it is one JSON object, to point at the line that is wrong; the
     * text itself is sent as it is, so no number is rounded on the way. */
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(doc, len + 1, &end, true);
    if (!cJSON_IsObject(j) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "nodes")) ||
        strlen(doc) != len) {
        int line = 1, col = 1;
        for (const char *p = doc; j == NULL && end != NULL && p < end && *p != '\0'; p++) {
            line += *p == '\n', col = *p == '\n' ? 1 : col + 1;
        }
        if (j == NULL) {
            fprintf(stderr, "sprig %s: FILE \"%s\" is not JSON (line %d, column %d)\n", h->cmd,
                    path, line, col);
        }
        else {
            fprintf(stderr,
                    "sprig %s: FILE \"%s\" is not an export: it needs an object with a "
                    "\"nodes\" array (see sprig export)\n",
                    h->cmd, path);
        }
        cJSON_Delete(j);
        free(doc);
        return 2;
    }
    cJSON_Delete(j);
#ifdef __GLIBC__
    /* The check's parse of a whole site is ten times the text: give it back before the
     * upload, while the daemon needs its own memory to import. */
    malloc_trim(0);
#endif
    rc = cli_http_call(h, "POST", "/v1/import", doc, &r);
    free(doc);
    if (rc != 0) {
        return rc;
    }
    if (h->json) {
        rc = cli_http_print_body(h, &r);
    }
    else {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(r.json, "nodes");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(r.json, "points");
        printf("imported %s: %.0f nodes, %.0f points merged\n", path,
               cJSON_IsNumber(n) ? n->valuedouble : 0, cJSON_IsNumber(p) ? p->valuedouble : 0);
    }
    cli_reply_free(&r);
    return rc;
}

char *cli_fmt_number(double v, char *out, size_t n)
{
    snprintf(out, n, "%.15g", v);
    if (strtod(out, NULL) != v && !isnan(v)) {
        snprintf(out, n, "%.17g", v);
    }
    return out;
}

/* Writes s in double quotes, with control characters escaped so it stays on one line. */
static void print_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            fprintf(f, "\\%c", ch);
        }
        else if (ch == '\n') {
            fputs("\\n", f);
        }
        else if (ch < 0x20 || ch == 0x7f) {
            fprintf(f, "\\x%02x", ch);
        }
        else {
            fputc(ch, f);
        }
    }
    fputc('"', f);
}

void cli_print_point(FILE *f, const cJSON *p, bool exact)
{
    const char *key = cli_json_str(p, "key"), *text = cli_json_str(p, "text");
    const char *origin = cli_json_str(p, "origin");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "value");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "tombstone");
    double value = cJSON_IsNumber(v) ? v->valuedouble : 0;
    char num[40];
    fputs(cli_json_str(p, "type"), f);
    if (key[0] != '\0' && strcmp(key, "0") != 0) {
        fprintf(f, "[%s]", key);
    }
    fputs(" =", f);
    if (text[0] == '\0' || value != 0) {
        if (exact) {
            cli_fmt_number(value, num, sizeof(num));
        }
        else {
            snprintf(num, sizeof(num), "%.8g", value);
        }
        fprintf(f, " %s", num);
    }
    if (text[0] != '\0') {
        fputc(' ', f);
        print_quoted(f, text);
    }
    if (cJSON_IsNumber(t) && t->valuedouble != 0) {
        fputs(" (deleted)", f);
    }
    if (origin[0] != '\0') {
        fprintf(f, " by %s", origin);
    }
}

const char *cli_json_str(const cJSON *o, const char *name)
{
    const cJSON *s = o != NULL ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
    return cJSON_IsString(s) && s->valuestring != NULL ? s->valuestring : "";
}

/* A flag parser for commands that take no flags of their own (cli_http_parse). */
int cli_no_flag(cli_http_t *h, int ch, const char *arg, void *ctx)
{
    (void)h, (void)ch, (void)arg, (void)ctx;
    return 2;
}

const cJSON *cli_live_point(const cJSON *node, const char *type)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(node, "points"))
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "tombstone");
        if (strcmp(cli_json_str(p, "type"), type) == 0 &&
            strcmp(cli_json_str(p, "key"), "0") == 0 &&
            !(cJSON_IsNumber(t) && t->valuedouble != 0)) {
            return p;
        }
    }
    return NULL;
}

const char *cli_point_text(const cJSON *node, const char *type)
{
    return cli_json_str(cli_live_point(node, type), "text");
}

bool cli_point_value(const cJSON *node, const char *type, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cli_live_point(node, type), "value");
    if (!cJSON_IsNumber(v)) {
        return false;
    }
    *out = v->valuedouble;
    return true;
}

/* Runs one command with its own client; argv[0] is the command's name. */
static int run(const char *cmd, int (*fn)(cli_http_t *, int, char **), int argc, char **argv)
{
    cli_http_t h;
    cli_http_init(&h, cmd);
    int rc = fn(&h, argc, argv);
    cli_http_close(&h);
    return rc;
}

int cli_watch(int argc, char **argv)
{
    return run("watch", watch, argc, argv);
}

int cli_status(int argc, char **argv)
{
    return run("status", status, argc, argv);
}

int cli_export(int argc, char **argv)
{
    return run("export", export_tree, argc, argv);
}

int cli_import(int argc, char **argv)
{
    return run("import", import_tree, argc, argv);
}
