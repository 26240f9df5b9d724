/* signalGenerator: a simulated sensor, so the demo needs no hardware, and the template
 * every later driver copies (one descriptor, everything else static).
 *
 * Config points of the node: signalType (text: sine | square | triangle | random),
 * amplitude (default 1), offset (default 0), period (seconds, default 10), sampleRate
 * (Hz, default 1, at most 1000), disabled (non-zero stops it). It writes `value`.
 * The wave's phase comes from the wall clock, so a restart continues the same curve. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/driver.h"
#include "sprig/log.h"
#include "sprig/util.h"

#define SG_MAX_RATE 1000.0

enum sg_kind { SG_SINE, SG_SQUARE, SG_TRIANGLE, SG_RANDOM };
static const char *const kind_names[] = {"sine", "square", "triangle", "random"};

typedef struct sg {
    sprig_driver_ctx_t *ctx;
    uv_timer_t timer; /* the state is freed in the timer's close callback */
    enum sg_kind kind;
    double amplitude, offset, period, rate;
    double walk;
    uint64_t rng;
    bool disabled;
} sg_t;

/* xorshift64*: a small, seeded generator for the random walk. */
static double next_uniform(sg_t *g)
{
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return (double)((g->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int sg_init(sprig_driver_ctx_t *ctx, void **state)
{
    const char *id = sprig_node_id(sprig_driver_node(ctx));
    sg_t *g = sprig_calloc(1, sizeof(*g));
    if (g == NULL) {
        return -ENOMEM;
    }
    g->ctx = ctx;
    const char *kind = sprig_driver_text(ctx, "signalType", "sine");
    size_t k = 0;
    while (k < 4 && strcmp(kind, kind_names[k]) != 0) {
        k++;
    }
    g->amplitude = sprig_driver_number(ctx, "amplitude", 1);
    g->offset = sprig_driver_number(ctx, "offset", 0);
    g->period = sprig_driver_number(ctx, "period", 10);
    g->rate = sprig_driver_number(ctx, "sampleRate", 1);
    g->disabled = sprig_driver_number(ctx, "disabled", 0) != 0;
    int rc = 0;
    if (k == 4) {
        sprig_log_error("node %s: signalType \"%s\" is not one of sine, square, triangle, random",
                        id, kind);
        rc = -EINVAL;
    }
    else if (!(g->period > 0)) {
        sprig_log_error("node %s: period %g s must be above 0", id, g->period);
        rc = -EINVAL;
    }
    else if (!(g->rate > 0 && g->rate <= SG_MAX_RATE)) {
        sprig_log_error("node %s: sampleRate %g Hz must be above 0 and at most %g", id, g->rate,
                        SG_MAX_RATE);
        rc = -EINVAL;
    }
    if (rc != 0) {
        sprig_free(g);
        return rc;
    }
    g->kind = (enum sg_kind)k;
    g->rng = (uint64_t)sprig_wall_ns() | 1;
    const sprig_point_t *last = sprig_tree_point(sprig_core_tree(sprig_driver_core(ctx)),
                                                 sprig_driver_node(ctx), "value", "0");
    g->walk = last != NULL ? last->value - g->offset : 0;
    *state = g;
    return 0;
}

static double sample(sg_t *g)
{
    double t = sprig_wall_ns() / 1e9;
    double phase = fmod(t, g->period) / g->period; /* 0 .. 1 */
    switch (g->kind) {
    case SG_SINE:
        return g->offset + g->amplitude * sin(2 * M_PI * phase);
    case SG_SQUARE:
        return g->offset + (phase < 0.5 ? g->amplitude : -g->amplitude);
    case SG_TRIANGLE:
        return g->offset + g->amplitude * (phase < 0.5 ? 4 * phase - 1 : 3 - 4 * phase);
    default: {
        /* Steps sized so the walk can cross its range in about one period. */
        double step = 2 * g->amplitude / (g->period * g->rate) * 4;
        g->walk += (2 * next_uniform(g) - 1) * step;
        if (g->walk > g->amplitude) {
            g->walk = g->amplitude;
        }
        if (g->walk < -g->amplitude) {
            g->walk = -g->amplitude;
        }
        return g->offset + g->walk;
    }
    }
}

static void on_tick(uv_timer_t *t)
{
    sg_t *g = t->data;
    sprig_point_t p = {.type = "value", .value = sample(g)};
    sprig_driver_write(g->ctx, &p, 1);
}

static int sg_start(void *state)
{
    sg_t *g = state;
    uv_timer_init(sprig_driver_loop(g->ctx), &g->timer);
    g->timer.data = g;
    if (g->disabled) {
        return 0;
    }
    uint64_t ms = (uint64_t)llround(1000.0 / g->rate);
    return uv_timer_start(&g->timer, on_tick, 0, ms > 0 ? ms : 1);
}

static int sg_write(void *state, const sprig_event_t *ev)
{
    (void)state;
    /* Any config point restarts it; its own output does not reach here. */
    return strcmp(ev->point->type, "value") == 0 ? 0 : SPRIG_DRIVER_RESTART;
}

static void sg_closed(uv_handle_t *h)
{
    sprig_free(h->data);
}

static void sg_stop(void *state)
{
    sg_t *g = state;
    if (uv_is_active((uv_handle_t *)&g->timer) || g->timer.loop != NULL) {
        uv_close((uv_handle_t *)&g->timer, sg_closed);
    }
    else {
        sprig_free(g);
    }
}

static const char *const sg_types[] = {"signalGenerator", NULL};

const struct sprig_driver sprig_driver_signalGenerator = {
    .name = "signalGenerator",
    .node_types = sg_types,
    .init = sg_init,
    .start = sg_start,
    .write = sg_write,
    .stop = sg_stop,
};
