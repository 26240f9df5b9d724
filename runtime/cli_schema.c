/* `sprig schema ls|show|check`: the node types a daemon would load, read without a daemon.
 * Every subcommand loads the shipped schema folder ($SPRIG_SCHEMA_DIR, else schema/ beside
 * the build folder holding this binary, else /usr/share/sprig/schema) and then the folders
 * given with --schema (check: its arguments), exactly as `sprig run --schema` does. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "sprig/schema.h"

#define MAX_DIRS 32

static void schema_usage(FILE *f)
{
    fputs("usage: sprig schema ls [--schema DIR ...]\n"
          "       sprig schema show TYPE [--schema DIR ...]\n"
          "       sprig schema check [DIR ...]\n"
          "\n"
          "ls     list every node type: name, the type it extends, allowed parents, description\n"
          "show   every point of a type: kind, range or values, unit, default, flags and\n"
          "       description; inherited points are marked (from TYPE)\n"
          "check  load the shipped types and the folders given; print each error as\n"
          "       FILE:LINE: message and exit 1, else print \"N types ok\"\n"
          "\n"
          "flags:\n"
          "  --schema DIR   a folder of node types of your own, loaded after the shipped ones\n"
          "                 (repeatable)\n"
          "  -h, --help     show this help\n"
          "\n"
          "The shipped folder is $SPRIG_SCHEMA_DIR, else schema/ beside the build folder of\n"
          "this binary, else /usr/share/sprig/schema.\n",
          f);
}

const char *cli_shipped_dir(const char *sub, const char *env_name, char *buf, size_t n)
{
    const char *env = getenv(env_name);
    if (env != NULL && env[0] != '\0') {
        return env;
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            struct stat st;
            char dir[PATH_MAX + 64];
            snprintf(dir, sizeof(dir), "%s/../%s", exe, sub);
            if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && n >= PATH_MAX &&
                realpath(dir, buf) != NULL) {
                return buf;
            }
        }
    }
#ifdef SPRIG_SOURCE_DIR
    /* A build folder elsewhere (a sanitizer build under /tmp): the source tree's folder. */
    struct stat src;
    snprintf(buf, n, "%s/%s", SPRIG_SOURCE_DIR, sub);
    if (stat(buf, &src) == 0 && S_ISDIR(src.st_mode)) {
        return buf;
    }
#endif
    snprintf(buf, n, "/usr/share/sprig/%s", sub);
    return buf;
}

const char *cli_schema_shipped_dir(char *buf, size_t n)
{
    return cli_shipped_dir("schema", "SPRIG_SCHEMA_DIR", buf, n);
}

static void print_error(const char *msg, void *arg)
{
    fprintf(arg, "%s\n", msg);
}

/* Loads the shipped folder and dirs; errors go to out. Returns the schema or NULL. */
static sprig_schema_t *load(const char *const *dirs, size_t n, FILE *out, int *errors)
{
    char buf[PATH_MAX];
    const char *all[MAX_DIRS + 1];
    all[0] = cli_schema_shipped_dir(buf, sizeof(buf));
    for (size_t i = 0; i < n; i++) {
        all[i + 1] = dirs[i];
    }
    sprig_schema_t *s = NULL;
    int rc = sprig_schema_load(all, n + 1, &s, print_error, out);
    if (rc < 0) {
        fprintf(stderr, "sprig schema: out of memory loading the schema\n");
    }
    *errors = rc;
    return s;
}

/* Parses [--schema DIR]... and up to max_args positional arguments of `sprig schema CMD`. */
static int parse_flags(int argc, char **argv, const char *cmd, const char **dirs, size_t *ndirs,
                       const char **args, size_t max_args, size_t *nargs)
{
    static const struct option opts[] = {
        {"schema", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    optind = 1;
    *ndirs = 0;
    *nargs = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            if (optarg[0] == '\0' || *ndirs == MAX_DIRS) {
                fprintf(stderr, "sprig schema %s: --schema takes 1 to %d folder names\n", cmd,
                        MAX_DIRS);
                return 2;
            }
            dirs[(*ndirs)++] = optarg;
            break;
        case 'h':
            schema_usage(stdout);
            return 1;
        case ':':
            fprintf(stderr, "sprig schema %s: flag %s needs a value\n", cmd, argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "sprig schema %s: unknown flag %s (see sprig schema --help)\n", cmd,
                    argv[optind - 1]);
            return 2;
        }
    }
    for (; optind < argc; optind++) {
        if (*nargs == max_args) {
            fprintf(stderr, "sprig schema %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
            return 2;
        }
        args[(*nargs)++] = argv[optind];
    }
    return 0;
}

/* Joins a NULL-terminated list with sep into buf; "-" for an empty list. */
static const char *join(char *buf, size_t n, const char *const *list, const char *sep,
                        const char *none)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const char *const *e = list; e != NULL && *e != NULL && used < n; e++) {
        int w = snprintf(buf + used, n - used, "%s%s", e == list ? "" : sep, *e);
        used += w > 0 ? (size_t)w : 0;
    }
    return buf[0] != '\0' ? buf : none;
}

static int cmd_ls(int argc, char **argv)
{
    const char *dirs[MAX_DIRS];
    const char *args[1];
    size_t ndirs, nargs;
    int rc = parse_flags(argc, argv, "ls", dirs, &ndirs, args, 0, &nargs);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    int errors;
    sprig_schema_t *s = load(dirs, ndirs, stderr, &errors);
    if (s == NULL) {
        return errors < 0 ? 2 : 1;
    }
    int wt = (int)strlen("TYPE"), we = (int)strlen("EXTENDS"), wp = (int)strlen("PARENTS");
    char buf[1024];
    const sprig_schema_type_t *t;
    for (size_t i = 0; (t = sprig_schema_type_at(s, i)) != NULL; i++) {
        int l = (int)strlen(t->name);
        wt = l > wt ? l : wt;
        l = t->extends != NULL ? (int)strlen(t->extends) : 1;
        we = l > we ? l : we;
        l = (int)strlen(join(buf, sizeof(buf), t->parents, ",", "any"));
        wp = l > wp ? l : wp;
    }
    printf("%-*s  %-*s  %-*s  %s\n", wt, "TYPE", we, "EXTENDS", wp, "PARENTS", "DESCRIPTION");
    for (size_t i = 0; (t = sprig_schema_type_at(s, i)) != NULL; i++) {
        printf("%-*s  %-*s  %-*s  %s%s\n", wt, t->name, we, t->extends != NULL ? t->extends : "-",
               wp, join(buf, sizeof(buf), t->parents, ",", "any"),
               t->description != NULL ? t->description : "", t->open ? " [open]" : "");
    }
    sprig_schema_free(s);
    return 0;
}

/* The kind column: the kind, with [] for an array and {} or {k1,k2} for a map. */
static const char *kind_text(char *buf, size_t n, const sprig_schema_point_t *p)
{
    static const char *const kinds[] = {"number", "integer", "bool", "text", "enum"};
    char keys[512];
    if (p->keys == SPRIG_KEYS_ARRAY) {
        snprintf(buf, n, "%s[]", kinds[p->kind]);
    }
    else if (p->keys == SPRIG_KEYS_MAP) {
        snprintf(buf, n, "%s{%s}", kinds[p->kind], join(keys, sizeof(keys), p->map_keys, ",", ""));
    }
    else {
        snprintf(buf, n, "%s", kinds[p->kind]);
    }
    return buf;
}

/* The shortest of %.15g and %.17g that reads back as v. */
static const char *num_text(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.15g", v);
    if (strtod(buf, NULL) != v) {
        snprintf(buf, n, "%.17g", v);
    }
    return buf;
}

/* The range column: min..max, or the values of an enum. */
static const char *range_text(char *buf, size_t n, const sprig_schema_point_t *p)
{
    if (p->kind == SPRIG_KIND_ENUM) {
        return join(buf, n, p->values, "|", "-");
    }
    if (!p->has_min && !p->has_max) {
        return "-";
    }
    char lo[32] = "", hi[32] = "";
    if (p->has_min) {
        num_text(lo, sizeof(lo), p->min);
    }
    if (p->has_max) {
        num_text(hi, sizeof(hi), p->max);
    }
    snprintf(buf, n, "%s..%s", lo, hi);
    return buf;
}

static const char *default_text(char *buf, size_t n, const sprig_schema_point_t *p)
{
    if (!p->has_default) {
        return "-";
    }
    if (p->kind == SPRIG_KIND_TEXT || p->kind == SPRIG_KIND_ENUM) {
        snprintf(buf, n, "\"%s\"", p->default_text != NULL ? p->default_text : "");
    }
    else if (p->kind == SPRIG_KIND_BOOL) {
        snprintf(buf, n, "%s", p->default_value != 0 ? "true" : "false");
    }
    else {
        num_text(buf, n, p->default_value);
    }
    return buf;
}

static const char *flags_text(char *buf, size_t n, const sprig_schema_point_t *p)
{
    snprintf(buf, n, "%s%s%s%s", p->required ? ",required" : "", p->owner_driver ? ",driver" : "",
             p->owner_people ? ",people" : "", p->local ? ",local" : "");
    return buf[0] != '\0' ? buf + 1 : "-";
}

static const char *sort_type; /* the type whose points sort_points orders */

/* Own points before inherited ones, each by name: the loader keeps Lua's table order. */
static int cmp_points(const void *a, const void *b)
{
    const sprig_schema_point_t *p = *(const sprig_schema_point_t *const *)a;
    const sprig_schema_point_t *q = *(const sprig_schema_point_t *const *)b;
    int pi = p->declared_in != NULL && strcmp(p->declared_in, sort_type) != 0;
    int qi = q->declared_in != NULL && strcmp(q->declared_in, sort_type) != 0;
    return pi != qi ? pi - qi : strcmp(p->name, q->name);
}

/* Prints the points of t as a table, widths fitted to the content. */
static void print_points(const sprig_schema_type_t *t)
{
    const sprig_schema_point_t **sorted = calloc(t->npoints + 1, sizeof(*sorted));
    if (sorted == NULL) {
        fprintf(stderr, "sprig schema show: out of memory\n");
        return;
    }
    for (size_t i = 0; i < t->npoints; i++) {
        sorted[i] = &t->points[i];
    }
    sort_type = t->name;
    qsort(sorted, t->npoints, sizeof(*sorted), cmp_points);
    enum { COLS = 6 };
    static const char *const heads[COLS] = {"POINT", "KIND", "RANGE", "UNIT", "DEFAULT", "FLAGS"};
    int w[COLS];
    char cell[COLS][600];
    for (int c = 0; c < COLS; c++) {
        w[c] = (int)strlen(heads[c]);
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            for (int c = 0; c < COLS; c++) {
                printf("%-*s  ", w[c], heads[c]);
            }
            printf("DESCRIPTION\n");
        }
        for (size_t i = 0; i < t->npoints; i++) {
            const sprig_schema_point_t *p = sorted[i];
            const char *v[COLS] = {
                p->name,
                kind_text(cell[1], sizeof(cell[1]), p),
                range_text(cell[2], sizeof(cell[2]), p),
                p->unit != NULL && p->unit[0] != '\0' ? p->unit : "-",
                default_text(cell[4], sizeof(cell[4]), p),
                flags_text(cell[5], sizeof(cell[5]), p),
            };
            for (int c = 0; c < COLS; c++) {
                int l = (int)strlen(v[c]);
                if (pass == 0) {
                    w[c] = l > w[c] ? l : w[c];
                }
                else {
                    printf("%-*s  ", w[c], v[c]);
                }
            }
            if (pass == 1) {
                bool inherited = p->declared_in != NULL && strcmp(p->declared_in, t->name) != 0;
                const char *d = p->description != NULL ? p->description : "";
                if (inherited) {
                    printf("%s%s(from %s)\n", d, d[0] != '\0' ? " " : "", p->declared_in);
                }
                else {
                    printf("%s\n", d);
                }
            }
        }
    }
    free(sorted);
}

static int cmd_show(int argc, char **argv)
{
    const char *dirs[MAX_DIRS];
    const char *args[1];
    size_t ndirs, nargs;
    int rc = parse_flags(argc, argv, "show", dirs, &ndirs, args, 1, &nargs);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    if (nargs != 1) {
        fprintf(stderr, "sprig schema show: which type? (sprig schema show TYPE; sprig schema ls "
                        "lists them)\n");
        return 2;
    }
    int errors;
    sprig_schema_t *s = load(dirs, ndirs, stderr, &errors);
    if (s == NULL) {
        return errors < 0 ? 2 : 1;
    }
    const sprig_schema_type_t *t = sprig_schema_type(s, args[0]);
    if (t == NULL) {
        fprintf(stderr, "sprig schema show: type %s is not declared (sprig schema ls lists them)\n",
                args[0]);
        sprig_schema_free(s);
        return 1;
    }
    char buf[1024];
    printf("type:        %s\n", t->name);
    printf("description: %s\n", t->description != NULL ? t->description : "-");
    printf("extends:     %s\n", t->extends != NULL ? t->extends : "-");
    printf("parents:     %s\n", join(buf, sizeof(buf), t->parents, ", ", "any"));
    printf("open:        %s\n", t->open ? "yes (points it does not declare are allowed)" : "no");
    printf("declared at: %s:%d\n", t->file != NULL ? t->file : "?", t->line);
    printf("\n");
    print_points(t);
    sprig_schema_free(s);
    return 0;
}

static int cmd_check(int argc, char **argv)
{
    const char *dirs[MAX_DIRS];
    const char *args[MAX_DIRS];
    size_t ndirs, nargs;
    int rc = parse_flags(argc, argv, "check", dirs, &ndirs, args, MAX_DIRS - 1, &nargs);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    /* --schema DIR and plain DIR arguments mean the same here. */
    for (size_t i = 0; i < nargs && ndirs < MAX_DIRS; i++) {
        dirs[ndirs++] = args[i];
    }
    int errors;
    sprig_schema_t *s = load(dirs, ndirs, stdout, &errors);
    if (s == NULL) {
        if (errors > 0) {
            printf("%d error%s\n", errors, errors == 1 ? "" : "s");
        }
        return errors < 0 ? 2 : 1;
    }
    size_t n = 0;
    while (sprig_schema_type_at(s, n) != NULL) {
        n++;
    }
    printf("%zu types ok\n", n);
    sprig_schema_free(s);
    return 0;
}

int cli_schema(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        schema_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "ls") == 0) {
        return cmd_ls(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "show") == 0) {
        return cmd_show(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "check") == 0) {
        return cmd_check(argc - 1, argv + 1);
    }
    fprintf(stderr, "sprig schema: unknown subcommand \"%s\" (subcommands: ls, show, check)\n",
            argv[1]);
    return 2;
}
