/* modbus: one instance per `modbus` bus node (DESIGN.md section 8, schema/modbus.lua).
 * The loop half: reads the bus's and its IOs' config from the tree, starts the port
 * thread (modbus_port.c), turns valueSet changes into writes, and writes what the thread
 * reports: each IO's value (on change, and at least every 10 minutes) and quality, and
 * the error counters of the IOs and the bus (at most once a second). Writes carry the
 * bus's id as origin (its IOs' driver-owned points are the bus driver's to write).
 * A change of the bus's or an IO's config, or an IO added or removed, restarts the bus. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modbus_internal.h"
#include "sprig/alloc.h"
#include "sprig/driver.h"
#include "sprig/err.h"
#include "sprig/log.h"

static const char *const quality_names[] = {"", "good", "stale", "error"};
static const char *const fault_points[MB_F_COUNT] = {
    "errorCountTimeout", "errorCountCRC", "errorCountException", "errorCountMalformed", NULL};

typedef struct mbd {
    sprig_driver_ctx_t *ctx;
    sprig_core_t *core;
    mb_port_t port;
    uv_async_t *wake;
    uv_timer_t *flush;
    sprig_bus_sub_t *sub;
    bool disabled;
    bool port_ready; /* mb_port_init done: mb_port_free is due */
    int open_handles;
    uint64_t total, by_fault[MB_F_COUNT];
    uint64_t *io_errors, *io_exceptions;
    bool bus_dirty, *io_dirty;
} mbd_t;

/* --- config --------------------------------------------------------------------------- */

static const sprig_point_t *pt(mbd_t *m, sprig_node_t *n, const char *type)
{
    const sprig_point_t *p = sprig_tree_point(sprig_core_tree(m->core), n, type, "0");
    return p != NULL && !p->tombstone ? p : NULL;
}

static double num(mbd_t *m, sprig_node_t *n, const char *type, double dflt)
{
    const sprig_point_t *p = pt(m, n, type);
    return p != NULL ? p->value : dflt;
}

static const char *text(mbd_t *m, sprig_node_t *n, const char *type, const char *dflt)
{
    const sprig_point_t *p = pt(m, n, type);
    return p != NULL && p->text[0] != '\0' ? p->text : dflt;
}

/* Splits "host:port" (host may be empty: every address, for a server). 0 or -EINVAL. */
static int parse_uri(const char *uri, char *host, size_t n, int *port)
{
    const char *colon = strrchr(uri, ':');
    char *end;
    if (colon == NULL || (size_t)(colon - uri) >= n) {
        return -EINVAL;
    }
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || p < 1 || p > 65535) {
        return -EINVAL;
    }
    memcpy(host, uri, (size_t)(colon - uri));
    host[colon - uri] = '\0';
    *port = (int)p;
    return 0;
}

static int read_bus(mbd_t *m, sprig_node_t *n, mb_conf_t *c)
{
    snprintf(c->id, sizeof(c->id), "%s", sprig_node_id(n));
    c->server = strcmp(text(m, n, "clientServer", "client"), "server") == 0;
    c->tcp = strcmp(text(m, n, "protocol", "RTU"), "TCP") == 0;
    c->baud = (int)num(m, n, "baud", 9600);
    c->data_bits = (int)num(m, n, "dataBits", 8);
    c->stop_bits = (int)num(m, n, "stopBits", 1);
    const char *parity = text(m, n, "parity", "none");
    c->parity = strcmp(parity, "even") == 0 ? 'E' : strcmp(parity, "odd") == 0 ? 'O' : 'N';
    c->unit = (int)num(m, n, "id", 1);
    c->period_ns = (int64_t)num(m, n, "pollPeriod", 1000) * 1000000;
    c->timeout_ns = (int64_t)num(m, n, "timeout", 1000) * 1000000;
    c->retries = (int)num(m, n, "retries", 1);
    c->max_regs = (int)num(m, n, "maxRegisters", 125);
    c->max_gap = (int)num(m, n, "maxGap", 0);
    c->debug = (int)num(m, n, "debug", 0);
    if (c->tcp) {
        const char *uri = text(m, n, "uri", "");
        if (parse_uri(uri, c->host, sizeof(c->host), &c->tcp_port) != 0 ||
            (!c->server && c->host[0] == '\0')) {
            sprig_log_error("modbus %s: uri \"%s\" must be host:port%s", c->id, uri,
                            c->server ? " or :port" : "");
            return -EINVAL;
        }
    }
    else {
        snprintf(c->port, sizeof(c->port), "%s", text(m, n, "port", ""));
        if (c->port[0] == '\0') {
            sprig_log_error("modbus %s: an RTU bus needs its serial device in point \"port\"",
                            c->id);
            return -EINVAL;
        }
    }
    if (c->max_regs < 1 || c->max_regs > 125 || c->max_gap < 0 || c->timeout_ns <= 0) {
        sprig_log_error("modbus %s: maxRegisters %d must be 1-125, maxGap %d at least 0", c->id,
                        c->max_regs, c->max_gap);
        return -EINVAL;
    }
    return 0;
}

/* Reads one IO's config; -EINVAL (logged, naming the IO and the value) skips it. */
static int read_io(mbd_t *m, sprig_node_t *n, const mb_conf_t *c, mb_io_t *io)
{
    const char *id = sprig_node_id(n);
    snprintf(io->id, sizeof(io->id), "%s", id);
    io->unit = (int)num(m, n, "id", -1);
    io->address = (int)num(m, n, "address", -1);
    const char *table = text(m, n, "modbusIoType", "");
    const char *format = text(m, n, "dataFormat", "uint16");
    const char *order = text(m, n, "byteOrder", "ABCD");
    if (io->unit < 0 || io->unit > 255 || io->address < 0 || io->address > 65535) {
        sprig_log_error("modbus %s: IO %s needs id (unit, 0-255) and address (0-65535); "
                        "it is not polled",
                        c->id, id);
        return -EINVAL;
    }
    if (mb_table_parse(table, &io->fmt.table) != 0 ||
        mb_format_parse(format, &io->fmt.format) != 0 ||
        mb_order_parse(order, &io->fmt.order) != 0) {
        sprig_log_error("modbus %s: IO %s: modbusIoType \"%s\", dataFormat \"%s\" or byteOrder "
                        "\"%s\" is not known; it is not polled",
                        c->id, id, table, format, order);
        return -EINVAL;
    }
    const sprig_point_t *bit = pt(m, n, "bit");
    io->fmt.bit = bit != NULL ? (int)bit->value : -1;
    if (bit != NULL && (bit->value < 0 || bit->value > 15 || io->fmt.table == MB_COIL ||
                        io->fmt.table == MB_DISCRETE_INPUT)) {
        sprig_log_error("modbus %s: IO %s: bit %g must be 0-15, on a holding or input register; "
                        "it is not polled",
                        c->id, id, bit->value);
        return -EINVAL;
    }
    io->fmt.scale = num(m, n, "scale", 1);
    io->fmt.offset = num(m, n, "offset", 0);
    if (io->fmt.scale == 0 || !isfinite(io->fmt.scale) || !isfinite(io->fmt.offset)) {
        sprig_log_error("modbus %s: IO %s: scale %g must be finite and not 0", c->id, id,
                        io->fmt.scale);
        return -EINVAL;
    }
    if (io->address + mb_io_width(&io->fmt) > 65536) {
        sprig_log_error("modbus %s: IO %s: a %s at address %d runs past 65535", c->id, id, format,
                        io->address);
        return -EINVAL;
    }
    io->read_only = num(m, n, "readOnly", 0) != 0 || io->fmt.table == MB_DISCRETE_INPUT ||
                    io->fmt.table == MB_INPUT_REGISTER;
    const sprig_point_t *period = pt(m, n, "pollPeriod");
    io->period_ns = period != NULL ? (int64_t)period->value * 1000000 : c->period_ns;
    const sprig_point_t *v = pt(m, n, "value");
    io->has_value = v != NULL;
    io->value = v != NULL ? v->value : 0;
    const sprig_point_t *q = pt(m, n, "quality");
    io->quality = MB_Q_NONE;
    for (int k = 1; q != NULL && k < 4; k++) {
        if (strcmp(q->text, quality_names[k]) == 0) {
            io->quality = (mb_quality_t)k;
        }
    }
    return 0;
}

static bool child_of(mbd_t *m, sprig_node_t *n)
{
    const sprig_node_t *bus = sprig_driver_node(m->ctx);
    for (sprig_edge_t *e = sprig_node_parents(n); e != NULL; e = sprig_edge_next_parent(e)) {
        if (!sprig_edge_tombstone(e) && sprig_edge_up(e) == bus) {
            return true;
        }
    }
    return false;
}

static int find_io(mbd_t *m, const char *id)
{
    for (size_t i = 0; i < m->port.conf.nios; i++) {
        if (strcmp(m->port.conf.ios[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void free_state(mbd_t *m)
{
    if (m->port_ready) {
        mb_port_free(&m->port);
    }
    sprig_free(m->port.conf.ios);
    sprig_free(m->io_errors);
    sprig_free(m->io_exceptions);
    sprig_free(m->io_dirty);
    sprig_free(m);
}

static int mb_init(sprig_driver_ctx_t *ctx, void **state)
{
    mbd_t *m = sprig_calloc(1, sizeof(*m));
    if (m == NULL) {
        return -ENOMEM;
    }
    m->ctx = ctx;
    m->core = sprig_driver_core(ctx);
    sprig_node_t *bus = (sprig_node_t *)sprig_driver_node(ctx);
    mb_conf_t *c = &m->port.conf;
    int rc = read_bus(m, bus, c);
    m->disabled = num(m, bus, "disabled", 0) != 0;
    size_t cap = 0;
    for (sprig_edge_t *e = sprig_node_children(bus); rc == 0 && e != NULL;
         e = sprig_edge_next_child(e)) {
        cap++;
    }
    c->ios = sprig_calloc(cap + 1, sizeof(*c->ios));
    m->io_errors = sprig_calloc(cap + 1, sizeof(*m->io_errors));
    m->io_exceptions = sprig_calloc(cap + 1, sizeof(*m->io_exceptions));
    m->io_dirty = sprig_calloc(cap + 1, sizeof(*m->io_dirty));
    if (rc == 0 && (c->ios == NULL || m->io_errors == NULL || m->io_exceptions == NULL ||
                    m->io_dirty == NULL)) {
        rc = -ENOMEM;
    }
    for (sprig_edge_t *e = sprig_node_children(bus); rc == 0 && e != NULL;
         e = sprig_edge_next_child(e)) {
        sprig_node_t *n = sprig_edge_down(e);
        if (sprig_edge_tombstone(e) || strcmp(sprig_node_type(n), "modbusIo") != 0 ||
            num(m, n, "disabled", 0) != 0) {
            continue;
        }
        if (read_io(m, n, c, &c->ios[c->nios]) == 0) {
            m->io_errors[c->nios] = (uint64_t)num(m, n, "errorCount", 0);
            m->io_exceptions[c->nios] = (uint64_t)num(m, n, "errorCountException", 0);
            c->nios++;
        }
    }
    if (rc != 0) {
        free_state(m);
        return rc;
    }
    m->total = (uint64_t)num(m, bus, "errorCount", 0);
    for (int f = 0; f < MB_F_COUNT; f++) {
        m->by_fault[f] = fault_points[f] != NULL ? (uint64_t)num(m, bus, fault_points[f], 0) : 0;
    }
    *state = m;
    return 0;
}

/* --- what the port thread reports ----------------------------------------------------- */

static void write_node(mbd_t *m, const char *node, sprig_point_t *pts, size_t n)
{
    sprig_error_t err;
    for (size_t i = 0; i < n; i++) {
        pts[i].origin = m->port.conf.id;
    }
    if (sprig_core_write(m->core, node, pts, n, NULL, &err) != 0) {
        sprig_log_warn("modbus %s: %s", m->port.conf.id, err.msg);
    }
}

static void on_wake(uv_async_t *a)
{
    mbd_t *m = a->data;
    mb_result_t *r = NULL;
    uint64_t faults[MB_F_COUNT];
    size_t n = mb_port_take(&m->port, &r, faults);
    for (int f = 0; f < MB_F_COUNT; f++) {
        if (faults[f] != 0) {
            m->total += faults[f];
            m->by_fault[f] += faults[f];
            m->bus_dirty = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        mb_io_t *io = &m->port.conf.ios[r[i].io];
        sprig_point_t pts[2];
        size_t k = 0;
        if (r[i].quality == MB_Q_GOOD) {
            pts[k++] = (sprig_point_t){.type = "value", .value = r[i].value};
            io->value = r[i].value;
            io->has_value = true;
        }
        else {
            m->io_errors[r[i].io]++;
            m->io_exceptions[r[i].io] += r[i].fault == MB_F_EXCEPTION;
            m->io_dirty[r[i].io] = true;
        }
        if (r[i].quality != io->quality) {
            pts[k++] = (sprig_point_t){.type = "quality", .text = quality_names[r[i].quality]};
            io->quality = r[i].quality;
        }
        if (k > 0) {
            write_node(m, io->id, pts, k);
        }
    }
    sprig_free(r);
}

/* Writes the counters that changed, once a second. */
static void on_flush(uv_timer_t *t)
{
    mbd_t *m = t->data;
    if (m->bus_dirty) {
        sprig_point_t pts[MB_F_COUNT + 1];
        size_t k = 0;
        pts[k++] = (sprig_point_t){.type = "errorCount", .value = (double)m->total};
        for (int f = 0; f < MB_F_COUNT; f++) {
            if (fault_points[f] != NULL) {
                pts[k++] =
                    (sprig_point_t){.type = fault_points[f], .value = (double)m->by_fault[f]};
            }
        }
        write_node(m, m->port.conf.id, pts, k);
        m->bus_dirty = false;
    }
    for (size_t i = 0; i < m->port.conf.nios; i++) {
        if (m->io_dirty[i]) {
            sprig_point_t pts[2] = {
                {.type = "errorCount", .value = (double)m->io_errors[i]},
                {.type = "errorCountException", .value = (double)m->io_exceptions[i]},
            };
            write_node(m, m->port.conf.ios[i].id, pts, 2);
            m->io_dirty[i] = false;
        }
    }
}

/* --- changes from the tree ------------------------------------------------------------ */

/* Queues the write of valueSet when it differs from value (compared as registers). */
static void want(mbd_t *m, int i, double value_set)
{
    mb_io_t *io = &m->port.conf.ios[i];
    if (io->read_only && !m->port.conf.server) {
        return;
    }
    uint16_t regs[4] = {0};
    if (io->has_value && mb_encode(&io->fmt, io->value, regs) == 0 &&
        mb_same(&io->fmt, value_set, regs)) {
        return;
    }
    if (mb_port_write(&m->port, i, value_set) != 0) {
        sprig_log_error("modbus %s: out of memory queueing a write", m->port.conf.id);
    }
}

static void on_io_event(const sprig_event_t *ev, void *arg)
{
    mbd_t *m = arg;
    sprig_node_t *n = sprig_tree_node(sprig_core_tree(m->core), ev->node);
    if (ev->edge_up != NULL) {
        if (strcmp(ev->edge_up, m->port.conf.id) == 0) {
            sprig_driver_restart(m->ctx); /* an IO added, removed or restored */
        }
        return;
    }
    if (n == NULL || !child_of(m, n) || strcmp(ev->point->origin, m->port.conf.id) == 0) {
        return;
    }
    const char *type = ev->point->type;
    int i = find_io(m, ev->node);
    if (strcmp(type, "valueSet") == 0) {
        if (i >= 0 && !ev->point->tombstone) {
            want(m, i, ev->point->value);
        }
        return;
    }
    if (strcmp(type, "description") == 0 || strcmp(type, "units") == 0 ||
        strcmp(type, "value") == 0 || strcmp(type, "quality") == 0 ||
        strncmp(type, "errorCount", 10) == 0) {
        return;
    }
    sprig_driver_restart(m->ctx); /* its config changed */
}

static int mb_start(void *state)
{
    mbd_t *m = state;
    uv_loop_t *loop = sprig_driver_loop(m->ctx);
    m->wake = sprig_malloc(sizeof(*m->wake));
    m->flush = sprig_malloc(sizeof(*m->flush));
    if (m->wake == NULL || m->flush == NULL) {
        sprig_free(m->wake);
        sprig_free(m->flush);
        m->wake = NULL;
        m->flush = NULL;
        return -ENOMEM;
    }
    mb_port_init(&m->port);
    m->port_ready = true;
    uv_async_init(loop, m->wake, on_wake);
    m->wake->data = m;
    uv_timer_init(loop, m->flush);
    m->flush->data = m;
    m->open_handles = 2;
    m->port.wake = m->wake;
    sprig_bus_filter_t f = {.node_type = "modbusIo"};
    int rc = sprig_bus_subscribe(sprig_core_bus(m->core), &f, on_io_event, m, &m->sub);
    if (rc != 0 || m->disabled) {
        return rc;
    }
    if ((rc = mb_port_start(&m->port)) != 0) {
        return rc;
    }
    uv_timer_start(m->flush, on_flush, 1000, 1000);
    const mb_conf_t *c = &m->port.conf;
    sprig_log_info("modbus %s: %s %s %s, %zu IOs", c->id, c->tcp ? "TCP" : "RTU",
                   c->server ? "server on" : "client of", c->tcp ? c->host : c->port, c->nios);
    /* A valueSet set while the bus was down is written now. */
    for (size_t i = 0; i < c->nios; i++) {
        sprig_node_t *n = sprig_tree_node(sprig_core_tree(m->core), c->ios[i].id);
        const sprig_point_t *vs = n != NULL ? pt(m, n, "valueSet") : NULL;
        if (vs != NULL) {
            want(m, (int)i, vs->value);
        }
    }
    return 0;
}

static int mb_write(void *state, const sprig_event_t *ev)
{
    mbd_t *m = state;
    const char *type = ev->point->type;
    if (strcmp(type, "errorCountReset") == 0) {
        if (ev->point->value != 0) {
            m->total = 0;
            memset(m->by_fault, 0, sizeof(m->by_fault));
            for (size_t i = 0; i < m->port.conf.nios; i++) {
                m->io_errors[i] = m->io_exceptions[i] = 0;
                m->io_dirty[i] = true;
            }
            m->bus_dirty = true;
            on_flush(m->flush);
            sprig_point_t p = {.type = "errorCountReset", .value = 0};
            write_node(m, m->port.conf.id, &p, 1);
        }
        return 0;
    }
    if (strcmp(type, "description") == 0 || strncmp(type, "errorCount", 10) == 0) {
        return 0;
    }
    return SPRIG_DRIVER_RESTART;
}

static void handle_closed(uv_handle_t *h)
{
    mbd_t *m = h->data;
    sprig_free(h);
    if (--m->open_handles == 0) {
        free_state(m);
    }
}

static void mb_stop(void *state)
{
    mbd_t *m = state;
    if (m->sub != NULL) {
        sprig_bus_unsubscribe(sprig_core_bus(m->core), m->sub);
    }
    mb_port_stop(&m->port);
    if (m->wake == NULL) {
        free_state(m);
        return;
    }
    on_wake(m->wake); /* what the thread said last */
    on_flush(m->flush);
    uv_close((uv_handle_t *)m->wake, handle_closed);
    uv_close((uv_handle_t *)m->flush, handle_closed);
}

static const char *const mb_types[] = {"modbus", NULL};

const struct sprig_driver sprig_driver_modbus = {
    .name = "modbus",
    .node_types = mb_types,
    .init = mb_init,
    .start = mb_start,
    .write = mb_write,
    .stop = mb_stop,
};
