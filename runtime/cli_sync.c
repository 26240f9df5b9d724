/* `sprig sync status`: the sync links of a running daemon (the nodes of type sync that
 * run here, DESIGN.md section 5), read through its HTTP API (cli_http.c): where each link
 * stands, why it failed, when it last found both sides equal and what it has moved. */
#include <cJSON.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_http.h"
#include "sprig/util.h"

static void sync_usage(FILE *f)
{
    fputs("usage: sprig sync COMMAND [FLAGS]\n"
          "\n"
          "A sync node (type sync, under the root) links this instance to an upstream through\n"
          "an MQTT broker (DESIGN.md section 5); its driver reports where the link stands.\n"
          "\n"
          "commands:\n"
          "  status       each sync node: uri, state (connecting, syncing, insync, error),\n"
          "               error, broker in use and its MQTT version, last sync, probes that\n"
          "               matched, repairs, bytes up and down\n"
          "\n"
          "status talks to a running daemon: --url URL (default " CLI_HTTP_DEFAULT_URL "),\n"
          "  --token-file FILE, --json.\n"
          "`sprig sync status --help` explains it and its flags.\n",
          f);
}

static const char status_usage[] =
    "usage: sprig sync status [FLAGS]\n"
    "\n"
    "Prints each sync node of this instance, sorted by id: its uri, state (connecting,\n"
    "syncing, insync or error; - when its driver has not reported one, e.g. because the\n"
    "uri is malformed and the driver did not start: see the daemon's log), its error when\n"
    "it has one, the broker of its uri list in use or being tried and the MQTT version of\n"
    "the connection (5, or 3.1.1 with a broker that refuses 5; - when not connected), when\n"
    "a probe last found both sides equal (RFC 3339 UTC, or never), and its counters\n"
    "syncCount, repairCount, bytesUp and bytesDown (- when not reported).\n"
    "Sync nodes inside another device's tree kept here by an upstream are data, not\n"
    "links of this instance: they are left out, and counted on the last line.\n"
    "Without a sync node it says so and exits 0.\n"
    "\n"
    "With --json it prints the JSON array of this instance's sync nodes as GET\n"
    "/v1/nodes?type=sync gives them (every point, the config too).\n"
    "\n"
    "flags:\n" CLI_HTTP_FLAGS_HELP;

/* Writes s with each control character (an escape sequence in a broker's or a library's
 * message) as '?', so that it cannot steer the terminal. */
static void put_clean(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        putchar(c < 0x20 || c == 0x7f ? '?' : c);
    }
}

/* Prints "  label  text", a text of several lines one under the other. */
static void show_text(const char *label, const char *text)
{
    printf("  %-12s ", label);
    for (bool first = true; first || *text != '\0'; first = false) {
        size_t n = strcspn(text, "\n");
        printf("%*s", first ? 0 : 15, "");
        put_clean(text, n > 0 && text[n - 1] == '\r' ? n - 1 : n);
        putchar('\n');
        text += n + (text[n] == '\n');
    }
}

/* Prints a counter point as a whole number, or "-" when the driver has not written it. */
static void show_count(const cJSON *node, const char *type)
{
    double v;
    if (cli_point_value(node, type, &v) && v >= 0 && v < 9e18) {
        printf("  %-12s %lld\n", type, (long long)v);
    }
    else {
        printf("  %-12s -\n", type);
    }
}

static void show_node(const cJSON *n)
{
    double v;
    char t[40];
    const char *state = cli_point_text(n, "state"), *err = cli_point_text(n, "error");
    printf("sync %s\n", cli_json_str(n, "id"));
    show_text("uri", cli_point_text(n, "uri"));
    if (cli_point_value(n, "disabled", &v) && v != 0) {
        show_text("disabled", "yes (the link is down until its disabled point is 0)");
    }
    show_text("state", state[0] != '\0' ? state : "-");
    if (err[0] != '\0') {
        show_text("error", err);
    }
    const char *broker = cli_point_text(n, "broker"), *proto = cli_point_text(n, "protocol");
    show_text("broker", broker[0] != '\0' ? broker : "-");
    show_text("protocol", proto[0] != '\0' ? proto : "-");
    if (cli_point_value(n, "lastSync", &v) && v > 0 && v < 9.2e18) {
        show_text("lastSync", sprig_time_format((int64_t)v, t, sizeof(t)));
    }
    else {
        show_text("lastSync", "never");
    }
    show_count(n, "syncCount");
    show_count(n, "repairCount");
    show_count(n, "bytesUp");
    show_count(n, "bytesDown");
}

/* Sorts node objects by id. */
static int by_id(const void *x, const void *y)
{
    return strcmp(cli_json_str(*(const cJSON *const *)x, "id"),
                  cli_json_str(*(const cJSON *const *)y, "id"));
}

/* True when id is in the "sync" array of the daemon's status: a link that runs here. */
static bool runs_here(const cJSON *status_sync, const char *id)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, status_sync)
    {
        if (strcmp(cli_json_str(s, "id"), id) == 0) {
            return true;
        }
    }
    return false;
}

static int sync_status(cli_http_t *h, int argc, char **argv)
{
    static const struct option opts[] = {CLI_HTTP_OPTIONS, {NULL, 0, NULL, 0}};
    cli_reply_t r = {0}, st = {0};
    const cJSON **v = NULL;
    cJSON *out = NULL;
    int rc = cli_http_parse(h, argc, argv, opts, cli_no_flag, NULL, status_usage);
    /* The node list first: a sync node made between the two requests is then in the
     * status too, and not taken for another device's. */
    if (rc != CLI_GO || (rc = cli_http_args(h, argc, argv, 0, 0, "")) != 0 ||
        (rc = cli_http_call(h, "GET", "/v1/nodes?type=sync", NULL, &r)) != 0 ||
        (rc = cli_http_call(h, "GET", "/v1/status", NULL, &st)) != 0) {
        goto done;
    }
    rc = 1;
    const cJSON *list = r.json, *here = cJSON_GetObjectItemCaseSensitive(st.json, "sync"), *n;
    if (!cJSON_IsArray(list)) {
        fprintf(stderr, "sprig %s: the server's node list is not a JSON array\n", h->cmd);
        goto done;
    }
    if (!cJSON_IsArray(here)) {
        fprintf(stderr,
                "sprig %s: the server's status has no \"sync\" array (a sprig older "
                "than this command?)\n",
                h->cmd);
        goto done;
    }
    size_t total = (size_t)cJSON_GetArraySize(list), count = 0;
    if ((v = calloc(total + 1, sizeof(*v))) == NULL) {
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        goto done;
    }
    cJSON_ArrayForEach(n, list)
    {
        if (runs_here(here, cli_json_str(n, "id"))) {
            v[count++] = n;
        }
    }
    qsort(v, count, sizeof(*v), by_id);
    if (h->json) {
        char *s = NULL;
        out = cJSON_CreateArray();
        for (size_t i = 0; out != NULL && i < count; i++) {
            cJSON *c = cJSON_Duplicate(v[i], 1);
            if (c == NULL || !cJSON_AddItemToArray(out, c)) {
                cJSON_Delete(c);
                cJSON_Delete(out);
                out = NULL;
            }
        }
        if (out == NULL || (s = cJSON_PrintUnformatted(out)) == NULL) {
            fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
            goto done;
        }
        rc = puts(s) >= 0 && fflush(stdout) == 0 ? 0 : 1;
        cJSON_free(s);
        goto done;
    }
    if (count == 0) {
        printf("no sync nodes; this instance syncs to no upstream\n");
    }
    for (size_t i = 0; i < count; i++) {
        if (i > 0) {
            putchar('\n');
        }
        show_node(v[i]);
    }
    if (total > count) {
        bool one = total - count == 1;
        printf("%s(not listed: %zu sync node%s in %s kept here; %s)\n", count > 0 ? "\n" : "",
               total - count, one ? "" : "s",
               one ? "another device's tree" : "other devices' trees",
               one ? "it runs on that device" : "they run on those devices");
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    cJSON_Delete(out);
    free(v);
    cli_reply_free(&st);
    cli_reply_free(&r);
    return rc;
}

int cli_sync(int argc, char **argv)
{
    static const cli_subcmd_t table[] = {{"status", sync_status}, {NULL, NULL}};
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        sync_usage(stdout);
        return 0;
    }
    for (size_t i = 0; argc >= 2 && table[i].name != NULL; i++) {
        if (strcmp(argv[1], table[i].name) == 0) {
            char cmd[32];
            cli_http_t h;
            snprintf(cmd, sizeof(cmd), "sync %s", table[i].name);
            cli_http_init(&h, cmd);
            int rc = table[i].run(&h, argc - 1, argv + 1);
            cli_http_close(&h);
            return rc;
        }
    }
    fprintf(stderr, "sprig sync: %s%s%s (commands: status; see sprig sync --help)\n",
            argc >= 2 ? "unknown command \"" : "name a command", argc >= 2 ? argv[1] : "",
            argc >= 2 ? "\"" : "");
    return 2;
}
