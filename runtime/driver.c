/* The driver manager: see driver.h. Starts and restarts are not done inside the bus
 * callback that asked for them but on the next loop turn (a zero timer), so creating a
 * node with ten config points starts its driver once, with all ten, not eleven times. */
#include <errno.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/driver.h"
#include "sprig/err.h"
#include "sprig/log.h"

struct sprig_driver_ctx {
    sprig_drivers_t *mgr;
    const struct sprig_driver *drv;
    sprig_node_t *node;
    void *state; /* non-NULL while running */
    bool pending;
};

struct sprig_drivers {
    sprig_core_t *core;
    const struct sprig_driver *const *table;
    const char **types; /* interned node types served, parallel to drivers */
    const struct sprig_driver **type_drv;
    size_t ntypes;
    sprig_driver_ctx_t **inst;
    size_t n, cap;
    sprig_bus_sub_t *sub;
    uv_timer_t *kick; /* freed in its close callback */
    bool stopping;
};

uv_loop_t *sprig_driver_loop(const sprig_driver_ctx_t *ctx)
{
    return sprig_core_loop(ctx->mgr->core);
}

const sprig_node_t *sprig_driver_node(const sprig_driver_ctx_t *ctx)
{
    return ctx->node;
}

sprig_core_t *sprig_driver_core(const sprig_driver_ctx_t *ctx)
{
    return ctx->mgr->core;
}

static const sprig_point_t *config_point(const sprig_driver_ctx_t *ctx, const char *type)
{
    const sprig_point_t *p =
        sprig_tree_point(sprig_core_tree(ctx->mgr->core), ctx->node, type, "0");
    return p != NULL && !p->tombstone ? p : NULL;
}

double sprig_driver_number(const sprig_driver_ctx_t *ctx, const char *type, double dflt)
{
    const sprig_point_t *p = config_point(ctx, type);
    return p != NULL ? p->value : dflt;
}

const char *sprig_driver_text(const sprig_driver_ctx_t *ctx, const char *type, const char *dflt)
{
    const sprig_point_t *p = config_point(ctx, type);
    return p != NULL ? p->text : dflt;
}

int sprig_driver_write(sprig_driver_ctx_t *ctx, const sprig_point_t *pts, size_t n)
{
    sprig_point_t buf[16];
    const char *id = sprig_node_id(ctx->node);
    sprig_error_t err;
    int rc = 0;
    /* Stamp the origin in chunks, so a driver need not. */
    for (size_t done = 0; done < n && rc == 0;) {
        size_t k = n - done < 16 ? n - done : 16;
        for (size_t i = 0; i < k; i++) {
            buf[i] = pts[done + i];
            buf[i].origin = id;
        }
        rc = sprig_core_write(ctx->mgr->core, id, buf, k, NULL, &err);
        done += k;
    }
    if (rc != 0) {
        sprig_log_warn("driver %s: %s", ctx->drv->name, err.msg);
    }
    return rc;
}

/* A node runs its driver while it is live and this instance's own (not a device's tree
 * kept here by an upstream). */
static bool node_live(sprig_drivers_t *d, sprig_node_t *n)
{
    sprig_tree_t *t = sprig_core_tree(d->core);
    return sprig_node_live(t, n) && !sprig_node_foreign(t, n);
}

static const struct sprig_driver *driver_for(sprig_drivers_t *d, const char *interned_type)
{
    for (size_t i = 0; i < d->ntypes; i++) {
        if (d->types[i] == interned_type) {
            return d->type_drv[i];
        }
    }
    return NULL;
}

static sprig_driver_ctx_t *find_ctx(sprig_drivers_t *d, const sprig_node_t *n)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->inst[i]->node == n) {
            return d->inst[i];
        }
    }
    return NULL;
}

static void stop_instance(sprig_driver_ctx_t *ctx)
{
    if (ctx->state != NULL) {
        ctx->drv->stop(ctx->state);
        ctx->state = NULL;
        sprig_log_info("driver %s: stopped on node %s", ctx->drv->name, sprig_node_id(ctx->node));
    }
}

static void start_instance(sprig_driver_ctx_t *ctx)
{
    void *state = NULL;
    int rc = ctx->drv->init(ctx, &state);
    if (rc == 0 && (rc = ctx->drv->start(state)) != 0) {
        ctx->drv->stop(state);
    }
    if (rc != 0) {
        sprig_log_error("driver %s: node %s not started: %s", ctx->drv->name,
                        sprig_node_id(ctx->node), sprig_strerror(rc));
        return;
    }
    ctx->state = state;
    sprig_log_info("driver %s: started on node %s", ctx->drv->name, sprig_node_id(ctx->node));
}

static void on_kick(uv_timer_t *t)
{
    sprig_drivers_t *d = t->data;
    for (size_t i = 0; i < d->n; i++) {
        sprig_driver_ctx_t *ctx = d->inst[i];
        if (!ctx->pending) {
            continue;
        }
        ctx->pending = false;
        stop_instance(ctx);
        if (node_live(d, ctx->node)) {
            start_instance(ctx);
        }
    }
}

/* Marks the node's instance for a (re)start or stop on the next loop turn. */
static int schedule(sprig_drivers_t *d, sprig_node_t *n, const struct sprig_driver *drv)
{
    sprig_driver_ctx_t *ctx = find_ctx(d, n);
    if (ctx == NULL) {
        if (d->n == d->cap) {
            size_t cap = d->cap != 0 ? d->cap * 2 : 8;
            sprig_driver_ctx_t **inst = sprig_realloc(d->inst, cap * sizeof(*inst));
            if (inst == NULL) {
                return -ENOMEM;
            }
            d->inst = inst;
            d->cap = cap;
        }
        if ((ctx = sprig_calloc(1, sizeof(*ctx))) == NULL) {
            return -ENOMEM;
        }
        ctx->mgr = d;
        ctx->drv = drv;
        ctx->node = n;
        d->inst[d->n++] = ctx;
    }
    ctx->pending = true;
    uv_timer_start(d->kick, on_kick, 0, 0);
    return 0;
}

static void on_event(const sprig_event_t *ev, void *arg)
{
    sprig_drivers_t *d = arg;
    if (d->stopping) {
        return;
    }
    sprig_tree_t *t = sprig_core_tree(d->core);
    const struct sprig_driver *drv = driver_for(d, ev->node_type);
    if (drv == NULL) {
        return;
    }
    sprig_node_t *n = sprig_tree_node(t, ev->node);
    sprig_driver_ctx_t *ctx = find_ctx(d, n);
    if (ev->edge_up != NULL) {
        /* Created, deleted or restored under some parent: re-decide. */
        if ((ctx == NULL || ctx->state == NULL) != !node_live(d, n) && schedule(d, n, drv) != 0) {
            sprig_log_error("driver %s: out of memory", drv->name);
        }
        return;
    }
    if (ctx == NULL || ctx->pending || strcmp(ev->point->origin, sprig_node_id(n)) == 0) {
        return; /* not live, about to (re)start, or its own write */
    }
    if (ctx->state == NULL) {
        /* Its last start was refused (bad config): a change may fix it, so try again. */
        if (schedule(d, n, drv) != 0) {
            sprig_log_error("driver %s: out of memory", drv->name);
        }
        return;
    }
    if ((drv->write == NULL || drv->write(ctx->state, ev) == SPRIG_DRIVER_RESTART) &&
        schedule(d, n, drv) != 0) {
        sprig_log_error("driver %s: out of memory", drv->name);
    }
}

void sprig_driver_restart(sprig_driver_ctx_t *ctx)
{
    if (!ctx->mgr->stopping && schedule(ctx->mgr, ctx->node, ctx->drv) != 0) {
        sprig_log_error("driver %s: out of memory", ctx->drv->name);
    }
}

static int schedule_existing(sprig_node_t *n, void *arg)
{
    sprig_drivers_t *d = arg;
    const struct sprig_driver *drv = driver_for(d, sprig_node_type(n));
    if (drv != NULL && node_live(d, n)) {
        return schedule(d, n, drv);
    }
    return 0;
}

int sprig_drivers_start(sprig_core_t *core, const struct sprig_driver *const *table,
                        sprig_drivers_t **out)
{
    sprig_drivers_t *d = sprig_calloc(1, sizeof(*d));
    int rc = -ENOMEM;
    *out = NULL;
    if (d == NULL) {
        return -ENOMEM;
    }
    d->core = core;
    d->table = table;
    size_t total = 0;
    for (size_t i = 0; table[i] != NULL; i++) {
        for (size_t k = 0; table[i]->node_types[k] != NULL; k++) {
            total++;
        }
    }
    d->types = sprig_calloc(total + 1, sizeof(*d->types));
    d->type_drv = sprig_calloc(total + 1, sizeof(*d->type_drv));
    d->kick = sprig_malloc(sizeof(*d->kick));
    if (d->types == NULL || d->type_drv == NULL || d->kick == NULL) {
        goto fail;
    }
    for (size_t i = 0; table[i] != NULL; i++) {
        for (size_t k = 0; table[i]->node_types[k] != NULL; k++) {
            const char *it = sprig_tree_intern(sprig_core_tree(core), table[i]->node_types[k]);
            if (it == NULL) {
                goto fail;
            }
            d->types[d->ntypes] = it;
            d->type_drv[d->ntypes++] = table[i];
        }
    }
    uv_timer_init(sprig_core_loop(core), d->kick);
    d->kick->data = d;
    if ((rc = sprig_bus_subscribe(sprig_core_bus(core), NULL, on_event, d, &d->sub)) != 0 ||
        (rc = sprig_tree_each_node(sprig_core_tree(core), schedule_existing, d)) != 0) {
        sprig_drivers_stop(d);
        return rc;
    }
    *out = d;
    return 0;
fail:
    sprig_free(d->types);
    sprig_free(d->type_drv);
    sprig_free(d->kick);
    sprig_free(d);
    return rc;
}

void sprig_drivers_stop(sprig_drivers_t *d)
{
    if (d == NULL) {
        return;
    }
    d->stopping = true;
    sprig_bus_unsubscribe(sprig_core_bus(d->core), d->sub);
    for (size_t i = 0; i < d->n; i++) {
        stop_instance(d->inst[i]);
        sprig_free(d->inst[i]);
    }
    uv_close((uv_handle_t *)d->kick, sprig_free_handle);
    sprig_free(d->inst);
    sprig_free(d->types);
    sprig_free(d->type_drv);
    sprig_free(d);
}

size_t sprig_drivers_running(const sprig_drivers_t *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++) {
        n += d->inst[i]->state != NULL;
    }
    return n;
}
