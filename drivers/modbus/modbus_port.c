/* The Modbus port thread: one per bus, owning the libmodbus context, so every request on
 * a port is serialized (never one queue per unit id). As a client it reads what is due in
 * the fewest requests the planner allows, writes what the loop asks, backs off a unit that
 * stops answering and reopens a port that went away. As a server it answers a master from
 * a register map of the bus's IOs and reports what the master wrote. It touches no core
 * state: results go to the loop through the port's queue. */
#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "modbus_internal.h"
#include "sprig/alloc.h"
#include "sprig/log.h"

#define UNITS 256

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- the queues --------------------------------------------------------------------- */

static void post_locked(mb_port_t *p, const mb_result_t *r)
{
    if (p->nresults == p->capresults) {
        size_t cap = p->capresults != 0 ? p->capresults * 2 : 64;
        mb_result_t *v = sprig_realloc(p->results, cap * sizeof(*v));
        if (v == NULL) {
            return; /* dropped: the next poll posts it again */
        }
        p->results = v;
        p->capresults = cap;
    }
    p->results[p->nresults++] = *r;
}

static void post(mb_port_t *p, const mb_result_t *r, size_t n)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        post_locked(p, &r[i]);
    }
    pthread_mutex_unlock(&p->mu);
    uv_async_send(p->wake);
}

static void count(mb_port_t *p, mb_fault_t f)
{
    pthread_mutex_lock(&p->mu);
    p->faults[f]++;
    pthread_mutex_unlock(&p->mu);
    uv_async_send(p->wake);
}

int mb_port_write(mb_port_t *p, int io, double value)
{
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    if (p->nwrites == p->capwrites) {
        size_t cap = p->capwrites != 0 ? p->capwrites * 2 : 16;
        mb_write_t *v = sprig_realloc(p->writes, cap * sizeof(*v));
        if (v == NULL) {
            rc = -ENOMEM;
        }
        else {
            p->writes = v;
            p->capwrites = cap;
        }
    }
    if (rc == 0) {
        p->writes[p->nwrites++] = (mb_write_t){io, value};
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

size_t mb_port_take(mb_port_t *p, mb_result_t **out, uint64_t faults[MB_F_COUNT])
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->nresults;
    *out = p->results;
    p->results = NULL;
    p->nresults = p->capresults = 0;
    for (int i = 0; i < MB_F_COUNT; i++) {
        faults[i] = p->faults[i];
        p->faults[i] = 0;
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Takes the queued writes (caller frees); *stop says whether the thread must end. */
static size_t take_writes(mb_port_t *p, mb_write_t **out, bool *stop)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->nwrites;
    *out = p->writes;
    p->writes = NULL;
    p->nwrites = p->capwrites = 0;
    *stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Sleeps until `until` (monotonic ns), a queued write or a stop. */
static void sleep_until(mb_port_t *p, int64_t until)
{
    int64_t now = mono_ns();
    if (until <= now) {
        return;
    }
    /* At most a second at a time (nothing due at all is INT64_MAX); the caller loops. */
    int64_t wait = until - now < 1000000000 ? until - now : 1000000000;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + wait;
    ts.tv_sec = (time_t)(at / 1000000000);
    ts.tv_nsec = (long)(at % 1000000000);
    pthread_mutex_lock(&p->mu);
    if (!p->stop && p->nwrites == 0) {
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
}

/* --- libmodbus ---------------------------------------------------------------------- */

static mb_fault_t classify(int err)
{
    if (err == ETIMEDOUT) {
        return MB_F_TIMEOUT;
    }
    if (err == EMBBADCRC) {
        return MB_F_CRC;
    }
    if (err >= EMBXILFUN && err <= EMBXGTAR) {
        return MB_F_EXCEPTION;
    }
    if (err == EMBBADDATA || err == EMBMDATA || err == EMBBADEXC || err == EMBUNKEXC ||
        err == EMBBADSLAVE) {
        return MB_F_MALFORMED;
    }
    return MB_F_OTHER;
}

/* Errors after which the connection or port is reopened. */
static bool lost(int err)
{
    return err == ECONNRESET || err == EPIPE || err == EBADF || err == ECONNREFUSED ||
           err == ENOTCONN || err == EIO || err == ENXIO || err == ENODEV || err == ENOENT;
}

static modbus_t *open_ctx(const mb_conf_t *c)
{
    char service[16];
    snprintf(service, sizeof(service), "%d", c->tcp_port);
    /* The _pi variants resolve host names (and listen on every address for a bare :port). */
    modbus_t *ctx = c->tcp
                        ? modbus_new_tcp_pi(c->host[0] != '\0' ? c->host : NULL, service)
                        : modbus_new_rtu(c->port, c->baud, c->parity, c->data_bits, c->stop_bits);
    if (ctx == NULL) {
        return NULL;
    }
    uint32_t sec = (uint32_t)(c->timeout_ns / 1000000000);
    uint32_t usec = (uint32_t)(c->timeout_ns % 1000000000 / 1000);
    modbus_set_response_timeout(ctx, sec, usec);
    modbus_set_byte_timeout(ctx, 0, 0); /* the whole answer within the response timeout */
    modbus_set_debug(ctx, c->debug >= 9);
    if (c->server) {
        modbus_set_slave(ctx, c->tcp ? MODBUS_TCP_SLAVE : c->unit);
    }
    return ctx;
}

static int read_req(modbus_t *ctx, const mb_req_t *r, uint16_t *regs, uint8_t *bits)
{
    modbus_set_slave(ctx, r->unit);
    switch (r->table) {
    case MB_COIL:
        return modbus_read_bits(ctx, r->address, r->count, bits);
    case MB_DISCRETE_INPUT:
        return modbus_read_input_bits(ctx, r->address, r->count, bits);
    case MB_HOLDING_REGISTER:
        return modbus_read_registers(ctx, r->address, r->count, regs);
    default:
        return modbus_read_input_registers(ctx, r->address, r->count, regs);
    }
}

/* --- the client --------------------------------------------------------------------- */

typedef struct client {
    mb_port_t *p;
    modbus_t *ctx;
    bool connected;
    int64_t reconnect_at, reconnect_wait;
    int fails[UNITS];
    int64_t until[UNITS];
    mb_quality_t *last; /* per IO: the quality last posted */
    double *last_value; /* per IO: the value last posted */
    int64_t *last_post;
    uint64_t values;
    mb_req_t *plan; /* the last plan, for the IOs in plan_idx */
    int plan_len;
    size_t plan_n;
    int *plan_idx, *plan_owner;
} client_t;

/* Posts an IO's outcome when it differs from the last one posted (or is due again). */
static void outcome(client_t *cl, int io, mb_quality_t q, double value, mb_fault_t fault,
                    int64_t now)
{
    if (q == MB_Q_GOOD) {
        cl->values++;
    }
    /* Good values go to the loop when they change (or are due again); failures always,
     * for the IO's error counter. */
    if (q == MB_Q_GOOD && q == cl->last[io] && value == cl->last_value[io] &&
        now - cl->last_post[io] < MB_REPUBLISH_NS) {
        return;
    }
    cl->last[io] = q;
    cl->last_value[io] = value;
    cl->last_post[io] = now;
    mb_result_t r = {.io = io, .quality = q, .value = value, .fault = fault};
    post(cl->p, &r, 1);
}

static void disconnect(client_t *cl)
{
    if (cl->ctx != NULL) {
        modbus_close(cl->ctx);
        modbus_free(cl->ctx);
        cl->ctx = NULL;
    }
    cl->connected = false;
}

/* Opens the port or connection when it is time; returns whether it is open. */
static bool connect_port(client_t *cl)
{
    const mb_conf_t *c = &cl->p->conf;
    if (cl->connected) {
        return true;
    }
    int64_t now = mono_ns();
    if (now < cl->reconnect_at) {
        return false;
    }
    cl->ctx = cl->ctx != NULL ? cl->ctx : open_ctx(c);
    if (cl->ctx != NULL && modbus_connect(cl->ctx) == 0) {
        cl->connected = true;
        cl->reconnect_wait = 100000000;
        sprig_log_info("modbus %s: %s open", c->id, c->tcp ? c->host : c->port);
        return true;
    }
    int err = errno;
    if (cl->reconnect_wait == 100000000) {
        char where[300];
        if (c->tcp) {
            snprintf(where, sizeof(where), "%s:%d", c->host, c->tcp_port);
        }
        else {
            snprintf(where, sizeof(where), "%s", c->port);
        }
        sprig_log_warn("modbus %s: %s cannot be opened: %s; retrying", c->id, where,
                       modbus_strerror(err));
    }
    disconnect(cl);
    count(cl->p, MB_F_OTHER);
    for (size_t i = 0; i < c->nios; i++) {
        outcome(cl, (int)i, MB_Q_STALE, 0, MB_F_OTHER, now);
    }
    cl->reconnect_at = now + cl->reconnect_wait;
    cl->reconnect_wait =
        cl->reconnect_wait * 2 < MB_BACKOFF_MAX_NS ? cl->reconnect_wait * 2 : MB_BACKOFF_MAX_NS;
    return false;
}

/* A failed request: counts it, and reopens the port when it is gone. */
static mb_fault_t failed(client_t *cl, int err)
{
    mb_fault_t f = classify(err);
    count(cl->p, f);
    if (!cl->p->conf.tcp && f != MB_F_OTHER) {
        modbus_flush(cl->ctx); /* drop the rest of a bad answer on a serial line */
    }
    if (f == MB_F_OTHER && lost(err)) {
        sprig_log_warn("modbus %s: connection lost: %s", cl->p->conf.id, modbus_strerror(err));
        disconnect(cl);
    }
    return f;
}

static void do_write(client_t *cl, const mb_write_t *w)
{
    const mb_conf_t *c = &cl->p->conf;
    mb_io_t *io = &c->ios[w->io];
    uint16_t regs[4] = {0};
    int width = mb_io_width(&io->fmt), rc;
    modbus_set_slave(cl->ctx, io->unit);
    if (io->fmt.table != MB_COIL && io->fmt.table != MB_HOLDING_REGISTER) {
        return;
    }
    if (io->fmt.bit >= 0 && io->fmt.table == MB_HOLDING_REGISTER &&
        modbus_read_registers(cl->ctx, io->address, 1, regs) != 1) {
        mb_fault_t f = failed(cl, errno);
        outcome(cl, w->io, f == MB_F_TIMEOUT || f == MB_F_OTHER ? MB_Q_STALE : MB_Q_ERROR, 0, f,
                mono_ns());
        return;
    }
    if (mb_encode(&io->fmt, w->value, regs) != 0) {
        sprig_log_warn("modbus %s: IO %s: valueSet %.17g does not fit its format; not written",
                       c->id, io->id, w->value);
        return;
    }
    if (io->fmt.table == MB_COIL) {
        rc = modbus_write_bit(cl->ctx, io->address, regs[0] != 0) == 1 ? 0 : -1;
    }
    else if (width == 1) {
        rc = modbus_write_register(cl->ctx, io->address, regs[0]) == 1 ? 0 : -1;
    }
    else {
        rc = modbus_write_registers(cl->ctx, io->address, width, regs) == width ? 0 : -1;
    }
    if (rc != 0) {
        mb_fault_t f = failed(cl, errno);
        outcome(cl, w->io, f == MB_F_TIMEOUT || f == MB_F_OTHER ? MB_Q_STALE : MB_Q_ERROR, 0, f,
                mono_ns());
        return;
    }
    io->due = 0; /* read it back at once */
}

/* Reads what is due now; returns the earliest next due time. */
static int64_t poll_due(client_t *cl, mb_span_t *spans, int *idx, int *owner, uint16_t *regs,
                        uint8_t *bits)
{
    mb_conf_t *c = &cl->p->conf;
    int64_t now = mono_ns();
    size_t n = 0;
    for (size_t i = 0; i < c->nios; i++) {
        mb_io_t *io = &c->ios[i];
        if (io->due <= now && cl->until[io->unit] <= now) {
            spans[n] = (mb_span_t){io->unit, io->fmt.table, io->address, mb_io_width(&io->fmt)};
            idx[n++] = (int)i;
        }
    }
    /* The same IOs due as last time (the usual case: they share a period) reuse the plan. */
    if (n != cl->plan_n || memcmp(idx, cl->plan_idx, n * sizeof(*idx)) != 0) {
        sprig_free(cl->plan);
        cl->plan = NULL;
        cl->plan_len = n > 0 ? mb_plan(spans, n, c->max_regs, c->max_gap, &cl->plan, owner) : 0;
        if (cl->plan_len < 0) {
            cl->plan_len = 0;
        }
        memcpy(cl->plan_idx, idx, n * sizeof(*idx));
        memcpy(cl->plan_owner, owner, n * sizeof(*owner));
        cl->plan_n = n;
    }
    mb_req_t *reqs = cl->plan;
    int nreq = cl->plan_len;
    owner = cl->plan_owner;
    for (int r = 0; r < nreq && cl->connected; r++) {
        const mb_req_t *q = &reqs[r];
        int rc = -1, err = 0;
        for (int attempt = 0; attempt <= c->retries && cl->connected; attempt++) {
            rc = read_req(cl->ctx, q, regs, bits);
            if (rc == q->count) {
                break;
            }
            err = rc < 0 ? errno : EMBBADDATA;
            rc = -1;
            /* An exception is the device's answer: asking again changes nothing. */
            if (failed(cl, err) == MB_F_EXCEPTION || !cl->connected) {
                break;
            }
        }
        int64_t t = mono_ns();
        mb_fault_t f = rc < 0 ? classify(err) : MB_F_COUNT;
        if (rc >= 0) {
            cl->fails[q->unit] = 0;
            cl->until[q->unit] = 0;
        }
        else if (f == MB_F_TIMEOUT) {
            /* A silent unit: back off, so the others on the line keep their rate. */
            int k = cl->fails[q->unit] < 16 ? cl->fails[q->unit]++ : 16;
            int64_t wait = (c->period_ns > 0 ? c->period_ns : 100000000) << k;
            cl->until[q->unit] =
                t + (wait < MB_BACKOFF_MAX_NS && wait > 0 ? wait : MB_BACKOFF_MAX_NS);
        }
        for (size_t k = 0; k < n; k++) {
            if (owner[k] != r) {
                continue;
            }
            mb_io_t *io = &c->ios[idx[k]];
            io->due = t + io->period_ns;
            if (rc < 0) {
                outcome(cl, idx[k], f == MB_F_TIMEOUT || f == MB_F_OTHER ? MB_Q_STALE : MB_Q_ERROR,
                        0, f, t);
                continue;
            }
            int off = io->address - q->address;
            uint16_t v[4];
            int w = mb_io_width(&io->fmt);
            for (int j = 0; j < w; j++) {
                v[j] = q->table == MB_COIL || q->table == MB_DISCRETE_INPUT ? bits[off + j]
                                                                            : regs[off + j];
            }
            outcome(cl, idx[k], MB_Q_GOOD, mb_decode(&io->fmt, v), MB_F_COUNT, t);
        }
    }
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < c->nios; i++) {
        mb_io_t *io = &c->ios[i];
        int64_t due = io->due > cl->until[io->unit] ? io->due : cl->until[io->unit];
        next = due < next ? due : next;
    }
    return next;
}

static void run_client(mb_port_t *p)
{
    mb_conf_t *c = &p->conf;
    client_t cl = {.p = p, .reconnect_wait = 100000000};
    size_t n = c->nios > 0 ? c->nios : 1;
    cl.last = sprig_calloc(n, sizeof(*cl.last));
    cl.last_value = sprig_calloc(n, sizeof(*cl.last_value));
    cl.last_post = sprig_calloc(n, sizeof(*cl.last_post));
    mb_span_t *spans = sprig_calloc(n, sizeof(*spans));
    int *idx = sprig_calloc(n, sizeof(*idx)), *owner = sprig_calloc(n, sizeof(*owner));
    uint16_t *regs = sprig_calloc(MODBUS_MAX_READ_REGISTERS + 4, sizeof(*regs));
    uint8_t *bits = sprig_calloc(MODBUS_MAX_READ_BITS + 64, 1);
    cl.plan_idx = sprig_calloc(n, sizeof(*cl.plan_idx));
    cl.plan_owner = sprig_calloc(n, sizeof(*cl.plan_owner));
    if (cl.last == NULL || cl.last_value == NULL || cl.last_post == NULL || spans == NULL ||
        idx == NULL || owner == NULL || regs == NULL || bits == NULL || cl.plan_idx == NULL ||
        cl.plan_owner == NULL) {
        sprig_log_error("modbus %s: out of memory; the bus is not polled", c->id);
        goto out;
    }
    for (size_t i = 0; i < c->nios; i++) {
        c->ios[i].due = 0;
    }
    for (;;) {
        bool stop;
        mb_write_t *w = NULL;
        size_t nw = take_writes(p, &w, &stop);
        if (stop) {
            sprig_free(w);
            break;
        }
        if (!connect_port(&cl)) {
            sprig_free(w); /* written again by the loop once the port is back */
            sleep_until(p, cl.reconnect_at);
            continue;
        }
        for (size_t i = 0; i < nw && cl.connected; i++) {
            do_write(&cl, &w[i]);
        }
        sprig_free(w);
        int64_t next = poll_due(&cl, spans, idx, owner, regs, bits);
        if (cl.connected) {
            sleep_until(p, next);
        }
    }
out:
    disconnect(&cl);
    sprig_free(cl.plan);
    sprig_free(cl.plan_idx);
    sprig_free(cl.plan_owner);
    sprig_free(cl.last);
    sprig_free(cl.last_value);
    sprig_free(cl.last_post);
    sprig_free(spans);
    sprig_free(idx);
    sprig_free(owner);
    sprig_free(regs);
    sprig_free(bits);
}

/* --- the server --------------------------------------------------------------------- */

typedef struct server {
    mb_port_t *p;
    modbus_t *ctx;
    modbus_mapping_t *map;
    double *last;
} server_t;

static uint16_t *cell16(server_t *s, const mb_io_t *io)
{
    return io->fmt.table == MB_HOLDING_REGISTER ? &s->map->tab_registers[io->address]
                                                : &s->map->tab_input_registers[io->address];
}

/* Reads an IO's value out of the map. */
static double map_get(server_t *s, const mb_io_t *io)
{
    uint16_t v[4] = {0};
    int w = mb_io_width(&io->fmt);
    if (io->fmt.table == MB_COIL || io->fmt.table == MB_DISCRETE_INPUT) {
        uint8_t *b = io->fmt.table == MB_COIL ? s->map->tab_bits : s->map->tab_input_bits;
        v[0] = b[io->address] != 0;
    }
    else {
        memcpy(v, cell16(s, io), (size_t)w * sizeof(uint16_t));
    }
    return mb_decode(&io->fmt, v);
}

/* Puts a value into the map; 0 or the encoder's error. */
static int map_put(server_t *s, const mb_io_t *io, double value)
{
    uint16_t v[4] = {0};
    int w = mb_io_width(&io->fmt);
    if (io->fmt.table == MB_COIL || io->fmt.table == MB_DISCRETE_INPUT) {
        int rc = mb_encode(&io->fmt, value, v);
        if (rc == 0) {
            (io->fmt.table == MB_COIL ? s->map->tab_bits : s->map->tab_input_bits)[io->address] =
                v[0] != 0;
        }
        return rc;
    }
    uint16_t *cell = cell16(s, io);
    v[0] = cell[0];
    int rc = mb_encode(&io->fmt, value, v);
    if (rc == 0) {
        memcpy(cell, v, (size_t)w * sizeof(uint16_t));
    }
    return rc;
}

/* After a master's request: reports the IOs whose value it changed. */
static void report_changes(server_t *s)
{
    const mb_conf_t *c = &s->p->conf;
    for (size_t i = 0; i < c->nios; i++) {
        double v = map_get(s, &c->ios[i]);
        if (v != s->last[i]) {
            s->last[i] = v;
            mb_result_t r = {.io = (int)i, .quality = MB_Q_GOOD, .value = v};
            post(s->p, &r, 1);
        }
    }
}

static void serve_one(server_t *s, int fd)
{
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    if (fd >= 0) {
        modbus_set_socket(s->ctx, fd);
    }
    int rc = modbus_receive(s->ctx, query);
    if (rc > 0) {
        int fc = query[modbus_get_header_length(s->ctx)];
        if (modbus_reply(s->ctx, query, rc, s->map) < 0) {
            count(s->p, classify(errno));
        }
        if (fc == 5 || fc == 6 || fc == 15 || fc == 16 || fc == 22 || fc == 23) {
            report_changes(s);
        }
    }
    else if (rc < 0 && fd < 0) {
        count(s->p, classify(errno));
        modbus_flush(s->ctx);
    }
}

static void run_server(mb_port_t *p)
{
    mb_conf_t *c = &p->conf;
    server_t s = {.p = p};
    int nb[4] = {1, 1, 1, 1};
    for (size_t i = 0; i < c->nios; i++) {
        const mb_io_t *io = &c->ios[i];
        int end = io->address + mb_io_width(&io->fmt);
        nb[io->fmt.table] = end > nb[io->fmt.table] ? end : nb[io->fmt.table];
    }
    s.map = modbus_mapping_new(nb[MB_COIL], nb[MB_DISCRETE_INPUT], nb[MB_HOLDING_REGISTER],
                               nb[MB_INPUT_REGISTER]);
    s.last = sprig_calloc(c->nios > 0 ? c->nios : 1, sizeof(*s.last));
    s.ctx = open_ctx(c);
    int listen_fd = -1, clients[16], nclients = 0;
    if (s.map == NULL || s.last == NULL || s.ctx == NULL) {
        sprig_log_error("modbus %s: out of memory; not serving", c->id);
        goto out;
    }
    for (size_t i = 0; i < c->nios; i++) {
        if (c->ios[i].has_value) {
            map_put(&s, &c->ios[i], c->ios[i].value);
        }
        s.last[i] = map_get(&s, &c->ios[i]);
    }
    for (int64_t wait = 100000000;;) {
        bool stop;
        mb_write_t *w = NULL;
        size_t nw = take_writes(p, &w, &stop);
        for (size_t i = 0; i < nw; i++) {
            if (map_put(&s, &c->ios[w[i].io], w[i].value) != 0) {
                sprig_log_warn("modbus %s: IO %s: %.17g does not fit its format", c->id,
                               c->ios[w[i].io].id, w[i].value);
            }
        }
        sprig_free(w);
        if (nw > 0) {
            report_changes(&s);
        }
        if (stop) {
            break;
        }
        if (c->tcp && listen_fd < 0) {
            listen_fd = modbus_tcp_pi_listen(s.ctx, 4);
            if (listen_fd < 0) {
                sprig_log_warn("modbus %s: cannot listen on %s:%d: %s; retrying", c->id,
                               c->host[0] != '\0' ? c->host : "*", c->tcp_port,
                               modbus_strerror(errno));
                sleep_until(p, mono_ns() + wait);
                wait = wait * 2 < MB_BACKOFF_MAX_NS ? wait * 2 : MB_BACKOFF_MAX_NS;
                continue;
            }
            sprig_log_info("modbus %s: serving on port %d", c->id, c->tcp_port);
        }
        if (!c->tcp && modbus_get_socket(s.ctx) < 0) {
            if (modbus_connect(s.ctx) != 0) {
                sleep_until(p, mono_ns() + wait);
                wait = wait * 2 < MB_BACKOFF_MAX_NS ? wait * 2 : MB_BACKOFF_MAX_NS;
                continue;
            }
            sprig_log_info("modbus %s: serving on %s", c->id, c->port);
        }
        wait = 100000000;
        fd_set rd;
        FD_ZERO(&rd);
        int maxfd = c->tcp ? listen_fd : modbus_get_socket(s.ctx);
        FD_SET(maxfd, &rd);
        for (int i = 0; i < nclients; i++) {
            FD_SET(clients[i], &rd);
            maxfd = clients[i] > maxfd ? clients[i] : maxfd;
        }
        struct timeval tv = {0, 50000}; /* then look at the queue and the stop flag again */
        int n = select(maxfd + 1, &rd, NULL, NULL, &tv);
        if (n <= 0) {
            continue;
        }
        if (!c->tcp) {
            serve_one(&s, -1);
            continue;
        }
        for (int i = 0; i < nclients; i++) {
            if (!FD_ISSET(clients[i], &rd)) {
                continue;
            }
            uint8_t probe;
            if (recv(clients[i], &probe, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
                close(clients[i]);
                clients[i--] = clients[--nclients];
                continue;
            }
            serve_one(&s, clients[i]);
        }
        if (FD_ISSET(listen_fd, &rd)) {
            int fd = accept(listen_fd, NULL, NULL);
            if (fd >= 0 && nclients < 16) {
                clients[nclients++] = fd;
            }
            else if (fd >= 0) {
                close(fd);
            }
        }
    }
out:
    for (int i = 0; i < nclients; i++) {
        close(clients[i]);
    }
    if (listen_fd >= 0) {
        close(listen_fd);
    }
    if (s.ctx != NULL) {
        modbus_close(s.ctx);
        modbus_free(s.ctx);
    }
    modbus_mapping_free(s.map);
    sprig_free(s.last);
}

static void *port_main(void *arg)
{
    mb_port_t *p = arg;
    if (p->conf.server) {
        run_server(p);
    }
    else {
        run_client(p);
    }
    return NULL;
}

void mb_port_init(mb_port_t *p)
{
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

int mb_port_start(mb_port_t *p)
{
    int rc = pthread_create(&p->thread, NULL, port_main, p);
    if (rc != 0) {
        return -rc;
    }
    p->started = true;
    return 0;
}

void mb_port_stop(mb_port_t *p)
{
    if (!p->started) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    p->started = false;
}

void mb_port_free(mb_port_t *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    sprig_free(p->writes);
    sprig_free(p->results);
    p->writes = NULL;
    p->results = NULL;
}
