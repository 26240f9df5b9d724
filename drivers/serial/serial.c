/* serial: a serial port (DESIGN.md section 8, schema/serial.lua), one instance per
 * `serial` node, in one of two modes:
 *   mcu   frames of serial_frame.h carrying points as a JSON array (the API's form); every
 *         frame but an ack is acknowledged with an empty frame of the same seq, a frame
 *         without ack is sent again up to 3 times (then the link is disconnected), a
 *         repeated seq is acknowledged again but not applied twice; on connect both sides
 *         send all their points and the merge rule settles them;
 *   line  each line goes to the node's `parser` (Lua, sandboxed and budgeted like rules),
 *         which returns points; a parser that fails is reported in `error`, the line is
 *         counted and dropped, and reading goes on.
 * A thread per port reads (blocking I/O stays off the loop) and hands bytes to the loop;
 * a port that goes away is reopened once a second. Points land on the serial node, with
 * its id as origin. */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "serial_frame.h"
#include "sprig/alloc.h"
#include "sprig/driver.h"
#include "sprig/json.h"
#include "sprig/log.h"
#include "sprig/luabox.h"

#define SER_LINE_MAX 1024
#define RESENDS 3

typedef struct ser {
    sprig_driver_ctx_t *ctx;
    const char *id;
    char port[256];
    int baud, data_bits, stop_bits;
    char parity;
    bool line_mode, disabled;
    unsigned timeout_ms;
    int fd; /* -1 when closed; written by the thread, read by the loop under mu */
    pthread_t thread;
    bool started, stop;
    pthread_mutex_t mu;
    uint8_t *in; /* bytes read, waiting for the loop (under mu) */
    size_t nin, capin;
    int state_change; /* 1 opened, -1 lost (under mu) */
    uv_async_t *wake;
    uv_timer_t *timer; /* resends and counters */
    int open_handles;
    /* loop side */
    uint8_t buf[SER_WIRE_MAX];
    size_t nbuf;
    bool skipping; /* an oversized frame: drop up to the next delimiter */
    uint8_t seq, last_in_seq;
    bool have_in_seq, connected;
    uint8_t pending[SER_WIRE_MAX];
    long npending;
    uint8_t pending_seq;
    int tries;
    uint64_t now_ms_sent;
    uint64_t rx, tx, crc, framing, parse, retries;
    bool dirty;
    sprig_luabox_t *box;  /* line mode: the parser */
    char parser_name[80]; /* its chunk name (the box keeps a pointer to it) */
    bool more;            /* points changed while a frame awaited its ack: send them after */
    int parser_ref;
} ser_t;

/* --- the port thread ---------------------------------------------------------------- */

static speed_t speed_of(int baud)
{
    static const struct {
        int baud;
        speed_t s;
    } t[] = {{1200, B1200},     {2400, B2400},     {4800, B4800},    {9600, B9600},
             {19200, B19200},   {38400, B38400},   {57600, B57600},  {115200, B115200},
             {230400, B230400}, {460800, B460800}, {921600, B921600}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (t[i].baud == baud) {
            return t[i].s;
        }
    }
    return B115200;
}

static int open_port(ser_t *s)
{
    int fd = open(s->port, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    struct termios tio;
    if (tcgetattr(fd, &tio) == 0) {
        cfmakeraw(&tio);
        cfsetspeed(&tio, speed_of(s->baud));
        tio.c_cflag &= (tcflag_t) ~(CSIZE | PARENB | PARODD | CSTOPB);
        tio.c_cflag |= (tcflag_t)(s->data_bits == 7   ? CS7
                                  : s->data_bits == 6 ? CS6
                                  : s->data_bits == 5 ? CS5
                                                      : CS8);
        tio.c_cflag |= (tcflag_t)(s->parity == 'E'   ? PARENB
                                  : s->parity == 'O' ? PARENB | PARODD
                                                     : 0);
        tio.c_cflag |= (tcflag_t)(s->stop_bits == 2 ? CSTOPB : 0) | CLOCAL | CREAD;
        tcsetattr(fd, TCSANOW, &tio);
    }
    return fd;
}

static void *port_main(void *arg)
{
    ser_t *s = arg;
    uint8_t chunk[512];
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        int fd = s->fd;
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            break;
        }
        if (fd < 0) {
            fd = open_port(s);
            pthread_mutex_lock(&s->mu);
            s->fd = fd;
            if (fd >= 0) {
                s->state_change = 1;
            }
            pthread_mutex_unlock(&s->mu);
            if (fd >= 0) {
                uv_async_send(s->wake);
            }
            else {
                usleep(200000); /* the port is not there (yet): try again soon */
            }
            continue;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, 100);
        if (n <= 0) {
            continue;
        }
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r > 0) {
            pthread_mutex_lock(&s->mu);
            if (s->nin + (size_t)r > s->capin) {
                size_t cap = s->capin != 0 ? s->capin * 2 : 4096;
                while (cap < s->nin + (size_t)r) {
                    cap *= 2;
                }
                uint8_t *v = sprig_realloc(s->in, cap);
                if (v != NULL) {
                    s->in = v;
                    s->capin = cap;
                }
            }
            if (s->nin + (size_t)r <= s->capin) {
                memcpy(s->in + s->nin, chunk, (size_t)r);
                s->nin += (size_t)r;
            }
            pthread_mutex_unlock(&s->mu);
            uv_async_send(s->wake);
        }
        else if (r == 0 || (errno != EAGAIN && errno != EINTR) ||
                 (pfd.revents & (POLLHUP | POLLERR))) {
            pthread_mutex_lock(&s->mu);
            close(fd);
            s->fd = -1;
            s->state_change = -1;
            pthread_mutex_unlock(&s->mu);
            uv_async_send(s->wake);
            usleep(200000);
        }
    }
    return NULL;
}

/* --- the loop side ------------------------------------------------------------------ */

static void write_points(ser_t *s, sprig_point_t *pts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pts[i].origin = s->id;
    }
    sprig_driver_write(s->ctx, pts, n);
}

static void set_connected(ser_t *s, bool on)
{
    s->connected = on;
    sprig_point_t p = {.type = "connected", .value = on};
    write_points(s, &p, 1);
}

static void send_wire(ser_t *s, const uint8_t *w, size_t n)
{
    /* Under the lock: the port thread closes the descriptor when the port goes away. */
    pthread_mutex_lock(&s->mu);
    bool sent = s->fd >= 0 && write(s->fd, w, n) == (ssize_t)n;
    pthread_mutex_unlock(&s->mu);
    if (sent) {
        s->tx++;
        s->dirty = true;
    }
}

static void send_ack(ser_t *s, uint8_t seq)
{
    uint8_t w[64];
    long n = ser_frame_build(seq, NULL, NULL, 0, w, sizeof(w));
    if (n > 0) {
        send_wire(s, w, (size_t)n);
    }
}

/* Sends points as one frame (waiting for its ack before the next is sent). */
static void send_points(ser_t *s, const sprig_point_t *first, bool all)
{
    if (s->line_mode) {
        return;
    }
    if (s->npending > 0) {
        s->more = true; /* sent (all points) once the frame in flight is acknowledged */
        return;
    }
    cJSON *a = cJSON_CreateArray();
    for (const sprig_point_t *p = first; a != NULL && p != NULL;
         p = all ? sprig_point_next(p) : NULL) {
        cJSON_AddItemToArray(a, sprig_json_from_point(p));
    }
    char *text = a != NULL ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    if (text == NULL) {
        return;
    }
    s->seq = (uint8_t)(s->seq + 1 != 0 ? s->seq + 1 : 1);
    long n = ser_frame_build(s->seq, "", (const uint8_t *)text, strlen(text), s->pending,
                             sizeof(s->pending));
    cJSON_free(text);
    if (n <= 0) {
        sprig_log_warn("serial %s: points too large for one frame (%d bytes at most)", s->id,
                       SER_PAYLOAD_MAX);
        return;
    }
    s->npending = n;
    s->pending_seq = s->seq;
    s->tries = 0;
    send_wire(s, s->pending, (size_t)n);
    uv_timer_again(s->timer);
}

static void apply_payload(ser_t *s, const ser_frame_t *f)
{
    cJSON *j = cJSON_ParseWithLength((const char *)f->payload, f->len);
    if (!cJSON_IsArray(j)) {
        s->framing++;
        s->dirty = true;
        cJSON_Delete(j);
        return;
    }
    int n = cJSON_GetArraySize(j), i = 0;
    sprig_point_t *pts = sprig_calloc((size_t)(n > 0 ? n : 1), sizeof(*pts));
    const cJSON *it;
    sprig_error_t err;
    cJSON_ArrayForEach(it, j)
    {
        if (pts != NULL && sprig_json_to_point(it, "point", &pts[i], &err) == 0) {
            i++;
        }
    }
    if (pts != NULL && i > 0) {
        write_points(s, pts, (size_t)i);
    }
    sprig_free(pts);
    cJSON_Delete(j);
}

static void on_frame(ser_t *s, const uint8_t *wire, size_t n)
{
    uint8_t raw[SER_RAW_MAX];
    ser_frame_t f;
    long len = ser_cobs_decode(wire, n, raw, sizeof(raw));
    int rc = len < 0 ? (int)len : ser_frame_parse(raw, (size_t)len, &f);
    s->dirty = true;
    if (rc == -EBADMSG) {
        s->crc++;
        return;
    }
    if (rc != 0) {
        s->framing++;
        return;
    }
    s->rx++;
    if (!s->connected) {
        set_connected(s, true);
    }
    if (f.subject[0] == '\0' && f.len == 0) {
        if (s->npending > 0 && f.seq == s->pending_seq) {
            s->npending = 0; /* acknowledged */
            if (s->more) {
                s->more = false;
                send_points(s, sprig_node_points(sprig_driver_node(s->ctx)), true);
            }
        }
        return;
    }
    send_ack(s, f.seq);
    if (s->have_in_seq && f.seq == s->last_in_seq) {
        return; /* sent again because our ack was lost: applied already */
    }
    s->have_in_seq = true;
    s->last_in_seq = f.seq;
    apply_payload(s, &f);
}

static void on_line(ser_t *s, char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ')) {
        line[--n] = '\0';
    }
    if (n == 0 || s->box == NULL) {
        return;
    }
    s->rx++;
    s->dirty = true;
    lua_State *L = sprig_luabox_state(s->box);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->parser_ref);
    lua_pushstring(L, line);
    sprig_error_t err;
    int rc = sprig_luabox_call(s->box, 1, 1, &err);
    sprig_point_t pts[32];
    size_t k = 0;
    if (rc == 0 && lua_istable(L, -1)) {
        /* {type = value, ...} or {{type=, value=, text=, key=}, ...} */
        lua_pushnil(L);
        while (k < 32 && lua_next(L, -2) != 0) {
            sprig_point_t p = {0};
            if (lua_type(L, -2) == LUA_TSTRING) {
                p.type = lua_tostring(L, -2);
                if (lua_type(L, -1) == LUA_TNUMBER || lua_type(L, -1) == LUA_TBOOLEAN) {
                    p.value =
                        lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : lua_toboolean(L, -1);
                }
                else if (lua_type(L, -1) == LUA_TSTRING) {
                    p.text = lua_tostring(L, -1);
                }
            }
            else if (lua_istable(L, -1)) {
                /* Raw reads: this runs after the parser's call, outside its budget, so no
                 * metamethod of the returned table may run. Only strings are taken as
                 * text, so each stays alive in the table after the pops. */
                static const char *const fields[] = {"type", "value", "text", "key"};
                for (int f = 0; f < 4; f++) {
                    lua_pushstring(L, fields[f]);
                    lua_rawget(L, -2 - f);
                }
                p.type = lua_type(L, -4) == LUA_TSTRING ? lua_tostring(L, -4) : NULL;
                p.value = lua_type(L, -3) == LUA_TNUMBER ? lua_tonumber(L, -3) : 0;
                p.text = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
                p.key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
                lua_pop(L, 4);
            }
            if (p.type != NULL) {
                pts[k++] = p;
            }
            lua_pop(L, 1);
        }
        if (k > 0) {
            write_points(s, pts, k);
        }
        lua_pop(L, 1);
        return;
    }
    if (rc == 0) {
        lua_pop(L, 1);
        snprintf(err.msg, sizeof(err.msg), "parser: it returned no table of points for \"%.60s\"",
                 line);
    }
    s->parse++;
    sprig_point_t e = {.type = "error", .text = err.msg};
    write_points(s, &e, 1);
}

static void on_wake(uv_async_t *a)
{
    ser_t *s = a->data;
    pthread_mutex_lock(&s->mu);
    uint8_t *in = s->in;
    size_t nin = s->nin;
    int change = s->state_change;
    s->in = NULL;
    s->nin = s->capin = 0;
    s->state_change = 0;
    pthread_mutex_unlock(&s->mu);
    if (change < 0 && s->connected) {
        set_connected(s, false);
        sprig_log_warn("serial %s: %s is gone; reopening it when it returns", s->id, s->port);
    }
    if (change > 0) {
        sprig_log_info("serial %s: %s open", s->id, s->port);
        s->have_in_seq = false; /* a peer that restarted may begin at any seq */
        s->npending = 0;
        s->more = false;
        if (s->line_mode) {
            set_connected(s, true);
        }
        else {
            /* Both sides send all their points; the merge rule settles them. */
            send_points(s, sprig_node_points(sprig_driver_node(s->ctx)), true);
        }
    }
    for (size_t i = 0; i < nin; i++) {
        uint8_t c = in[i];
        char delim = s->line_mode ? '\n' : '\0';
        if ((char)c == delim) {
            if (!s->skipping && s->nbuf > 0) {
                if (s->line_mode) {
                    s->buf[s->nbuf] = '\0';
                    on_line(s, (char *)s->buf);
                }
                else {
                    on_frame(s, s->buf, s->nbuf);
                }
            }
            s->nbuf = 0;
            s->skipping = false;
            continue;
        }
        if (s->nbuf + 1 >= (s->line_mode ? SER_LINE_MAX : sizeof(s->buf))) {
            if (!s->skipping) {
                s->framing++; /* oversized: dropped up to the next delimiter */
                s->dirty = true;
            }
            s->skipping = true;
            continue;
        }
        if (!s->skipping) {
            s->buf[s->nbuf++] = c;
        }
    }
    sprig_free(in);
}

static void on_timer(uv_timer_t *t)
{
    ser_t *s = t->data;
    if (s->npending > 0) {
        if (s->tries++ < RESENDS) {
            s->retries++;
            s->dirty = true;
            send_wire(s, s->pending, (size_t)s->npending);
        }
        else {
            s->npending = 0;
            if (s->connected) {
                set_connected(s, false);
                sprig_log_warn("serial %s: no ack after %d resends; the peer is not answering",
                               s->id, RESENDS);
            }
        }
    }
    if (s->dirty) {
        s->dirty = false;
        sprig_point_t pts[] = {
            {.type = "rx", .value = (double)s->rx},
            {.type = "tx", .value = (double)s->tx},
            {.type = "crcErrors", .value = (double)s->crc},
            {.type = "framingErrors", .value = (double)s->framing},
            {.type = "parseErrors", .value = (double)s->parse},
            {.type = "retries", .value = (double)s->retries},
        };
        write_points(s, pts, 6);
    }
}

/* --- the driver --------------------------------------------------------------------- */

static int ser_init(sprig_driver_ctx_t *ctx, void **state)
{
    ser_t *s = sprig_calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->ctx = ctx;
    s->id = sprig_node_id(sprig_driver_node(ctx));
    s->fd = -1;
    snprintf(s->port, sizeof(s->port), "%s", sprig_driver_text(ctx, "port", ""));
    s->baud = (int)sprig_driver_number(ctx, "baud", 115200);
    s->data_bits = (int)sprig_driver_number(ctx, "dataBits", 8);
    s->stop_bits = (int)sprig_driver_number(ctx, "stopBits", 1);
    const char *parity = sprig_driver_text(ctx, "parity", "none");
    s->parity = strcmp(parity, "even") == 0 ? 'E' : strcmp(parity, "odd") == 0 ? 'O' : 'N';
    s->line_mode = strcmp(sprig_driver_text(ctx, "mode", "mcu"), "line") == 0;
    s->disabled = sprig_driver_number(ctx, "disabled", 0) != 0;
    s->timeout_ms = (unsigned)sprig_driver_number(ctx, "timeout", 1000);
    s->parser_ref = LUA_NOREF;
    if (s->port[0] == '\0') {
        sprig_log_error("serial %s: point \"port\" must name the serial device", s->id);
        sprig_free(s);
        return -EINVAL;
    }
    if (s->line_mode) {
        const char *src = sprig_driver_text(ctx, "parser", "");
        sprig_luabox_opts_t o = {.insn_max = 1000000, .time_max_ms = 50, .mem_max = 8u << 20};
        sprig_error_t err = {0};
        char *name = s->parser_name;
        snprintf(s->parser_name, sizeof(s->parser_name), "%.64s parser", s->id);
        int rc = sprig_luabox_open(&o, &s->box);
        if (rc == 0) {
            rc = sprig_luabox_load(s->box, name, src, strlen(src), &err);
        }
        if (rc == 0) {
            rc = sprig_luabox_call(s->box, 0, 1, &err);
        }
        lua_State *L = s->box != NULL ? sprig_luabox_state(s->box) : NULL;
        if (rc == 0 && !lua_isfunction(L, -1)) {
            lua_pop(L, 1);
            rc = -EINVAL;
            snprintf(err.msg, sizeof(err.msg),
                     "parser: the source must return a function of a line (return function(line) "
                     "... end)");
        }
        if (rc != 0) {
            sprig_point_t e = {.type = "error", .text = err.msg, .origin = s->id};
            sprig_driver_write(ctx, &e, 1);
            sprig_luabox_close(s->box);
            sprig_free(s);
            return -EINVAL;
        }
        s->parser_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        sprig_point_t e = {.type = "error", .text = "", .origin = s->id};
        sprig_driver_write(ctx, &e, 1);
    }
    *state = s;
    return 0;
}

static int ser_start(void *state)
{
    ser_t *s = state;
    uv_loop_t *loop = sprig_driver_loop(s->ctx);
    s->wake = sprig_malloc(sizeof(*s->wake));
    s->timer = sprig_malloc(sizeof(*s->timer));
    if (s->wake == NULL || s->timer == NULL) {
        sprig_free(s->wake);
        sprig_free(s->timer);
        s->wake = NULL;
        s->timer = NULL;
        return -ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    uv_async_init(loop, s->wake, on_wake);
    uv_timer_init(loop, s->timer);
    s->wake->data = s->timer->data = s;
    s->open_handles = 2;
    uv_timer_start(s->timer, on_timer, s->timeout_ms, s->timeout_ms);
    if (s->disabled) {
        return 0;
    }
    if (pthread_create(&s->thread, NULL, port_main, s) != 0) {
        return -EAGAIN;
    }
    s->started = true;
    return 0;
}

static int ser_write(void *state, const sprig_event_t *ev)
{
    ser_t *s = state;
    static const char *const config[] = {"port", "baud",   "parity",  "dataBits", "stopBits",
                                         "mode", "parser", "timeout", "disabled", NULL};
    for (int i = 0; config[i] != NULL; i++) {
        if (strcmp(ev->point->type, config[i]) == 0) {
            return SPRIG_DRIVER_RESTART;
        }
    }
    /* A point set here (a person, a rule, sync) goes to the MCU. */
    if (s->connected) {
        send_points(s, ev->point, false);
    }
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    ser_t *s = h->data;
    sprig_free(h);
    if (--s->open_handles == 0) {
        pthread_mutex_destroy(&s->mu);
        sprig_free(s->in);
        sprig_free(s);
    }
}

static void ser_stop(void *state)
{
    ser_t *s = state;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    if (s->box != NULL) {
        sprig_luabox_close(s->box);
        s->box = NULL;
    }
    if (s->wake == NULL) {
        sprig_free(s);
        return;
    }
    on_timer(s->timer); /* the last counters */
    uv_close((uv_handle_t *)s->wake, handle_closed);
    uv_close((uv_handle_t *)s->timer, handle_closed);
}

static const char *const ser_types[] = {"serial", NULL};

const struct sprig_driver sprig_driver_serial = {
    .name = "serial",
    .node_types = ser_types,
    .init = ser_init,
    .start = ser_start,
    .write = ser_write,
    .stop = ser_stop,
};
