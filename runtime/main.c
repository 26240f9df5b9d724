/* sprig: the IoT edge runtime's one binary. Dispatches to the subcommands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SPRIG_VERSION "0.1.0"

static void usage(FILE *f)
{
    fputs("usage: sprig COMMAND [FLAGS]\n"
          "\n"
          "sprig keeps a tree of typed nodes and points in SQLite, feeds it from drivers,\n"
          "and keeps it in sync with other instances.\n"
          "\n"
          "commands:\n"
          "  run            run the daemon (sprig run --help)\n"
          "  store verify   check the database as the daemon loads it; --fix repairs it\n"
          "  schema ls|show TYPE|check DIR...\n"
          "                 the node types: list, show one's points, check schema files\n"
          "  rule test RULE.lua [--fixture TREE.json] [--steps STEPS.lua]\n"
          "                 run a rule offline with simulated time (sprig rule test --help)\n"
          "\n"
          "commands that talk to a running daemon (--url, default http://127.0.0.1:8118):\n"
          "  node ls [--type T]          list every node: id, type, parent, hash\n"
          "  node tree                   draw the tree from the root\n"
          "  node get ID                 show a node and its points\n"
          "  node add --type T --parent P [--id ID] [--point TYPE=VALUE ...]\n"
          "                              create a node and print its id\n"
          "  node rm ID --parent P       remove a node from a parent\n"
          "  node mv ID --from P --to Q  move a node to another parent\n"
          "  node mirror ID --to Q       add another parent to a node\n"
          "  node find [--type T] --where 'POINT OP VALUE' ...\n"
          "                              list the nodes that meet every condition\n"
          "  point get ID [TYPE [KEY]]   show the points of a node\n"
          "  point set ID TYPE VALUE     write a point (--key K, --text)\n"
          "  rule ls                     list the rules: state, runs, last run, file, error\n"
          "  rule show ID                a rule's points, error and numbered script\n"
          "  rule enable|disable ID      start or stop a rule (its disabled point)\n"
          "  sync status                 each sync link: uri, state, error, last sync,\n"
          "                              probes matched, repairs, bytes up and down\n"
          "  watch                       print changes as they are accepted\n"
          "  status                      version, root, hash, counts and counters\n"
          "  export > FILE               write the whole tree as one JSON document\n"
          "  import FILE                 merge a tree written by export\n"
          "\n"
          "flags:\n"
          "  -h, --help     show this help\n"
          "  --version      print the version\n"
          "\n"
          "`sprig COMMAND --help` explains every flag of a command.\n",
          f);
}

int cli_parse_long(const char *cmd, const char *flag, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "sprig %s: %s \"%s\" must be a whole number from %ld to %ld\n", cmd, flag,
                s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("sprig %s\n", SPRIG_VERSION);
        return 0;
    }
    if (strcmp(cmd, "run") == 0) {
        return cli_run(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "store") == 0) {
        return cli_store(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "schema") == 0) {
        return cli_schema(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "rule") == 0) {
        return cli_rule(argc - 1, argv + 1);
    }
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } api_cmds[] = {
        {"node", cli_node},     {"point", cli_point},   {"watch", cli_watch},
        {"status", cli_status}, {"export", cli_export}, {"import", cli_import},
        {"sync", cli_sync},
    };
    for (size_t i = 0; i < sizeof(api_cmds) / sizeof(api_cmds[0]); i++) {
        if (strcmp(cmd, api_cmds[i].name) == 0) {
            return api_cmds[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(
        stderr,
        "sprig: unknown command \"%s\" (commands: run, store, schema, rule, node, point, watch, "
        "status, sync, export, import; see sprig --help)\n",
        cmd);
    return 2;
}
