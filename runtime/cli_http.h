/* The HTTP client that the API commands of the sprig CLI share (node, point, watch, status,
 * export, import): their global flags, requests through libcurl with JSON bodies and a
 * bearer token, replies parsed with cJSON, errors printed the same way everywhere, and the
 * server-sent event stream of `sprig watch`. One client per process, on the main thread. */
#ifndef SPRIG_CLI_HTTP_H
#define SPRIG_CLI_HTTP_H

#include <cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#define CLI_HTTP_DEFAULT_URL "http://127.0.0.1:8118"

/* getopt_long values of the global flags; command flags use printable characters. */
enum { CLI_OPT_URL = 0x100, CLI_OPT_TOKEN_FILE, CLI_OPT_JSON };

/* The global flags, to end every command's option table (before its {NULL} row). */
#define CLI_HTTP_OPTIONS                                                                           \
    {"url", required_argument, NULL, CLI_OPT_URL},                                                 \
        {"token-file", required_argument, NULL, CLI_OPT_TOKEN_FILE},                               \
        {"json", no_argument, NULL, CLI_OPT_JSON},                                                 \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

/* The help text of the global flags, to end every command's usage. */
#define CLI_HTTP_FLAGS_HELP                                                                        \
    "  --url URL          the daemon's API (default " CLI_HTTP_DEFAULT_URL ")\n"                   \
    "  --token-file FILE  send the bearer token read from FILE (whitespace around it is\n"         \
    "                     trimmed); needed when the daemon listens on another address\n"           \
    "  --json             print the server's JSON as is instead of text for people\n"              \
    "  -h, --help         show this help\n"

/* Returned by cli_http_parse when the command should go on. */
#define CLI_GO (-1)

typedef struct cli_http {
    const char *cmd; /* "node ls": names the command in every message */
    char *url;       /* base URL without a trailing slash; owned */
    char *token;     /* owned; NULL without --token-file */
    bool json;       /* --json */
    void *curl;      /* CURL *, made on the first request */
    bool progress;   /* cli_http_call shows the bytes of a body sent so far on stderr */
} cli_http_t;

/* A reply: status, the body as received (NUL-terminated) and, when the body is JSON, its
 * parse. Free with cli_reply_free. */
typedef struct cli_reply {
    long status;
    char *body;
    size_t len;
    cJSON *json;
} cli_reply_t;

/* Called for each flag that is not a global one, with its getopt value and argument.
 * Returns 0 to go on, or an exit code (2 after printing what is wrong with the flag). */
typedef int (*cli_flag_fn)(cli_http_t *h, int ch, const char *arg, void *ctx);

/* Starts h for the command cmd (borrowed, valid until cli_http_close). Never fails. */
void cli_http_init(cli_http_t *h, const char *cmd);

/* Frees what h holds and ends libcurl; h may be passed again to cli_http_init. */
void cli_http_close(cli_http_t *h);

/* Parses argv (argv[0] is the subcommand's name) with getopt_long over opts, which ends
 * with CLI_HTTP_OPTIONS: handles the global flags, -h (prints usage, the help text, to stdout),
 * unknown flags and flags without a value, and hands every other flag to on_flag. Returns CLI_GO
 * with optind at the first positional argument, or the exit code (0 after help, 2 after
 * printing an error that names the flag and its value). */
int cli_http_parse(cli_http_t *h, int argc, char **argv, const struct option *opts,
                   cli_flag_fn on_flag, void *ctx, const char *usage);

/* Checks the count of positional arguments left after parsing: prints which are missing
 * (names, e.g. "ID") or which one is unexpected. Returns 0 or the exit code 2. */
int cli_http_args(cli_http_t *h, int argc, char **argv, int min, int max, const char *names);

/* Checks that s (the value of what, e.g. "--parent" or "ID") is a valid id or point type;
 * prints the rule and the value when not. Returns 0 or the exit code 2. */
int cli_http_check_id(cli_http_t *h, const char *what, const char *s);

/* Sends method (GET, POST, DELETE) to path (which starts with "/" and is joined to the
 * base URL) with body (borrowed JSON text, or NULL for none). On a 2xx reply returns 0 with
 * out filled, its json set when the body is JSON. Else prints what went wrong (the URL that
 * could not be reached, or the server's error sentence and HTTP status), leaves out empty
 * and returns the exit code 1. */
int cli_http_call(cli_http_t *h, const char *method, const char *path, const char *body,
                  cli_reply_t *out);

/* As cli_http_call, with body made from a cJSON tree (borrowed); returns 1 on -ENOMEM. */
int cli_http_send(cli_http_t *h, const char *method, const char *path, const cJSON *body,
                  cli_reply_t *out);

/* POSTs one point (borrowed; NULL: out of memory while making it) to node id, answered
 * once durable, as cli_http_send. */
int cli_http_post_point(cli_http_t *h, const char *id, const cJSON *point, cli_reply_t *out);

/* Frees what r holds; r may be zeroed or already freed. */
void cli_reply_free(cli_reply_t *r);

/* Prints r's body to stdout as it came, ending with a newline ("{}" for an empty body).
 * Returns 0, or 1 after saying that stdout could not be written. */
int cli_http_print_body(cli_http_t *h, const cli_reply_t *r);

/* A subcommand of a group (node ls): runs with h started, argv[0] its own name. */
typedef struct cli_subcmd {
    const char *name;
    int (*run)(cli_http_t *h, int argc, char **argv);
} cli_subcmd_t;

/* Runs the subcommand argv[1] of group ("node") from table (ended by a NULL name) with a
 * client named "group sub", or prints the group's usage. Returns its exit code. */
int cli_http_group(const char *group, const cli_subcmd_t *table, int argc, char **argv);

/* Called for each server-sent event with its name ("message" when none was given) and its
 * data (both valid only during the call). Returns 0 to go on, or an exit code to stop. */
typedef int (*cli_event_fn)(const char *event, const char *data, void *arg);

/* Follows the server-sent events at path until *stop becomes nonzero (set it from a
 * signal handler; the wait notices within a second), calling on_event for each. Lines
 * longer than a bounded buffer end the stream with an error. Returns 0 once stopped, the
 * code on_event returned, or 1 after printing why the stream failed or ended. */
int cli_http_stream(cli_http_t *h, const char *path, cli_event_fn on_event, void *arg,
                    volatile sig_atomic_t *stop);

/* Output for people, shared by the commands (in cli_watch.c, next to watch's printer). */

/* Formats v with as few digits as read back to the same double (15 or 17) into out
 * (at least 32 bytes); returns out. */
char *cli_fmt_number(double v, char *out, size_t n);

/* Writes a point object of the API to f for people: "type[key] = value "text"" with the
 * key left out when "0", the value or text left out when not set, then " (deleted)" for a
 * tombstone and " by ORIGIN" when written by a driver or rule. The value is exact, or with
 * exact false rounded to 8 digits to be read at a glance. */
void cli_print_point(FILE *f, const cJSON *p, bool exact);

/* Returns the string member name of o, or "" when o has none. */
const char *cli_json_str(const cJSON *o, const char *name);
/* A flag parser for commands that take no flags of their own (cli_http_parse). */
int cli_no_flag(cli_http_t *h, int ch, const char *arg, void *ctx);
/* The live point `type` (key "0") of a node object of the API, or NULL; its text ("" when
 * absent); its value (false when absent). */
const cJSON *cli_live_point(const cJSON *node, const char *type);
const char *cli_point_text(const cJSON *node, const char *type);
bool cli_point_value(const cJSON *node, const char *type, double *out);

#endif
