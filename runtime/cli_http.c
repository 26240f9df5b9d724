/* The libcurl client of the sprig CLI's API commands: global flags, JSON requests, error
 * reporting, and a server-sent event reader for `sprig watch` (see cli_http.h). Bodies are
 * bounded in memory: a reply at CLI_BODY_MAX, an event line or event at CLI_LINE_MAX. */
#include <ctype.h>
/* Calls go through pointers loaded with dlopen (below), so the typecheck macros, which
 * wrap the function names, are off. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_http.h"
#include "sprig/util.h"

#define CLI_BODY_MAX ((size_t)1 << 30) /* a whole export fits */
#define CLI_LINE_MAX ((size_t)8 << 20) /* one event of a large create or import */
#define CLI_ERRBODY_MAX 65536          /* an error reply while streaming */
#define CLI_TOKEN_MAX 4096
#define CLI_TIMEOUT_S 300L /* a request that has not answered by then has hung */

/* libcurl is loaded when the first request is made, not linked: linked, it (and TLS,
 * LDAP, Kerberos behind it) would be mapped into every sprig process, the daemon too,
 * which never uses it and whose footprint is a goal (README, Performance). */
static struct {
    void *lib;
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} lc;

/* Loads libcurl once; 0, or -1 after printing why it cannot be had. */
static int curl_load(const char *cmd)
{
    if (lc.lib != NULL) {
        return 0;
    }
    void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "sprig %s: libcurl.so.4 cannot be loaded (%s); install libcurl4\n", cmd,
                dlerror());
        return -1;
    }
    /* POSIX: dlsym's result is converted through a void pointer's bit pattern. */
#define LOAD(field, name)                                                                      \
    do {                                                                                       \
        void *sym = dlsym(lib, name);                                                          \
        if (sym == NULL) {                                                                     \
            fprintf(stderr, "sprig %s: libcurl.so.4 has no %s\n", cmd, name);                  \
            dlclose(lib);                                                                      \
            return -1;                                                                         \
        }                                                                                      \
        memcpy(&lc.field, &sym, sizeof(sym));                                                  \
    } while (0)
    LOAD(global_init, "curl_global_init");
    LOAD(global_cleanup, "curl_global_cleanup");
    LOAD(easy_init, "curl_easy_init");
    LOAD(easy_cleanup, "curl_easy_cleanup");
    LOAD(easy_reset, "curl_easy_reset");
    LOAD(easy_setopt, "curl_easy_setopt");
    LOAD(easy_perform, "curl_easy_perform");
    LOAD(easy_getinfo, "curl_easy_getinfo");
    LOAD(easy_strerror, "curl_easy_strerror");
    LOAD(slist_append, "curl_slist_append");
    LOAD(slist_free_all, "curl_slist_free_all");
#undef LOAD
    lc.lib = lib;
    return 0;
}

#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init lc.global_init
#define curl_global_cleanup lc.global_cleanup
#define curl_easy_init lc.easy_init
#define curl_easy_cleanup lc.easy_cleanup
#define curl_easy_reset lc.easy_reset
#define curl_easy_setopt lc.easy_setopt
#define curl_easy_perform lc.easy_perform
#define curl_easy_getinfo lc.easy_getinfo
#define curl_easy_strerror lc.easy_strerror
#define curl_slist_append lc.slist_append
#define curl_slist_free_all lc.slist_free_all

void cli_http_init(cli_http_t *h, const char *cmd)
{
    memset(h, 0, sizeof(*h));
    h->cmd = cmd;
}

void cli_http_close(cli_http_t *h)
{
    if (h->curl != NULL) {
        curl_easy_cleanup(h->curl);
        curl_global_cleanup();
    }
    free(h->url);
    free(h->token);
    h->url = h->token = NULL;
    h->curl = NULL;
}

static int set_url(cli_http_t *h, const char *s)
{
    const char *host = strncmp(s, "http://", 7) == 0    ? s + 7
                       : strncmp(s, "https://", 8) == 0 ? s + 8
                                                        : NULL;
    if (host == NULL || *host == '\0' || *host == '/' || strpbrk(s, " \t\r\n?#") != NULL) {
        fprintf(stderr,
                "sprig %s: --url \"%s\" must be an http:// or https:// URL with a host, like "
                "%s\n",
                h->cmd, s, CLI_HTTP_DEFAULT_URL);
        return 2;
    }
    char *u = strdup(s);
    if (u == NULL) {
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        return 2;
    }
    size_t n = strlen(u);
    while (n > 0 && u[n - 1] == '/') {
        u[--n] = '\0';
    }
    free(h->url);
    h->url = u;
    return 0;
}

static int read_token(cli_http_t *h, const char *path)
{
    char buf[CLI_TOKEN_MAX + 2];
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "sprig %s: --token-file \"%s\" cannot be read: %s\n", h->cmd, path,
                strerror(errno));
        return 2;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || n > CLI_TOKEN_MAX) {
        fprintf(stderr, "sprig %s: --token-file \"%s\" %s\n", h->cmd, path,
                bad ? "cannot be read" : "is longer than 4096 bytes; it should hold one token");
        return 2;
    }
    buf[n] = '\0';
    char *s = buf;
    while (isspace((unsigned char)*s)) {
        s++;
    }
    while (n > 0 && isspace((unsigned char)buf[n - 1])) {
        buf[--n] = '\0';
    }
    bool ok = *s != '\0';
    for (const char *p = s; ok && *p != '\0'; p++) {
        ok = isgraph((unsigned char)*p) != 0;
    }
    if (!ok) {
        fprintf(stderr,
                "sprig %s: --token-file \"%s\" must hold one token (printable, no spaces inside)"
                "\n",
                h->cmd, path);
        return 2;
    }
    free(h->token);
    if ((h->token = strdup(s)) == NULL) {
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        return 2;
    }
    return 0;
}

/* The flag getopt stopped at: "--name" (without "=value"), "-c", or the argument itself. */
static void bad_flag(char **argv, char *out, size_t n)
{
    const char *a = optind > 0 ? argv[optind - 1] : "?";
    if (strncmp(a, "--", 2) == 0) {
        snprintf(out, n, "%.*s", (int)strcspn(a, "="), a);
    }
    else if (optopt > 0 && optopt < 128 && isgraph(optopt)) {
        snprintf(out, n, "-%c", optopt);
    }
    else {
        snprintf(out, n, "%s", a);
    }
}

/* Says what is wrong with the flag getopt did not take: unknown, or given a value it does
 * not take. */
static void unknown_flag(cli_http_t *h, char **argv, const struct option *opts)
{
    char flag[128];
    const char *a = argv[optind - 1];
    bad_flag(argv, flag, sizeof(flag));
    for (const struct option *o = opts; strncmp(a, "--", 2) == 0 && o->name != NULL; o++) {
        if (o->has_arg == no_argument && strlen(flag) == strlen(o->name) + 2 &&
            strcmp(flag + 2, o->name) == 0) {
            fprintf(stderr, "sprig %s: flag %s takes no value (%s)\n", h->cmd, flag, a);
            return;
        }
    }
    fprintf(stderr, "sprig %s: unknown flag %s (see sprig %s --help)\n", h->cmd, flag, h->cmd);
}

/* A negative number ("-4.5") is an argument or a flag's value, never a flag: getopt is
 * shown it without its sign (the same string from its second byte), and signed again here. */
static char *signed_again(char **neg, int n, char *s)
{
    for (int i = 0; s != NULL && i < n; i++) {
        if (s == neg[i] + 1) {
            return neg[i];
        }
    }
    return s;
}

static int parse_flags(cli_http_t *h, int argc, char **argv, const struct option *opts,
                       cli_flag_fn on_flag, void *ctx, const char *usage, char **neg, int nneg)
{
    char flag[128];
    int ch, rc;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case CLI_OPT_URL:
            rc = set_url(h, optarg);
            break;
        case CLI_OPT_TOKEN_FILE:
            rc = read_token(h, optarg);
            break;
        case CLI_OPT_JSON:
            h->json = true;
            rc = 0;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case ':':
            bad_flag(argv, flag, sizeof(flag));
            fprintf(stderr, "sprig %s: flag %s needs a value (see sprig %s --help)\n", h->cmd, flag,
                    h->cmd);
            return 2;
        case '?':
            unknown_flag(h, argv, opts);
            return 2;
        default:
            optarg = signed_again(neg, nneg, optarg);
            /* "--type --json": the value was forgotten, and the next flag taken for it. */
            if (optarg != NULL && optarg == argv[optind - 1] && optind >= 2 &&
                strncmp(optarg, "--", 2) == 0) {
                fprintf(stderr, "sprig %s: flag %s needs a value, not the flag %s\n", h->cmd,
                        argv[optind - 2], optarg);
                return 2;
            }
            rc = on_flag(h, ch, optarg, ctx);
            break;
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (h->url == NULL && set_url(h, CLI_HTTP_DEFAULT_URL) != 0) {
        return 2;
    }
    return CLI_GO;
}

int cli_http_parse(cli_http_t *h, int argc, char **argv, const struct option *opts,
                   cli_flag_fn on_flag, void *ctx, const char *usage)
{
    char **neg = calloc((size_t)argc + 1, sizeof(*neg));
    int nneg = 0;
    if (neg == NULL) {
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        return 2;
    }
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        char *end;
        (void)strtod(argv[i], &end);
        if (argv[i][0] == '-' && end != argv[i] && *end == '\0' && argv[i][1] != '\0') {
            neg[nneg++] = argv[i];
            argv[i]++;
        }
    }
    int rc = parse_flags(h, argc, argv, opts, on_flag, ctx, usage, neg, nneg);
    for (int i = 0; i < argc; i++) {
        argv[i] = signed_again(neg, nneg, argv[i]);
    }
    free(neg);
    return rc;
}

int cli_http_group(const char *group, const cli_subcmd_t *table, int argc, char **argv)
{
    char list[128] = "";
    for (size_t i = 0; table[i].name != NULL; i++) {
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i > 0 ? ", " : "",
                 table[i].name);
    }
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: sprig %s SUBCOMMAND [ARGS] [FLAGS]\n\nsubcommands: %s\n\n"
                "`sprig %s SUBCOMMAND --help` explains each one and its flags.\n",
                group, list, group);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; table[i].name != NULL; i++) {
        if (strcmp(argv[1], table[i].name) == 0) {
            char cmd[64];
            cli_http_t h;
            snprintf(cmd, sizeof(cmd), "%s %s", group, table[i].name);
            cli_http_init(&h, cmd);
            int rc = table[i].run(&h, argc - 1, argv + 1);
            cli_http_close(&h);
            return rc;
        }
    }
    fprintf(stderr, "sprig %s: unknown subcommand \"%s\" (subcommands: %s)\n", group, argv[1],
            list);
    return 2;
}

int cli_http_args(cli_http_t *h, int argc, char **argv, int min, int max, const char *names)
{
    int n = argc - optind;
    if (n < min) {
        fprintf(stderr, "sprig %s: needs %s (see sprig %s --help)\n", h->cmd, names, h->cmd);
        return 2;
    }
    if (n > max) {
        if (max == 0) {
            fprintf(stderr, "sprig %s: unexpected argument \"%s\" (it takes none)\n", h->cmd,
                    argv[optind]);
        }
        else {
            fprintf(stderr, "sprig %s: unexpected argument \"%s\" (usage: sprig %s %s)\n", h->cmd,
                    argv[optind + max], h->cmd, names);
        }
        return 2;
    }
    return 0;
}

int cli_http_check_id(cli_http_t *h, const char *what, const char *s)
{
    if (sprig_id_valid(s)) {
        return 0;
    }
    fprintf(stderr, "sprig %s: %s \"%s\" must be 1-64 characters of A-Z a-z 0-9 . _ : -\n", h->cmd,
            what, s);
    return 2;
}

typedef struct buf {
    char *p;
    size_t len, cap, max;
    bool over; /* more arrived than max */
} buf_t;

static bool buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        if (b->len + n + 1 > b->max) {
            b->over = true;
            return false;
        }
        size_t cap = b->cap != 0 ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        cap = cap > b->max ? b->max : cap;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->over = true;
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    return buf_add(arg, data, size * n) ? size * n : 0;
}

/* Sets up the handle for one request; returns the header list to free after it. */
static struct curl_slist *prepare(cli_http_t *h, const char *path, const char *accept,
                                  bool has_body, char *url, size_t url_n, char *errbuf)
{
    if (h->curl == NULL) {
        if (curl_load(h->cmd) != 0) {
            exit(1);
        }
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return NULL;
        }
        if ((h->curl = curl_easy_init()) == NULL) {
            curl_global_cleanup();
            return NULL;
        }
    }
    CURL *c = h->curl;
    curl_easy_reset(c);
    snprintf(url, url_n, "%s%s", h->url, path);
    struct curl_slist *hd = curl_slist_append(NULL, accept);
    if (has_body && hd != NULL) {
        hd = curl_slist_append(hd, "Content-Type: application/json");
    }
    if (h->token != NULL && hd != NULL) {
        size_t an = strlen(h->token) + 32;
        char *auth = malloc(an);
        if (auth == NULL) {
            curl_slist_free_all(hd);
            return NULL;
        }
        snprintf(auth, an, "Authorization: Bearer %s", h->token);
        hd = curl_slist_append(hd, auth);
        free(auth);
    }
    if (hd == NULL) {
        return NULL;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sprig-cli");
    errbuf[0] = '\0';
    return hd;
}

static void report_curl(cli_http_t *h, CURLcode res, const char *method, const char *url,
                        const char *errbuf)
{
    const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(res);
    if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST ||
        res == CURLE_COULDNT_RESOLVE_PROXY || res == CURLE_UNSUPPORTED_PROTOCOL ||
        res == CURLE_URL_MALFORMAT ||
        (res == CURLE_OPERATION_TIMEDOUT && strstr(why, "onnect") != NULL)) {
        fprintf(stderr,
                "sprig %s: could not reach %s: %s (is `sprig run --listen` running there? "
                "--url names another address)\n",
                h->cmd, h->url, why);
    }
    else {
        fprintf(stderr, "sprig %s: %s %s failed: %s\n", h->cmd, method, url, why);
    }
}

/* Prints the error of a reply that is not 2xx: the server's sentence, else the body. */
static void report_status(cli_http_t *h, long status, const char *method, const char *url,
                          const char *body, size_t len)
{
    cJSON *j = body != NULL ? cJSON_ParseWithLength(body, len) : NULL;
    const char *sentence = cli_json_str(j, "error");
    if (sentence[0] != '\0') {
        fprintf(stderr, "sprig %s: %s (HTTP %ld)", h->cmd, sentence, status);
    }
    else {
        int n = 0;
        while (body != NULL && (size_t)n < len && n < 200 && body[n] != '\n' &&
               isprint((unsigned char)body[n])) {
            n++;
        }
        fprintf(stderr, "sprig %s: %s %s answered HTTP %ld%s%.*s", h->cmd, method, url, status,
                n > 0 ? ": " : " with no error sentence", n, body != NULL ? body : "");
    }
    if (status == 401 && h->token == NULL) {
        fputs(" -- this address needs a token: --token-file FILE", stderr);
    }
    fputc('\n', stderr);
    cJSON_Delete(j);
}

/* The upload's progress (h->progress): on a terminal one line rewritten at most every
 * 200 ms, elsewhere a line at each tenth of the body; then a line once all is sent, as the
 * daemon works on it before answering. */
typedef struct progress {
    cli_http_t *h;
    bool tty, done;
    int tenth;       /* the last tenth shown, off a terminal */
    double shown_at; /* seconds, monotonic */
} progress_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int on_upload_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                              curl_off_t ulnow)
{
    progress_t *pg = arg;
    (void)dltotal, (void)dlnow;
    if (pg->done || ultotal <= 0) {
        return 0;
    }
    double t = now_s();
    int tenth = (int)(ulnow * 10 / ultotal);
    bool all = ulnow >= ultotal;
    if (pg->tty ? (!all && t - pg->shown_at < 0.2) : (!all && tenth == pg->tenth)) {
        return 0;
    }
    pg->shown_at = t;
    pg->tenth = tenth;
    fprintf(stderr, "%ssprig %s: sent %.1f of %.1f MiB (%d%%)%s", pg->tty ? "\r" : "", pg->h->cmd,
            (double)ulnow / 1048576.0, (double)ultotal / 1048576.0, (int)(ulnow * 100 / ultotal),
            pg->tty && !all ? "" : "\n");
    if (all) {
        fprintf(stderr, "sprig %s: all sent; waiting for the daemon's answer\n", pg->h->cmd);
        pg->done = true;
    }
    return 0;
}

int cli_http_call(cli_http_t *h, const char *method, const char *path, const char *body,
                  cli_reply_t *out)
{
    progress_t pg = {.h = h, .tty = isatty(STDERR_FILENO) == 1, .tenth = -1};
    char url[2048], errbuf[CURL_ERROR_SIZE];
    buf_t b = {.max = CLI_BODY_MAX};
    int code = 1;
    memset(out, 0, sizeof(*out));
    struct curl_slist *hd =
        prepare(h, path, "Accept: application/json", body != NULL, url, sizeof(url), errbuf);
    if (hd == NULL) {
        fprintf(stderr, "sprig %s: cannot start libcurl (out of memory)\n", h->cmd);
        return 1;
    }
    CURL *c = h->curl;
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        if (h->progress) {
            curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_upload_progress);
            curl_easy_setopt(c, CURLOPT_XFERINFODATA, &pg);
            curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        }
    }
    curl_easy_setopt(c, CURLOPT_TIMEOUT, CLI_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode res = curl_easy_perform(c);
    curl_slist_free_all(hd);
    if (res == CURLE_WRITE_ERROR && b.over) {
        fprintf(stderr, "sprig %s: the reply to %s %s is larger than %zu MiB\n", h->cmd, method,
                url, CLI_BODY_MAX >> 20);
        goto done;
    }
    if (res != CURLE_OK) {
        report_curl(h, res, method, url, errbuf);
        goto done;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (out->status < 200 || out->status > 299) {
        report_status(h, out->status, method, url, b.p, b.len);
        goto done;
    }
    if (b.len > 0 && (out->json = cJSON_ParseWithLength(b.p, b.len)) == NULL) {
        fprintf(stderr, "sprig %s: the reply to %s %s is not JSON (HTTP %ld, %zu bytes)\n", h->cmd,
                method, url, out->status, b.len);
        goto done;
    }
    out->body = b.p != NULL ? b.p : strdup("");
    out->len = b.len;
    b.p = NULL;
    code = out->body != NULL ? 0 : 1;
done:
    free(b.p);
    if (code != 0) {
        cJSON_Delete(out->json);
        out->json = NULL;
    }
    return code;
}

int cli_http_send(cli_http_t *h, const char *method, const char *path, const cJSON *body,
                  cli_reply_t *out)
{
    char *s = cJSON_PrintUnformatted(body);
    if (s == NULL) {
        memset(out, 0, sizeof(*out));
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        return 1;
    }
    int rc = cli_http_call(h, method, path, s, out);
    cJSON_free(s);
    return rc;
}

int cli_http_post_point(cli_http_t *h, const char *id, const cJSON *point, cli_reply_t *out)
{
    char path[128];
    /* A one-point array that only refers to the point: deleting it leaves the point. */
    cJSON *body = point != NULL ? cJSON_CreateArrayReference(point) : NULL;
    if (body == NULL) {
        memset(out, 0, sizeof(*out));
        fprintf(stderr, "sprig %s: out of memory\n", h->cmd);
        return 1;
    }
    snprintf(path, sizeof(path), "/v1/nodes/%s/points", id);
    int rc = cli_http_send(h, "POST", path, body, out);
    cJSON_Delete(body);
    return rc;
}

void cli_reply_free(cli_reply_t *r)
{
    cJSON_Delete(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int cli_http_print_body(cli_http_t *h, const cli_reply_t *r)
{
    if (r->len == 0) {
        fputs("{}\n", stdout);
    }
    else {
        fwrite(r->body, 1, r->len, stdout);
        if (r->body[r->len - 1] != '\n') {
            fputc('\n', stdout);
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sprig %s: cannot write to stdout: %s\n", h->cmd, strerror(errno));
        return 1;
    }
    return 0;
}

typedef struct sse {
    cli_http_t *h;
    cli_event_fn fn;
    void *arg;
    volatile sig_atomic_t *stop;
    long status; /* 0 until the first bytes of the body */
    buf_t line, data, err;
    char event[65];
    bool has_data; /* a data field since the last event */
    int code;      /* nonzero: stop the stream with this exit code */
} sse_t;

/* One line of the stream (without its end of line), by the server-sent events rules. */
static void sse_line(sse_t *s, char *line, size_t n)
{
    if (n == 0) {
        if (s->has_data) {
            s->code = s->fn(s->event[0] != '\0' ? s->event : "message",
                            s->data.p != NULL ? s->data.p : "", s->arg);
        }
        s->event[0] = '\0';
        s->data.len = 0;
        s->has_data = false;
        return;
    }
    if (line[0] == ':') {
        return; /* a comment: keep-alive */
    }
    char *colon = memchr(line, ':', n);
    const char *value = "";
    size_t fn = n;
    if (colon != NULL) {
        fn = (size_t)(colon - line);
        value = colon + 1 + (colon[1] == ' ');
    }
    if (fn == 5 && memcmp(line, "event", 5) == 0) {
        snprintf(s->event, sizeof(s->event), "%s", value);
    }
    else if (fn == 4 && memcmp(line, "data", 4) == 0) {
        if ((s->has_data && !buf_add(&s->data, "\n", 1)) ||
            !buf_add(&s->data, value, strlen(value))) {
            fprintf(stderr, "sprig %s: an event is longer than %zu MiB; stopping\n", s->h->cmd,
                    CLI_LINE_MAX >> 20);
            s->code = 1;
        }
        s->has_data = true;
    }
}

static size_t on_stream(char *data, size_t size, size_t n, void *arg)
{
    sse_t *s = arg;
    size_t total = size * n;
    if (s->status == 0) {
        curl_easy_getinfo(s->h->curl, CURLINFO_RESPONSE_CODE, &s->status);
    }
    if (s->status < 200 || s->status > 299) {
        buf_add(&s->err, data, total); /* the error reply, cut at CLI_ERRBODY_MAX */
        return total;
    }
    for (size_t i = 0; i < total && s->code == 0 && !*s->stop;) {
        char *nl = memchr(data + i, '\n', total - i);
        size_t end = nl != NULL ? (size_t)(nl - data) : total;
        if (!buf_add(&s->line, data + i, end - i)) {
            fprintf(stderr, "sprig %s: an event line is longer than %zu MiB; stopping\n", s->h->cmd,
                    CLI_LINE_MAX >> 20);
            s->code = 1;
            break;
        }
        i = end;
        if (nl != NULL) {
            i++;
            size_t len = s->line.len;
            if (len > 0 && s->line.p[len - 1] == '\r') {
                s->line.p[--len] = '\0';
            }
            char empty[1] = "";
            sse_line(s, s->line.p != NULL ? s->line.p : empty, len);
            s->line.len = 0;
        }
    }
    return s->code == 0 && !*s->stop ? total : 0;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    sse_t *s = arg;
    (void)a, (void)b, (void)c, (void)d;
    return *s->stop ? 1 : 0;
}

int cli_http_stream(cli_http_t *h, const char *path, cli_event_fn on_event, void *arg,
                    volatile sig_atomic_t *stop)
{
    char url[2048], errbuf[CURL_ERROR_SIZE];
    sse_t s = {.h = h, .fn = on_event, .arg = arg, .stop = stop};
    s.line.max = s.data.max = CLI_LINE_MAX;
    s.err.max = CLI_ERRBODY_MAX;
    int code = 1;
    struct curl_slist *hd =
        prepare(h, path, "Accept: text/event-stream", false, url, sizeof(url), errbuf);
    if (hd == NULL) {
        fprintf(stderr, "sprig %s: cannot start libcurl (out of memory)\n", h->cmd);
        return 1;
    }
    CURL *c = h->curl;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    CURLcode res = curl_easy_perform(c);
    curl_slist_free_all(hd);
    if (*stop) {
        code = 0;
    }
    else if (s.code != 0) {
        code = s.code;
    }
    else if (s.status != 0 && (s.status < 200 || s.status > 299)) {
        report_status(h, s.status, "GET", url, s.err.p, s.err.len);
    }
    else if (res != CURLE_OK) {
        report_curl(h, res, "GET", url, errbuf);
    }
    else {
        fprintf(stderr, "sprig %s: the server at %s closed the event stream\n", h->cmd, h->url);
    }
    free(s.line.p);
    free(s.data.p);
    free(s.err.p);
    return code;
}
