/* `sprig rule ls|show|enable|disable`: the rules of a running daemon, read and switched
 * through its HTTP API (cli_http.c), as their points say (scripts/README.md); and the
 * `sprig rule` dispatcher (`rule test` is cli_rule.c). */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_http.h"
#include "sprig/json.h"
#include "sprig/util.h"

/* --- the rules of a running daemon: ls, show, enable, disable ---------------------- */

#define LS_COLUMNS 120 /* rule ls cuts the error to end its line here */

static void rule_usage(FILE *f)
{
    fputs("usage: sprig rule COMMAND [ARGS] [FLAGS]\n"
          "\n"
          "A rule is a node of type rule whose script point holds Lua (scripts/README.md).\n"
          "\n"
          "commands:\n"
          "  test RULE.lua [--fixture TREE.json] [--steps STEPS.lua]\n"
          "               run a rule offline with simulated time (needs no daemon)\n"
          "  ls           list the rules: state (running, disabled, error), runs, last run,\n"
          "               file and the first line of the error\n"
          "  show ID      a rule's points, its whole error and its script with line numbers\n"
          "  enable ID    set the rule's disabled point to 0: it runs again\n"
          "  disable ID   set the rule's disabled point to 1: it stops\n"
          "\n"
          "ls, show, enable and disable talk to a running daemon: --url URL (default\n"
          "  " CLI_HTTP_DEFAULT_URL "), --token-file FILE, --json.\n"
          "`sprig rule COMMAND --help` explains each one and its flags.\n",
          f);
}

static const char ls_usage[] =
    "usage: sprig rule ls [FLAGS]\n"
    "\n"
    "Lists the rules of the tree, one line each: id, state (running; disabled when its\n"
    "disabled point is set; error when its error point is not empty), how many times a\n"
    "handler ran, when one last ran (RFC 3339 UTC, - for never), the file of the rules\n"
    "folder it came from (- for none) and the first line of its error, cut to fit 120\n"
    "columns (sprig rule show ID prints all of it).\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static const char show_usage[] =
    "usage: sprig rule show ID [FLAGS]\n"
    "\n"
    "Prints the rule ID: its description, file, disabled, active, runs, last run and\n"
    "state, its whole error, then its script with line numbers (an error\n"
    "\"FILE:LINE: message\" names the line).\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static const char enable_usage[] =
    "usage: sprig rule enable ID [FLAGS]\n"
    "\n"
    "Sets the disabled point of rule ID to 0, and returns once the daemon has it on disk:\n"
    "the rule loads its script again and runs (a rule stopped for running over its budget\n"
    "starts again too).\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static const char disable_usage[] =
    "usage: sprig rule disable ID [FLAGS]\n"
    "\n"
    "Sets the disabled point of rule ID to 1, and returns once the daemon has it on disk:\n"
    "its handlers and timers stop until sprig rule enable ID.\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

static bool point_set_true(const cJSON *node, const char *type)
{
    double v;
    return cli_point_value(node, type, &v) && v != 0;
}

/* running, disabled (before an error it may still carry) or error. */
static const char *rule_state(const cJSON *node)
{
    if (point_set_true(node, "disabled")) {
        return "disabled";
    }
    return cli_point_text(node, "error")[0] != '\0' ? "error" : "running";
}

/* The lastRun point as RFC 3339 UTC, to the second (with frac, to the nanosecond), or
 * "-" when the rule never ran. out holds at least 40 bytes. */
static const char *last_run(const cJSON *node, bool frac, char *out, size_t n)
{
    double ns;
    if (!cli_point_value(node, "lastRun", &ns) || !(ns > 0) || ns > 9.2e18) {
        return "-";
    }
    sprig_time_format((int64_t)ns, out, n);
    if (!frac && strlen(out) > 19) {
        out[19] = 'Z';
        out[20] = '\0';
    }
    return out;
}

static long runs_of(const cJSON *node)
{
    double v;
    return cli_point_value(node, "runs", &v) && v >= 0 && v < 9e18 ? (long)v : 0;
}

/* Writes n bytes of s, a control character (a script's or error's escape sequence) as '?'
 * so that it cannot steer the terminal; a tab stays when keep_tab. */
static void put_clean(const char *s, size_t n, bool keep_tab)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        putchar((c < 0x20 && !(keep_tab && c == '\t')) || c == 0x7f ? '?' : c);
    }
}

/* Sorts node objects by id. */
static int by_id(const void *x, const void *y)
{
    return strcmp(cli_json_str(*(const cJSON *const *)x, "id"),
                  cli_json_str(*(const cJSON *const *)y, "id"));
}

/* The first line of err, cut to width bytes (at a UTF-8 character's start) with "..."
 * when longer or followed by more lines. */
static void put_first_line(const char *err, int width)
{
    size_t n = strcspn(err, "\r\n");
    bool more = err[n] != '\0';
    if (n > (size_t)width || more) {
        size_t keep = n > (size_t)width - 3 ? (size_t)width - 3 : n;
        while (keep > 0 && ((unsigned char)err[keep] & 0xC0) == 0x80) {
            keep--;
        }
        put_clean(err, keep, false);
        fputs("...", stdout);
        return;
    }
    put_clean(err, n, false);
}

static int rule_ls(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    cli_reply_t r = {0};
    const cJSON **v = NULL;
    int rc = cli_http_parse(h, argc, argv, opts, cli_no_flag, NULL, ls_usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 0, 0, "")) != 0 ||
        (rc = cli_http_call(h, "GET", "/v1/nodes?type=rule", NULL, &r)) != 0) {
        return rc;
    }
    if (h->json) {
        rc = cli_http_print_body(h, &r);
        goto done;
    }
    const cJSON *list = r.json, *n;
    rc = 1;
    if (!cJSON_IsArray(list)) {
        fprintf(stderr, "sprig %s: the server's node list is not a JSON array\n", h->cmd);
        goto done;
    }
    size_t count = (size_t)cJSON_GetArraySize(list), i = 0;
    if (count == 0) {
        printf("no rules (sprig run --rules DIR imports DIR/NAME.lua as rule NAME)\n");
        rc = 0;
        goto done;
    }
    if ((v = calloc(count, sizeof(*v))) == NULL) {
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        goto done;
    }
    int wi = 2, wr = 4, wf = 4;
    char t[40], num[32];
    cJSON_ArrayForEach(n, list)
    {
        v[i++] = n;
        int li = (int)strlen(cli_json_str(n, "id")), lf = (int)strlen(cli_point_text(n, "file"));
        int lr = snprintf(num, sizeof(num), "%ld", runs_of(n));
        wi = li > wi ? li : wi, wr = lr > wr ? lr : wr, wf = lf > wf ? lf : wf;
    }
    qsort(v, count, sizeof(*v), by_id);
    /* Columns: id, state (8), runs, last run (20), file, error. */
    int werr = LS_COLUMNS - (wi + 2 + 8 + 2 + wr + 2 + 20 + 2 + wf + 2);
    werr = werr < 24 ? 24 : werr;
    printf("%-*s  %-8s  %*s  %-20s  %-*s  %s\n", wi, "ID", "STATE", wr, "RUNS", "LAST RUN", wf,
           "FILE", "ERROR");
    for (i = 0; i < count; i++) {
        const char *file = cli_point_text(v[i], "file"), *err = cli_point_text(v[i], "error");
        /* No padding after the last column, so no line ends in spaces. */
        printf("%-*s  %-8s  %*ld  %-20s  %-*s", wi, cli_json_str(v[i], "id"), rule_state(v[i]), wr,
               runs_of(v[i]), last_run(v[i], false, t, sizeof(t)), err[0] != '\0' ? wf : 0,
               file[0] != '\0' ? file : "-");
        if (err[0] != '\0') {
            fputs("  ", stdout);
            put_first_line(err, werr);
        }
        putchar('\n');
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    free(v);
    cli_reply_free(&r);
    return rc;
}

/* Finds rule id in the daemon's rules (GET /v1/nodes?type=rule): on 0, r holds the list
 * and *node the rule. When there is no such rule says so (naming the type of a node that
 * is not a rule) and returns 1; else the exit code of a failed request. */
static int find_rule(cli_http_t *h, const char *id, cli_reply_t *r, const cJSON **node)
{
    cli_reply_t all = {0};
    const cJSON *n;
    int rc = cli_http_call(h, "GET", "/v1/nodes?type=rule", NULL, r);
    if (rc != 0) {
        return rc;
    }
    if (!cJSON_IsArray(r->json)) {
        fprintf(stderr, "sprig %s: the server's node list is not a JSON array\n", h->cmd);
        cli_reply_free(r);
        return 1;
    }
    cJSON_ArrayForEach(n, r->json)
    {
        if (strcmp(cli_json_str(n, "id"), id) == 0) {
            *node = n;
            return 0;
        }
    }
    cli_reply_free(r);
    /* Not a rule: the whole list says whether it is a node of another type. Only this
     * error path reads the whole tree; GET /v1/nodes/ID would print its own 404. */
    if ((rc = cli_http_call(h, "GET", "/v1/nodes", NULL, &all)) != 0) {
        return rc;
    }
    cJSON_ArrayForEach(n, all.json)
    {
        if (strcmp(cli_json_str(n, "id"), id) == 0) {
            fprintf(stderr, "sprig %s: node \"%s\" is a %s, not a rule (see sprig rule ls)\n",
                    h->cmd, id, cli_json_str(n, "type"));
            cli_reply_free(&all);
            return 1;
        }
    }
    fprintf(stderr, "sprig %s: no rule \"%s\" (see sprig rule ls)\n", h->cmd, id);
    cli_reply_free(&all);
    return 1;
}

/* Parses "ID" of show, enable and disable and finds the rule; CLI_GO when found. */
static int rule_arg(cli_http_t *h, int argc, char **argv, const char *usage, cli_reply_t *r,
                    const cJSON **node)
{
    static const struct option opts[] = {CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    int rc = cli_http_parse(h, argc, argv, opts, cli_no_flag, NULL, usage);
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 1, 1, "ID")) != 0 ||
        (rc = cli_http_check_id(h, "ID", argv[optind])) != 0 ||
        (rc = find_rule(h, argv[optind], r, node)) != 0) {
        return rc;
    }
    return CLI_GO;
}

/* Prints a text point's lines, the first after its label, the others under it. */
static void show_text(const char *label, const char *text, const char *none)
{
    printf("%-12s ", label);
    if (text[0] == '\0') {
        printf("%s\n", none);
        return;
    }
    for (bool first = true; *text != '\0'; first = false) {
        size_t n = strcspn(text, "\n");
        printf("%*s", first ? 0 : 13, "");
        put_clean(text, n > 0 && text[n - 1] == '\r' ? n - 1 : n, true);
        putchar('\n');
        text += n + (text[n] == '\n');
    }
}

/* Prints the script, each line after its number. */
static void show_script(const char *script)
{
    int lines = 0, width = 1;
    for (const char *s = script; *s != '\0'; s++) {
        lines += *s == '\n' && s[1] != '\0';
    }
    for (int k = lines + 1; k >= 10; k /= 10) {
        width++;
    }
    for (int line = 1; *script != '\0'; line++) {
        size_t n = strcspn(script, "\n");
        printf("  %*d  ", width, line);
        put_clean(script, n > 0 && script[n - 1] == '\r' ? n - 1 : n, true);
        putchar('\n');
        script += n + (script[n] == '\n');
    }
}

static int rule_show(cli_http_t *h, int argc, char **argv)
{
    cli_reply_t r = {0};
    const cJSON *n = NULL;
    int rc = rule_arg(h, argc, argv, show_usage, &r, &n);
    if (rc != CLI_GO) {
        return rc;
    }
    if (h->json) {
        char *s = cJSON_PrintUnformatted(n);
        rc = s != NULL && puts(s) >= 0 && fflush(stdout) == 0 ? 0 : 1;
        cJSON_free(s);
        cli_reply_free(&r);
        return rc;
    }
    char t[40];
    const char *script = cli_point_text(n, "script"), *file = cli_point_text(n, "file");
    printf("%-12s %s (%s)\n", "rule", cli_json_str(n, "id"), rule_state(n));
    show_text("description", cli_point_text(n, "description"), "-");
    show_text("file", file, "- (not from a rules folder)");
    printf("%-12s %s\n", "disabled", point_set_true(n, "disabled") ? "yes" : "no");
    printf("%-12s %s\n", "active", point_set_true(n, "active") ? "yes" : "no");
    printf("%-12s %ld\n", "runs", runs_of(n));
    printf("%-12s %s\n", "lastRun", last_run(n, true, t, sizeof(t)));
    show_text("state", cli_point_text(n, "state"), "-");
    show_text("error", cli_point_text(n, "error"), "none");
    if (script[0] == '\0') {
        printf("script       none\n");
    }
    else {
        printf("script%s%s%s:\n", file[0] != '\0' ? " (" : "", file, file[0] != '\0' ? ")" : "");
        show_script(script);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
    cli_reply_free(&r);
    return rc;
}

/* enable and disable (told apart by the command's name): writes the disabled point. */
static int rule_enable(cli_http_t *h, int argc, char **argv)
{
    bool off = strcmp(h->cmd, "rule disable") == 0;
    cli_reply_t r = {0}, w = {0};
    const cJSON *n = NULL;
    int rc = rule_arg(h, argc, argv, off ? disable_usage : enable_usage, &r, &n);
    if (rc != CLI_GO) {
        return rc;
    }
    const char *id = argv[optind];
    bool was = point_set_true(n, "disabled");
    cli_reply_free(&r);
    cJSON *p = cJSON_CreateObject();
    bool ok = p != NULL && cJSON_AddStringToObject(p, "type", "disabled") != NULL &&
              cJSON_AddNumberToObject(p, "value", off ? 1 : 0) != NULL;
    rc = cli_http_post_point(h, id, ok ? p : NULL, &w);
    cJSON_Delete(p);
    if (rc == 0 && h->json) {
        rc = cli_http_print_body(h, &w);
    }
    else if (rc == 0) {
        printf("rule %s %s%s\n", id, off ? "disabled" : "enabled",
               was == off ? " (it already was)" : "");
    }
    cli_reply_free(&w);
    return rc;
}

int cli_rule(int argc, char **argv)
{
    static const cli_subcmd_t table[] = {
        {"ls", rule_ls},          {"show", rule_show}, {"enable", rule_enable},
        {"disable", rule_enable}, {NULL, NULL},
    };
    if (argc >= 2 && strcmp(argv[1], "test") == 0) {
        return cli_rule_test(argc - 1, argv + 1);
    }
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        rule_usage(stdout);
        return 0;
    }
    for (size_t i = 0; argc >= 2 && table[i].name != NULL; i++) {
        if (strcmp(argv[1], table[i].name) == 0) {
            char cmd[32];
            cli_http_t h;
            snprintf(cmd, sizeof(cmd), "rule %s", table[i].name);
            cli_http_init(&h, cmd);
            int rc = table[i].run(&h, argc - 1, argv + 1);
            cli_http_close(&h);
            return rc;
        }
    }
    fprintf(stderr,
            "sprig rule: %s%s%s (commands: test, ls, show, enable, disable; see sprig rule "
            "--help)\n",
            argc >= 2 ? "unknown command \"" : "name a command", argc >= 2 ? argv[1] : "",
            argc >= 2 ? "\"" : "");
    return 2;
}
