/* The sprig command's subcommands, one file each; main.c dispatches. Each returns the
 * process exit code: 0 success, 1 a check failed, 2 bad usage or a fault. */
#ifndef SPRIG_CLI_H
#define SPRIG_CLI_H

#include <stdbool.h>
#include <stddef.h>

int cli_run(int argc, char **argv);
int cli_store(int argc, char **argv);
/* The value of --store for command cmd (e.g. "sprig run"): a PostgreSQL URI
 * (postgresql://... or postgres://...) or sqlite:FILE, stored in *db; 0, or 2 with the
 * error printed (a bad value, or --db given too: *given tracks either). */
int cli_store_flag(const char *cmd, const char *flag, const char *value, const char **db,
                   bool *given);
/* `sprig schema ls|show|check` (cli_schema.c): reads schema folders, needs no daemon. */
int cli_schema(int argc, char **argv);
/* `sprig rule test` (cli_rule.c): runs a rule offline, needs no daemon. */
int cli_rule(int argc, char **argv);
/* `sprig rule test` (cli_rule.c); argv[0] is "test". */
int cli_rule_test(int argc, char **argv);

/* The API commands, HTTP clients of a running daemon (cli_node.c, cli_watch.c): argv[0]
 * is the command's name. Each returns 0, 1 when the request failed (the server's error or
 * an unreachable URL, printed) or 2 for bad usage. */
int cli_node(int argc, char **argv);
int cli_point(int argc, char **argv);
int cli_watch(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_import(int argc, char **argv);
/* `sprig sync status` (cli_sync.c): the sync links of a running daemon. */
int cli_sync(int argc, char **argv);

/* Parses a whole decimal number in [min, max] for flag; prints the error and returns -1
 * when it is not one. */
int cli_parse_long(const char *cmd, const char *flag, const char *s, long min, long max, long *out);

/* The shipped schema folder: $SPRIG_SCHEMA_DIR, else schema/ beside the build folder of
 * this binary, else the source tree's, else /usr/share/sprig/schema. buf (at least
 * PATH_MAX bytes) may hold the answer. */
const char *cli_schema_shipped_dir(char *buf, size_t n);
/* A shipped folder (sub = "schema", "scripts/examples"): $env_name, else sub beside the
 * build folder of this binary, else the source tree's, else /usr/share/sprig/sub. buf
 * holds PATH_MAX bytes; the result may be buf or the environment's string. */
const char *cli_shipped_dir(const char *sub, const char *env_name, char *buf, size_t n);

#endif
