/* The API's TCP connections: how many one address may hold, how long one may take to send
 * its request, noticing a peer that has gone, and MHD's messages about them. Limits and
 * timeouts are in api_internal.h (API_CONN_MAX, ...); MHD enforces the counts, this file
 * the rest.
 *
 * Why a peer's hang-up is watched here. libmicrohttpd 0.9.75 in MHD_USE_EPOLL mode
 * registers each connection edge-triggered and, after a read shorter than its buffer,
 * takes the socket to be drained until the next edge. When a request's bytes and the
 * peer's FIN are both queued before MHD first reads (a client that sends half a request
 * and closes, while its connection waits in the listen backlog or just before MHD gets to
 * it), MHD reads the bytes and no edge ever follows: it never sees the FIN, and the dead
 * connection holds a slot in CLOSE_WAIT until its idle timeout. At API_CONN_MAX MHD also
 * takes its listen socket out of its epoll set, so the backlog behind (more of the same,
 * ahead of any live client) waited a whole timeout per API_CONN_MAX connections.
 *
 * So every connection is also in an epoll of ours, for EPOLLRDHUP only and one-shot, on
 * the loop. Once its peer has hung up and no request of it is being answered, and MHD has
 * no unread byte of it left, the socket is shut down: MHD sees that at once as a hang-up
 * and closes the connection through its own path. A connection being answered (a write
 * waiting to be durable, an event stream) is left to finish; an event stream whose peer
 * has gone is ended. The same shutdown ends a connection that has not brought a whole
 * request head within API_REQUEST_TIMEOUT_S of opening or of its previous answer: MHD's
 * own timeout only counts silence, so a client trickling a header line every few seconds
 * would otherwise keep its slot for ever. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_internal.h"
#include "sprig/alloc.h"
#include "sprig/log.h"

#define HUP_BATCH 64

/* Where a connection is in its current request. */
typedef enum {
    CONN_IDLE,     /* waiting for a request head */
    CONN_READING,  /* head received, body coming */
    CONN_ANSWERING /* whole: being answered */
} conn_state_t;

/* One TCP connection, from MHD's STARTED notice to its CLOSED notice. */
struct api_conn {
    api_conn_t *prev, *next;
    struct MHD_Connection *conn;
    int fd;
    conn_state_t state;
    uint64_t idle_since; /* loop time (ms) it became CONN_IDLE */
    bool gone;           /* its peer hung up (FIN or reset) */
    bool told;           /* since gone, its event stream (if any) was told to end */
    bool shut;           /* shut down here: MHD closes it on its next run */
};

static api_conn_t *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

/* Ends the connection: MHD's next run sees the hang-up and closes it. */
static void shut(sprig_api_t *api, api_conn_t *c)
{
    if (c->shut) {
        return;
    }
    if (c->gone) {
        api->gone--;
    }
    c->shut = true;
    shutdown(c->fd, SHUT_RDWR);
    api__kick(api);
}

static void on_sweep(uv_timer_t *t)
{
    sprig_api_t *api = t->data;
    uint64_t now = uv_now(api->loop);
    for (api_conn_t *c = api->conns; c != NULL; c = c->next) {
        if (c->state == CONN_IDLE && !c->shut &&
            now - c->idle_since >= API_REQUEST_TIMEOUT_S * 1000u) {
            shut(api, c);
        }
    }
}

static void on_hup(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    sprig_api_t *api = p->data;
    struct epoll_event ev[HUP_BATCH];
    /* At most HUP_BATCH per turn of the loop; the poll fires again for the rest. */
    int n = epoll_wait(api->hup_fd, ev, HUP_BATCH, 0);
    for (int i = 0; i < n; i++) {
        api_conn_t *c = ev[i].data.ptr;
        if (!c->gone && !c->shut) {
            c->gone = true;
            api->gone++;
        }
    }
    if (n > 0) {
        api__kick(api);
    }
}

void api__conn_notify(void *cls, struct MHD_Connection *conn, void **ctx,
                      enum MHD_ConnectionNotificationCode toe)
{
    sprig_api_t *api = cls;
    api_conn_t *c = *ctx;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci == NULL) {
            return;
        }
        struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLONESHOT};
        if ((c = sprig_calloc(1, sizeof(*c))) == NULL ||
            (ev.data.ptr = c, epoll_ctl(api->hup_fd, EPOLL_CTL_ADD, ci->connect_fd, &ev)) != 0) {
            /* Untracked, it could outstay every limit: refuse it. */
            sprig_log_warn("api: cannot track a new connection (%s): refused",
                           c == NULL ? "out of memory" : strerror(errno));
            sprig_free(c);
            shutdown(ci->connect_fd, SHUT_RDWR);
            return;
        }
        c->conn = conn;
        c->fd = ci->connect_fd;
        c->idle_since = uv_now(api->loop);
        c->next = api->conns;
        if (api->conns != NULL) {
            api->conns->prev = c;
        }
        api->conns = c;
        if (api->nconns++ == 0) {
            uv_timer_start(api->sweep, on_sweep, 1000, 1000);
        }
        *ctx = c;
        return;
    }
    if (c == NULL) {
        return;
    }
    /* MHD closes the socket after this notice: take it out of our epoll first. */
    epoll_ctl(api->hup_fd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->gone && !c->shut) {
        api->gone--;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    }
    else {
        api->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    if (--api->nconns == 0) {
        uv_timer_stop(api->sweep);
    }
    sprig_free(c);
    *ctx = NULL;
}

void api__conn_request_begin(struct MHD_Connection *conn)
{
    api_conn_t *c = conn_of(conn);
    if (c != NULL) {
        c->state = CONN_READING;
    }
    /* Its body, if any, must keep coming: the short timeout until it is whole. */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)API_REQUEST_TIMEOUT_S);
}

void api__conn_request_whole(struct MHD_Connection *conn)
{
    api_conn_t *c = conn_of(conn);
    if (c != NULL) {
        c->state = CONN_ANSWERING;
    }
    /* Whole: the answer may take its time (a slow reader of a big export). A write waiting
     * to be durable and an idle event stream are suspended, and MHD times out no suspended
     * connection. */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)API_ANSWER_TIMEOUT_S);
}

void api__conn_request_end(sprig_api_t *api, struct MHD_Connection *conn)
{
    api_conn_t *c = conn_of(conn);
    if (c != NULL) {
        c->state = CONN_IDLE;
        c->idle_since = uv_now(api->loop);
    }
}

/* A connection whose peer has gone is shut down once nothing of it is left to do: no request
 * being answered (an event stream is ended), and no byte MHD has not read yet (MHD reads
 * those first; a whole request sent before a half-close is answered). */
static void reap(sprig_api_t *api)
{
    for (api_conn_t *c = api->conns; c != NULL && api->gone > 0; c = c->next) {
        if (!c->gone || c->shut) {
            continue;
        }
        if (c->state == CONN_ANSWERING) {
            if (!c->told) {
                c->told = true;
                api__events_gone(api, c->conn);
            }
            continue;
        }
        char b;
        ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            shut(api, c); /* at its end of file, or reset */
        }
    }
}

void api__conn_after_run(sprig_api_t *api)
{
    if (api->gone > 0) {
        reap(api);
    }
    /* At its limit MHD takes its listen socket out of its epoll set, and puts it back only at
     * the start of a run with a slot free: run again now rather than at the next timeout. */
    if (api->nconns >= API_CONN_MAX) {
        api->full = true;
    }
    else if (api->full) {
        api->full = false;
        api__kick(api);
    }
}

void api__conn_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    /* A peer decides how often these happen (one per refused or dropped connection): debug
     * only, so a burst cannot flood the log. */
    sprig_log_debug("api: %s", msg);
}

int api__conn_init(sprig_api_t *api)
{
    api->hup_fd = epoll_create1(EPOLL_CLOEXEC);
    api->hup_poll = sprig_malloc(sizeof(*api->hup_poll));
    api->sweep = sprig_malloc(sizeof(*api->sweep));
    if (api->hup_fd < 0 || api->hup_poll == NULL || api->sweep == NULL ||
        uv_poll_init(api->loop, api->hup_poll, api->hup_fd) != 0) {
        if (api->hup_fd >= 0) {
            close(api->hup_fd);
        }
        sprig_free(api->hup_poll);
        sprig_free(api->sweep);
        api->hup_poll = NULL;
        api->sweep = NULL;
        api->hup_fd = -1;
        return -ENOMEM;
    }
    uv_timer_init(api->loop, api->sweep);
    api->hup_poll->data = api->sweep->data = api;
    uv_poll_start(api->hup_poll, UV_READABLE, on_hup);
    return 0;
}

void api__conn_fini(sprig_api_t *api)
{
    if (api->hup_poll == NULL) {
        return;
    }
    uv_close((uv_handle_t *)api->hup_poll, sprig_free_handle);
    uv_close((uv_handle_t *)api->sweep, sprig_free_handle);
    close(api->hup_fd);
    api->hup_poll = NULL;
    api->sweep = NULL;
    api->hup_fd = -1;
}
