/* What the files of the api module share: the server, a request, and the route table's
 * answer. */
#ifndef SPRIG_API_INTERNAL_H
#define SPRIG_API_INTERNAL_H

#include <cJSON.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>

#include "sprig/api.h"

typedef struct api_sse api_sse_t;
typedef struct api_ticket api_ticket_t;
typedef struct api_conn api_conn_t;

/* Connections (README: How the server limits connections). At API_CONN_MAX a new connection
 * waits in the listen backlog for a free slot; one from an address that holds
 * API_CONN_PER_ADDR_MAX already is closed at once. A connection has API_REQUEST_TIMEOUT_S to
 * bring a whole request head (from opening, or from its previous answer) and may not stay
 * silent longer than that while sending the body; once the request is whole, its answer may
 * stay silent for API_ANSWER_TIMEOUT_S (a suspended one, waiting to be durable or for the next
 * event, never times out). */
#define API_CONN_MAX 256
#define API_CONN_PER_ADDR_MAX 64
#define API_REQUEST_TIMEOUT_S 10
#define API_ANSWER_TIMEOUT_S 60

struct sprig_api {
    sprig_core_t *core;
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    uv_poll_t *poll;   /* freed in its close callback */
    uv_timer_t *timer; /* freed in its close callback */
    char *token;
    size_t body_max;   /* a request's body, but POST /v1/import's */
    size_t import_max; /* POST /v1/import's body */
    unsigned port;
    int64_t started_ns;
    bool stopping;
    bool kicked;             /* MHD must run again at once */
    api_sse_t *streams;      /* open /v1/events connections */
    struct api_req *waiting; /* writes whose answer waits for their batch, until completed */
    sprig_bus_sub_t *sub;
    uint64_t requests, errors;
    /* Connections (api_conn.c). */
    api_conn_t *conns; /* every open one */
    unsigned nconns;
    unsigned gone;       /* how many of them have a peer that hung up, not yet shut down */
    int hup_fd;          /* epoll of the connections' hang-ups */
    uv_poll_t *hup_poll; /* watches hup_fd; freed in its close callback */
    uv_timer_t *sweep;   /* ends connections past their request timeout; idem */
    bool full;           /* MHD was at API_CONN_MAX after a run */
};

/* One HTTP request, from its first callback to MHD's completion notice. */
typedef struct api_req {
    sprig_api_t *api;
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    size_t max; /* the largest body this request may bring (body_limit) */
    bool bulk;  /* POST /v1/import: max is import_max */
    bool started, too_large, suspended;
    int early_status; /* answered before the body: 401, 413 */
    /* A write waiting for its batch: the answer is kept until then. */
    api_ticket_t *ticket;
    int status;
    char *answer;
    struct api_req *wait_next, **wait_prev; /* in api->waiting while wait_prev != NULL */
    struct api_parse *parse;                /* its body being parsed on a worker thread (api.c) */
} api_req_t;

/* What a route answers: a status and a JSON body (owned), and for a write the store batch
 * to wait for before answering (0: answer at once). */
typedef struct api_answer {
    int status;
    cJSON *json;
    uint64_t wait_batch;
    api_sse_t *stream; /* set by /v1/events: answer with the stream */
    bool parse_later;  /* set by POST /v1/import: parse the body on a worker thread, then
                        * answer with api__import_apply */
} api_answer_t;

/* Routes a complete request; fills the answer (a JSON error for a bad one). */
void api__route(sprig_api_t *api, api_req_t *req, const char *method, const char *url,
                api_answer_t *ans);
/* Routes one request made in process, without a connection or a server: method, url (no
 * query string) and the len bytes of body (borrowed; body[len] must be NUL), answered in
 * ans as api__route answers (caller frees ans->json; a write's wait_batch is not waited
 * for). The route code the server runs, for the fuzz target (tests/fuzz/fuzz_api_json.c);
 * GET /v1/events, which needs a connection, is refused. Loop thread only. */
void api__route_body(sprig_core_t *core, const char *method, const char *url, const char *body,
                     size_t len, api_answer_t *ans);
/* Imports doc (taken: freed here) as one write through sprig_import_json, logging the
 * time the loop spent on it, and fills ans: 200 {"nodes","points"} waiting for the batch,
 * or the refusal (503 while the store cannot write). len and parse_ns (the body's size and
 * the time its parse took) are for the log. Loop thread only. */
void api__import_apply(sprig_core_t *core, cJSON *doc, size_t len, uint64_t parse_ns,
                       api_answer_t *ans);
/* Parses the request body as strict JSON; NULL with a 400 in ans naming the fault. Reads
 * only req's body and len, so a worker thread may call it on a request it owns. */
cJSON *api__body_json(const api_req_t *req, api_answer_t *ans);
/* Fills ans with {"error": msg} and status. */
void api__error(api_answer_t *ans, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a write path code to an HTTP status. */
int api__status(int code);

/* The routes (api_routes.c: the table, status, history, schema, export and import;
 * api_nodes.c: the nodes). A request being routed: its path's segments, and the answer
 * its route fills. */
#define MAX_SEGMENTS 6
typedef struct route_ctx {
    sprig_api_t *api;
    api_req_t *req;
    sprig_core_t *core;
    sprig_tree_t *tree;
    const char *seg[MAX_SEGMENTS];
    int nseg;
    api_answer_t *ans;
} route_ctx_t;
/* A query parameter; a request routed in process (api__route_body) has none. */
const char *api__query(route_ctx_t *r, const char *name);
/* Answers status and json (owned); a write names the batch to wait for (0: none). */
void api__ok(route_ctx_t *r, int status, cJSON *json, uint64_t wait_batch);
/* Answers err's sentence with the HTTP status of code (api__status). */
void api__fail(route_ctx_t *r, int code, const sprig_error_t *err);
/* The request's body as strict JSON (api__body_json); NULL with the 400 answered. */
cJSON *api__parse_body(route_ctx_t *r);
/* The node routes (api_nodes.c): GET and POST /v1/nodes; GET and DELETE /v1/nodes/{id};
 * GET /v1/nodes/{id}/children; POST /v1/nodes/{id}/points and /v1/nodes/{id}/parents. */
void api__get_nodes(route_ctx_t *r);
void api__post_nodes(route_ctx_t *r);
void api__get_node(route_ctx_t *r, sprig_node_t *n);
void api__get_children(route_ctx_t *r, sprig_node_t *n);
void api__delete_node(route_ctx_t *r, sprig_node_t *n);
void api__post_points(route_ctx_t *r, sprig_node_t *n);
void api__post_parents(route_ctx_t *r, sprig_node_t *n);

/* Server-sent events (api_events.c). */
int api__events_open(sprig_api_t *api, api_req_t *req, api_answer_t *ans);
struct MHD_Response *api__events_response(sprig_api_t *api, api_sse_t *s);
void api__events_publish(const sprig_event_t *ev, void *arg);
void api__events_close_all(sprig_api_t *api);
/* The web UI (api_ui.c): its files, built into the binary, and the rule compile check. */
typedef struct api_asset {
    const char *name; /* "index.html", "app.js", ... (NULL ends the table) */
    const char *etag; /* "\"...\"": a hash of the bytes, made at build time */
    const unsigned char *data;
    size_t len;
} api_asset_t;
extern const api_asset_t api__assets[];
/* True for a path the UI serves (anything outside /v1): no token needed to fetch it. */
bool api__ui_path(const char *url);
/* The file of a UI path ("/" is index.html, "/ui/NAME" the others), or NULL. */
const api_asset_t *api__ui_find(const char *url);
/* Answers GET/HEAD with the file, or 304 when If-None-Match holds its ETag. */
enum MHD_Result api__ui_serve(api_req_t *req, const api_asset_t *a);
/* POST /v1/rules/compile {"script","name"?}: {"ok":true} or {"ok":false,"error","line"}. */
void api__rules_compile(sprig_api_t *api, api_req_t *req, api_answer_t *ans);
/* Runs MHD soon (after a resume). */
void api__kick(sprig_api_t *api);

/* Connections (api_conn.c). init makes the hang-up watch and the sweep timer (0 or -ENOMEM);
 * fini closes them, after MHD_stop_daemon (handles freed in their close callbacks). */
int api__conn_init(sprig_api_t *api);
void api__conn_fini(sprig_api_t *api);
/* MHD's connection notice (MHD_OPTION_NOTIFY_CONNECTION, cls = the api). */
void api__conn_notify(void *cls, struct MHD_Connection *conn, void **ctx,
                      enum MHD_ConnectionNotificationCode toe);
/* From the request handlers: its head is in (first call); it is whole (about to be
 * answered); it is over (MHD's completion notice). */
void api__conn_request_begin(struct MHD_Connection *conn);
void api__conn_request_whole(struct MHD_Connection *conn);
void api__conn_request_end(sprig_api_t *api, struct MHD_Connection *conn);
/* After each MHD_run: shuts down connections whose peer has gone, and asks for another run
 * when MHD has a slot free again after being full. */
void api__conn_after_run(sprig_api_t *api);
/* MHD's log (MHD_OPTION_EXTERNAL_LOGGER): to sprig's log, at debug level. */
void api__conn_log(void *cls, const char *fmt, va_list ap);
/* The event stream of conn, if it has one, ends: its peer has gone. */
void api__events_gone(sprig_api_t *api, struct MHD_Connection *conn);

#endif
