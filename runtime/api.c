/* The HTTP server: libmicrohttpd on the libuv loop (see api.h). This file is the
 * plumbing: the listening address and token, MHD's epoll fd and timeout on the loop, the
 * request body with its size limit, and answering writes once durable. The routes are in
 * api_routes.c and api_nodes.c, the event streams in api_events.c, connection limits and
 * timeouts in api_conn.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_internal.h"
#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/util.h"

#define BODY_MAX_DEFAULT (1024 * 1024)
/* An import holds about 15 times its size in memory while it is parsed and applied, and
 * the loop for about 2 s per 100,000 nodes: 64 MiB takes a 100,000-node site export (58 MB)
 * and bounds the worst one to about 1 GB and a few seconds. */
#define IMPORT_MAX_DEFAULT ((size_t)64 << 20)
/* How long a stopping server gives the answers of waiting writes to go out. */
#define STOP_ANSWER_NS (2ULL * 1000000000)

/* A write's wait for durability. The store holds it until the batch is on disk; if the
 * request is gone by then (server stopped), req is NULL and the ticket just goes. */
struct api_ticket {
    api_req_t *req;
};

static void run_mhd(sprig_api_t *api);

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decoding of the path and query, in place, as MHD's own does, except that %00
 * stays as it is: decoded to NUL it would silently cut an id short ("a%00junk" naming
 * node "a"), while '%' is outside every id's charset, so such a request is refused with
 * the id as it was sent. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    char *w = s;
    for (const char *r = s; *r != '\0'; r++) {
        int hi, lo;
        if (*r == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 &&
            hi * 16 + lo != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        }
        else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static void on_timer(uv_timer_t *t)
{
    run_mhd(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_mhd(p->data);
}

/* Lets MHD do its work, then arms the timer for its next deadline. */
static void run_mhd(sprig_api_t *api)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (api->mhd == NULL) {
        return;
    }
    api->kicked = false;
    MHD_run(api->mhd);
    api__conn_after_run(api);
    if (api->kicked) {
        /* A handler resumed a connection (or queued an event) during this run. */
        uv_timer_start(api->timer, on_timer, 0, 0);
    }
    else if (MHD_get_timeout(api->mhd, &ms) == MHD_YES) {
        /* At least once a second: MHD's timeout covers its connections, not its listen
         * socket, which it only puts back in its epoll set at the start of a run. */
        uv_timer_start(api->timer, on_timer, ms > 1000 ? 1000 : ms, 0);
    }
    else {
        uv_timer_start(api->timer, on_timer, 1000, 0);
    }
}

void api__kick(sprig_api_t *api)
{
    api->kicked = true;
    if (api->timer != NULL) {
        uv_timer_start(api->timer, on_timer, 0, 0);
    }
}

void api__error(api_answer_t *ans, int status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sprig_utf8_escape(msg, sizeof(msg)); /* bytes a client sent, a value cut with "%.40s" */
    cJSON_Delete(ans->json);
    ans->json = cJSON_CreateObject();
    if (ans->json != NULL) {
        cJSON_AddStringToObject(ans->json, "error", msg);
    }
    ans->status = status;
    ans->wait_batch = 0;
}

int api__status(int code)
{
    switch (code) {
    case 0:
        return MHD_HTTP_OK;
    case -EINVAL:
    case SPRIG_EDRIFT:
        return MHD_HTTP_BAD_REQUEST;
    case -ENOENT:
        return MHD_HTTP_NOT_FOUND;
    case -E2BIG:
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case -EEXIST:
    case SPRIG_ECYCLE:
        return MHD_HTTP_CONFLICT;
    case -ENOMEM:
    case -EBUSY:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* Queues a JSON (or plain) answer; takes ownership of text. */
static enum MHD_Result send_text(struct MHD_Connection *conn, int status, char *text)
{
    const char *body = text != NULL ? text : "{\"error\":\"out of memory\"}";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    sprig_free(text);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(conn, text != NULL ? (unsigned)status : 500, r);
    MHD_destroy_response(r);
    return rc;
}

static char *render(cJSON *json)
{
    char *s = json != NULL ? cJSON_PrintUnformatted(json) : NULL;
    char *copy = s != NULL ? sprig_strdup(s) : NULL;
    cJSON_free(s);
    return copy;
}

/* The JSON text of an error answer (caller frees; NULL when out of memory). */
static char *error_text(int status, const char *fmt, va_list ap)
{
    char msg[768];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    api_answer_t ans = {0};
    api__error(&ans, status, "%s", msg);
    char *text = render(ans.json);
    cJSON_Delete(ans.json);
    return text;
}

static enum MHD_Result send_error(api_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(api_req_t *req, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = error_text(status, fmt, ap);
    va_end(ap);
    req->api->errors++;
    return send_text(req->conn, status, text);
}

/* Replaces a waiting write's answer by an error. */
static void answer_error(api_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void answer_error(api_req_t *req, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sprig_free(req->answer);
    req->answer = error_text(status, fmt, ap);
    va_end(ap);
    req->status = status;
    req->api->errors++;
}

static void resume(api_req_t *req)
{
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
        api__kick(req->api);
    }
}

/* The store's callback for a waiting write: the answer goes out now. 0: on disk. Else the
 * store cannot write (failing or stalled, or given up at close): the write was applied in
 * memory in full (a call is all or nothing) but is not on disk, and the answer says which
 * of the two it is now: kept to be written once the store recovers, or, when the server
 * is stopping, not stored. */
static void on_durable(uint64_t batch, int status, void *arg)
{
    (void)batch;
    api_ticket_t *t = arg;
    api_req_t *req = t->req;
    sprig_free(t);
    if (req == NULL) {
        return;
    }
    req->ticket = NULL;
    if (status != 0) {
        sprig_store_health_t h;
        sprig_store_health(sprig_core_store(req->api->core), &h);
        const char *why = h.error != NULL ? h.error : sprig_strerror(status);
        if (req->api->stopping) {
            answer_error(req, 503, "%s; sprig is stopping, so this write is not stored", why);
        }
        else {
            answer_error(req, 503,
                         "%s; this write is applied but not on disk yet: it is kept in memory and "
                         "written once the database can be written again, unless sprig stops "
                         "first (no need to send it again)",
                         why);
        }
    }
    resume(req);
}

/* Suspends req (when it is not already) and puts it on api->waiting, where
 * sprig_api_stop finds it. */
static void suspend(api_req_t *req)
{
    sprig_api_t *api = req->api;
    if (req->suspended) {
        return;
    }
    req->suspended = true;
    req->wait_next = api->waiting;
    req->wait_prev = &api->waiting;
    if (api->waiting != NULL) {
        api->waiting->wait_prev = &req->wait_next;
    }
    api->waiting = req;
    MHD_suspend_connection(req->conn);
}

/* Keeps text (taken) as req's answer and waits for batch to be durable; req is suspended
 * meanwhile. Returns false when out of memory (text freed, nothing kept). */
static bool wait_durable(api_req_t *req, int status, char *text, uint64_t batch)
{
    sprig_api_t *api = req->api;
    api_ticket_t *t = sprig_malloc(sizeof(*t));
    if (t == NULL) {
        sprig_free(text);
        return false;
    }
    t->req = req;
    req->ticket = t;
    req->status = status;
    req->answer = text;
    suspend(req);
    /* Not only once durable: a write must not hang on a store that cannot write. */
    if (sprig_store_when_durable_or_failing(sprig_core_store(api->core), batch, on_durable, t) !=
        0) {
        req->ticket = NULL;
        sprig_free(t);
        answer_error(req, 503, "out of memory: the write is applied but its answer is lost");
        resume(req);
    }
    return true;
}

/* A body parsed on a worker thread (POST /v1/import): a 50 MB export takes half a second
 * to parse, time in which the loop goes on serving. The parse owns the body; req is
 * suspended meanwhile and set to NULL here when it ends first (sprig_api_stop), so the
 * after-callback, which may then run after the server is freed, only frees the parse. */
typedef struct api_parse {
    uv_work_t work;
    api_req_t *req;
    api_req_t body; /* the body and its length, alone: what the worker reads */
    cJSON *json;    /* the parse, or NULL with ans holding the 400 */
    api_answer_t ans;
    uint64_t ns; /* how long it took */
} api_parse_t;

static void parse_work(uv_work_t *w)
{
    api_parse_t *p = w->data;
    uint64_t t0 = uv_hrtime();
    p->json = api__body_json(&p->body, &p->ans);
    p->ns = uv_hrtime() - t0;
}

static void parse_done(uv_work_t *w, int status)
{
    api_parse_t *p = w->data;
    api_req_t *req = p->req;
    sprig_free(p->body.body);
    if (req == NULL || status != 0) {
        cJSON_Delete(p->json);
        cJSON_Delete(p->ans.json);
        sprig_free(p);
        if (req != NULL) {
            req->parse = NULL;
            answer_error(req, 503, "the import could not be parsed: %s", uv_strerror(status));
            resume(req);
        }
        return;
    }
    req->parse = NULL;
    api_answer_t ans = p->ans;
    if (p->json != NULL) {
        api__import_apply(req->api->core, p->json, p->body.len, p->ns, &ans);
    }
    sprig_free(p);
    if (ans.status >= 400) {
        req->api->errors++;
    }
    char *text = render(ans.json);
    cJSON_Delete(ans.json);
    if (ans.wait_batch != 0 && ans.status < 300) {
        if (!wait_durable(req, ans.status, text, ans.wait_batch)) {
            answer_error(req, 503, "out of memory: the import is applied but its answer is lost");
            resume(req);
        }
        return;
    }
    sprig_free(req->answer);
    req->answer = text;
    req->status = ans.status;
    resume(req);
}

/* Hands req's body to a worker thread to parse (api_parse_t); the answer comes once it is
 * parsed and applied. */
static enum MHD_Result parse_later(api_req_t *req)
{
    api_parse_t *p = sprig_calloc(1, sizeof(*p));
    if (p == NULL) {
        return send_error(req, 503, "out of memory");
    }
    p->req = req;
    p->work.data = p;
    p->body.body = req->body;
    p->body.len = req->len;
    if (uv_queue_work(req->api->loop, &p->work, parse_work, parse_done) != 0) {
        sprig_free(p);
        return send_error(req, 503, "out of memory: no worker thread to parse the import");
    }
    req->body = NULL; /* the parse owns it now */
    req->len = req->cap = 0;
    req->parse = p;
    suspend(req);
    return MHD_YES;
}

/* Answers a routed request: at once, as an event stream, once its body is parsed on a
 * worker, or once its batch is durable. */
static enum MHD_Result answer(api_req_t *req, api_answer_t *ans)
{
    sprig_api_t *api = req->api;
    if (ans->parse_later) {
        return parse_later(req);
    }
    if (ans->stream != NULL) {
        struct MHD_Response *r = api__events_response(api, ans->stream);
        if (r == NULL) {
            return MHD_NO;
        }
        enum MHD_Result rc = MHD_queue_response(req->conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (ans->status >= 400) {
        api->errors++;
    }
    char *text = render(ans->json);
    cJSON_Delete(ans->json);
    if (ans->wait_batch == 0 || ans->status >= 300) {
        return send_text(req->conn, ans->status, text);
    }
    if (!wait_durable(req, ans->status, text, ans->wait_batch)) {
        return send_error(req, 503, "out of memory");
    }
    return MHD_YES;
}

static bool token_ok(sprig_api_t *api, struct MHD_Connection *conn)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    static const char bearer[] = "Bearer ";
    if (h == NULL || strncmp(h, bearer, sizeof(bearer) - 1) != 0) {
        return false;
    }
    h += sizeof(bearer) - 1;
    /* Constant time in the token's length: no early exit on the first wrong byte. */
    size_t n = strlen(api->token), m = strlen(h);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++) {
        diff |= (unsigned char)(api->token[i] ^ (i < m ? h[i] : 0));
    }
    return diff == 0;
}

/* Counts Host headers into *cls. */
static enum MHD_Result count_host(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    (void)value;
    *(int *)cls += strcasecmp(key, "Host") == 0;
    return MHD_YES;
}

/* Sets the largest body req may bring: POST /v1/import takes a whole export, up to
 * import_max; every other route a single write, up to body_max. */
static void body_limit(api_req_t *req, const char *method, const char *url)
{
    req->bulk = strcmp(method, "POST") == 0 && strcmp(url, "/v1/import") == 0;
    req->max = req->bulk ? req->api->import_max : req->api->body_max;
}

/* Answers 413 for a body over req->max; cl is its Content-Length, NULL when it was sent
 * without one (chunked) and found too large on the way. */
static enum MHD_Result send_too_large(api_req_t *req, const char *cl)
{
    char size[48] = "";
    if (cl != NULL) {
        snprintf(size, sizeof(size), " of %.24s bytes", cl);
    }
    if (req->bulk) {
        return send_error(req, 413,
                          "import body%s is over the limit of %zu bytes (sprig run --import-max)",
                          size, req->max);
    }
    return send_error(req, 413,
                      "request body%s is over the limit of %zu bytes (a whole tree goes "
                      "through POST /v1/import)",
                      size, req->max);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    sprig_api_t *api = cls;
    api_req_t *req = *con_cls;
    if (req == NULL) {
        if ((req = sprig_calloc(1, sizeof(*req))) == NULL) {
            return MHD_NO;
        }
        req->api = api;
        req->conn = conn;
        *con_cls = req;
        api->requests++;
        api__conn_request_begin(conn);
        int hosts = 0;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, count_host, &hosts);
        if (url[0] != '/' || (strcmp(version, MHD_HTTP_VERSION_1_1) == 0 && hosts != 1)) {
            /* RFC 9112: an origin-form target, and exactly one Host in HTTP/1.1. */
            return send_error(req, 400, "bad request: %s",
                              url[0] != '/' ? "the target must start with /"
                                            : "HTTP/1.1 needs exactly one Host header");
        }
        /* The UI's own files are public; the page then sends the token with each call. */
        if (api->token != NULL && !api__ui_path(url) && !token_ok(api, conn)) {
            req->early_status = 401;
        }
        body_limit(req, method, url);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl != NULL && strtoull(cl, NULL, 10) > req->max) {
            req->early_status = req->early_status != 0 ? req->early_status : 413;
        }
        if (req->early_status == 401) {
            return send_error(req, 401,
                              "missing or wrong bearer token (Authorization: Bearer ...)");
        }
        if (req->early_status == 413) {
            return send_too_large(req, cl);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->too_large) {
            return MHD_YES; /* read and dropped, never buffered */
        }
        if (req->len + n > req->max) {
            req->too_large = true;
            sprig_free(req->body);
            req->body = NULL;
            req->len = req->cap = 0;
            return MHD_YES;
        }
        if (req->len + n + 1 > req->cap) {
            size_t cap = req->cap != 0 ? req->cap : 4096;
            while (cap < req->len + n + 1) {
                cap *= 2;
            }
            char *b = sprig_realloc(req->body, cap);
            if (b == NULL) {
                return MHD_NO;
            }
            req->body = b;
            req->cap = cap;
        }
        memcpy(req->body + req->len, upload, n);
        req->len += n;
        req->body[req->len] = '\0';
        return MHD_YES;
    }
    if (req->started) {
        /* Resumed after its batch became durable. */
        char *text = req->answer;
        req->answer = NULL;
        if (text == NULL) {
            return send_error(req, 500, "the write was accepted but could not be stored");
        }
        return send_text(conn, req->status, text);
    }
    req->started = true;
    api__conn_request_whole(conn);
    if (req->too_large) {
        return send_too_large(req, NULL);
    }
    if (api->stopping) {
        return send_error(req, 503, "the server is stopping");
    }
    if (api__ui_path(url)) {
        const api_asset_t *a = api__ui_find(url);
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            return send_error(req, 405, "%s %.128s: method not allowed (the UI's files are read "
                              "with GET)", method, url);
        }
        if (a == NULL) {
            return send_error(req, 404, "no such page: %.128s (the UI is at /, the API under /v1)",
                              url);
        }
        return api__ui_serve(req, a);
    }
    api_answer_t ans = {0};
    api__route(api, req, method, url, &ans);
    return answer(req, &ans);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    api__conn_request_end(cls, conn);
    api_req_t *req = *con_cls;
    if (req == NULL) {
        return;
    }
    if (req->ticket != NULL) {
        req->ticket->req = NULL; /* the store still holds it, and frees it */
    }
    if (req->parse != NULL) {
        req->parse->req = NULL; /* the worker still holds it; its after-callback frees it */
    }
    if (req->wait_prev != NULL) {
        *req->wait_prev = req->wait_next;
        if (req->wait_next != NULL) {
            req->wait_next->wait_prev = req->wait_prev;
        }
    }
    sprig_free(req->answer);
    sprig_free(req->body);
    sprig_free(req);
    *con_cls = NULL;
}

/* Parses "ADDR:PORT" / "[V6]:PORT" into a socket address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, bool *loopback)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    char *end;
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(host)) {
        return -EINVAL;
    }
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535) {
        return -EINVAL;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']') {
            return -EINVAL;
        }
        host[n - 1] = '\0';
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        if (uv_ip6_addr(host + 1, (int)port, a6) != 0) {
            return -EINVAL;
        }
        *loopback = memcmp(&a6->sin6_addr, &in6addr_loopback, sizeof(a6->sin6_addr)) == 0;
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    if (uv_ip4_addr(host, (int)port, a4) != 0) {
        return -EINVAL;
    }
    *loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    return 0;
}

int sprig_api_start(sprig_core_t *core, const sprig_api_opts_t *opts, sprig_api_t **out,
                    sprig_error_t *err)
{
    const char *listen = opts->listen != NULL ? opts->listen : "127.0.0.1:8118";
    struct sockaddr_storage ss;
    bool loopback = false;
    *out = NULL;
    if (parse_listen(listen, &ss, &loopback) != 0) {
        return sprig_error_set(err, -EINVAL,
                               "listen address \"%s\" is not ADDR:PORT (127.0.0.1:8118, "
                               "[::1]:8118)",
                               listen);
    }
    if (!loopback && (opts->token == NULL || opts->token[0] == '\0')) {
        return sprig_error_set(err, -EINVAL,
                               "listen address %s is not loopback: it needs a token "
                               "(--token-file)",
                               listen);
    }
    sprig_api_t *api = sprig_calloc(1, sizeof(*api));
    if (api == NULL) {
        return sprig_error_set(err, -ENOMEM, "out of memory");
    }
    api->core = core;
    api->loop = sprig_core_loop(core);
    api->body_max = opts->body_max != 0 ? opts->body_max : BODY_MAX_DEFAULT;
    api->import_max = opts->import_max != 0 ? opts->import_max : IMPORT_MAX_DEFAULT;
    api->started_ns = sprig_wall_ns();
    if ((opts->token != NULL && opts->token[0] != '\0' &&
         (api->token = sprig_strdup(opts->token)) == NULL) ||
        api__conn_init(api) != 0) {
        sprig_free(api->token);
        sprig_free(api);
        return sprig_error_set(err, -ENOMEM, "out of memory");
    }
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    api->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, api, MHD_OPTION_EXTERNAL_LOGGER, api__conn_log, api,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        api, MHD_OPTION_NOTIFY_CONNECTION, api__conn_notify, api, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)API_REQUEST_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONN_MAX,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)API_CONN_PER_ADDR_MAX,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, api, MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
        MHD_OPTION_END);
    if (api->mhd == NULL) {
        api__conn_fini(api);
        sprig_free(api->token);
        sprig_free(api);
        return sprig_error_set(err, -EADDRINUSE,
                               "cannot listen on %s (in use, or not an address of this "
                               "machine)",
                               listen);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_BIND_PORT);
    api->port = di != NULL ? di->port : 0;
    di = MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    api->poll = sprig_malloc(sizeof(*api->poll));
    api->timer = sprig_malloc(sizeof(*api->timer));
    if (di == NULL || api->poll == NULL || api->timer == NULL ||
        sprig_bus_subscribe(sprig_core_bus(core), NULL, api__events_publish, api, &api->sub) != 0) {
        MHD_stop_daemon(api->mhd);
        api__conn_fini(api);
        sprig_free(api->poll);
        sprig_free(api->timer);
        sprig_free(api->token);
        sprig_free(api);
        return sprig_error_set(err, -ENOMEM, "out of memory");
    }
    uv_poll_init(api->loop, api->poll, di->epoll_fd);
    uv_timer_init(api->loop, api->timer);
    api->poll->data = api->timer->data = api;
    uv_poll_start(api->poll, UV_READABLE, on_poll);
    run_mhd(api);
    char shown[80];
    snprintf(shown, sizeof(shown), "%.*s:%u", (int)(strrchr(listen, ':') - listen), listen,
             api->port);
    sprig_log_info("api: listening on http://%s (web UI at http://%s/)%s", shown, shown,
                   api->token != NULL ? " (bearer token required)" : "");
    *out = api;
    return 0;
}

unsigned sprig_api_port(const sprig_api_t *api)
{
    return api->port;
}

void sprig_api_stop(sprig_api_t *api)
{
    if (api == NULL) {
        return;
    }
    api->stopping = true;
    sprig_bus_unsubscribe(sprig_core_bus(api->core), api->sub);
    api__events_close_all(api);
    /* Writes waiting for their batch: commit now, so they get their answer (200, or 503
     * when the store cannot write). */
    sprig_store_flush(sprig_core_store(api->core));
    /* Any still waiting gets 503 now: MHD must not stop with a connection suspended (it
     * aborts the process), and a client must not hang. */
    for (api_req_t *r = api->waiting; r != NULL; r = r->wait_next) {
        if (r->suspended) {
            if (r->ticket != NULL) {
                r->ticket->req = NULL; /* the store still holds it, and frees it */
                r->ticket = NULL;
            }
            if (r->parse != NULL) {
                r->parse->req = NULL; /* freed by its after-callback */
                r->parse = NULL;
            }
            answer_error(r, 503,
                         "sprig is stopping before this write is on disk: it is not stored");
            resume(r);
        }
    }
    /* Let MHD send those answers, within a bound. */
    uint64_t end = uv_hrtime() + STOP_ANSWER_NS;
    MHD_run(api->mhd);
    while (api->waiting != NULL && uv_hrtime() < end) {
        uv_sleep(1);
        MHD_run(api->mhd);
    }
    uv_poll_stop(api->poll);
    MHD_stop_daemon(api->mhd);
    api->mhd = NULL;
    api__conn_fini(api);
    uv_close((uv_handle_t *)api->poll, sprig_free_handle);
    uv_close((uv_handle_t *)api->timer, sprig_free_handle);
    sprig_free(api->token);
    sprig_free(api);
}
