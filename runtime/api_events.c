/* GET /v1/events: accepted changes as server-sent events, one `points` event per change:
 * `event: points` / `data: {"node":"id","points":[...]}` (plus "up" for an edge point).
 * ?node=ID keeps changes in that node's subtree, ?type=T those of one point type. Each
 * stream buffers what its client has not read yet; a client that falls more than
 * STREAM_MAX bytes behind is disconnected rather than let grow without bound. */
#include <errno.h>
#include <string.h>

#include "api_internal.h"
#include "sprig/alloc.h"
#include "sprig/json.h"
#include "sprig/log.h"
#include "sprig/util.h"

#define STREAM_MAX (1024 * 1024)

struct api_sse {
    api_sse_t *next;
    sprig_api_t *api;
    struct MHD_Connection *conn;
    char node[SPRIG_ID_MAX + 1]; /* "" = any */
    char type[SPRIG_ID_MAX + 1]; /* "" = any */
    char *buf;
    size_t len, cap;
    bool suspended, ended, overflow;
};

int api__events_open(sprig_api_t *api, api_req_t *req, api_answer_t *ans)
{
    const char *node = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "node");
    const char *type = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "type");
    if (node != NULL && !sprig_id_valid(node)) {
        api__error(ans, 400, "node \"%.64s\" is not 1-64 bytes of [A-Za-z0-9._:-]", node);
        return -EINVAL;
    }
    if (node != NULL && sprig_tree_node(sprig_core_tree(api->core), node) == NULL) {
        api__error(ans, 404, "node %s does not exist", node);
        return -ENOENT;
    }
    if (type != NULL && !sprig_id_valid(type)) {
        api__error(ans, 400, "point type \"%.64s\" is not 1-64 bytes of [A-Za-z0-9._:-]", type);
        return -EINVAL;
    }
    api_sse_t *s = sprig_calloc(1, sizeof(*s));
    if (s == NULL) {
        api__error(ans, 503, "out of memory");
        return -ENOMEM;
    }
    s->api = api;
    s->conn = req->conn;
    snprintf(s->node, sizeof(s->node), "%s", node != NULL ? node : "");
    snprintf(s->type, sizeof(s->type), "%s", type != NULL ? type : "");
    ans->stream = s;
    return 0;
}

static int append(api_sse_t *s, const char *text, size_t n)
{
    if (s->len + n > STREAM_MAX) {
        s->overflow = true;
        return -ENOBUFS;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap != 0 ? s->cap : 4096;
        while (cap < s->len + n) {
            cap *= 2;
        }
        char *b = sprig_realloc(s->buf, cap);
        if (b == NULL) {
            return -ENOMEM;
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
    return 0;
}

static void wake(api_sse_t *s)
{
    if (s->suspended) {
        s->suspended = false;
        MHD_resume_connection(s->conn);
        api__kick(s->api);
    }
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    api_sse_t *s = cls;
    if (s->len == 0) {
        if (s->ended || s->overflow) {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        s->suspended = true;
        MHD_suspend_connection(s->conn);
        return 0;
    }
    size_t n = s->len < max ? s->len : max;
    memcpy(out, s->buf, n);
    memmove(s->buf, s->buf + n, s->len - n);
    s->len -= n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    api_sse_t *s = cls;
    api_sse_t **pp = &s->api->streams;
    while (*pp != NULL && *pp != s) {
        pp = &(*pp)->next;
    }
    if (*pp == s) {
        *pp = s->next;
    }
    sprig_free(s->buf);
    sprig_free(s);
}

struct MHD_Response *api__events_response(sprig_api_t *api, api_sse_t *s)
{
    static const char hello[] = "retry: 1000\n\n";
    append(s, hello, sizeof(hello) - 1);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, s, stream_free);
    if (r == NULL) {
        sprig_free(s->buf);
        sprig_free(s);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    s->next = api->streams;
    api->streams = s;
    return r;
}

/* True when node is `top` or below it through live edges. */
static bool in_subtree(sprig_tree_t *t, const char *node, const char *top)
{
    sprig_node_t *n = sprig_tree_node(t, node);
    /* Walks up at most a bounded number of steps; trees are shallow. */
    for (int depth = 0; n != NULL && depth < 256; depth++) {
        if (strcmp(sprig_node_id(n), top) == 0) {
            return true;
        }
        sprig_edge_t *e = sprig_node_parents(n);
        while (e != NULL && sprig_edge_tombstone(e)) {
            e = sprig_edge_next_parent(e);
        }
        if (e == NULL) {
            return false;
        }
        if (sprig_edge_next_parent(e) != NULL) {
            /* Mirrored: any live parent may lead to top. */
            for (sprig_edge_t *m = e; m != NULL; m = sprig_edge_next_parent(m)) {
                if (!sprig_edge_tombstone(m) &&
                    in_subtree(t, sprig_node_id(sprig_edge_up(m)), top)) {
                    return true;
                }
            }
            return false;
        }
        n = sprig_edge_up(e);
    }
    return false;
}

void api__events_publish(const sprig_event_t *ev, void *arg)
{
    sprig_api_t *api = arg;
    char *text = NULL;
    for (api_sse_t *s = api->streams; s != NULL; s = s->next) {
        if (s->ended || s->overflow ||
            (s->type[0] != '\0' && strcmp(s->type, ev->point->type) != 0) ||
            (s->node[0] != '\0' && !in_subtree(sprig_core_tree(api->core), ev->node, s->node))) {
            continue;
        }
        if (text == NULL) {
            cJSON *o = cJSON_CreateObject(), *pts = cJSON_CreateArray();
            cJSON *p = sprig_json_from_point(ev->point);
            if (o == NULL || pts == NULL || p == NULL) {
                cJSON_Delete(o), cJSON_Delete(pts), cJSON_Delete(p);
                return;
            }
            cJSON_AddStringToObject(o, "node", ev->node);
            if (ev->edge_up != NULL) {
                cJSON_AddStringToObject(o, "up", ev->edge_up);
            }
            cJSON_AddItemToArray(pts, p);
            cJSON_AddItemToObject(o, "points", pts);
            char *json = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            if (json == NULL) {
                return;
            }
            size_t n = strlen(json) + 32;
            text = sprig_malloc(n);
            if (text != NULL) {
                snprintf(text, n, "event: points\ndata: %s\n\n", json);
            }
            cJSON_free(json);
            if (text == NULL) {
                return;
            }
        }
        if (append(s, text, strlen(text)) == -ENOBUFS) {
            sprig_log_warn("api: event stream of a client %zu bytes behind: closed", s->len);
        }
        wake(s);
    }
    sprig_free(text);
}

void api__events_gone(sprig_api_t *api, struct MHD_Connection *conn)
{
    for (api_sse_t *s = api->streams; s != NULL; s = s->next) {
        if (s->conn == conn && !s->ended) {
            s->ended = true;
            wake(s);
        }
    }
}

void api__events_close_all(sprig_api_t *api)
{
    for (api_sse_t *s = api->streams; s != NULL; s = s->next) {
        s->ended = true;
        wake(s);
    }
}
