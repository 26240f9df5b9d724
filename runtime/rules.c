/* The rule engine: see rules.h. Rule instances follow the bus (a rule node created,
 * changed, deleted); loads happen on the next loop turn, never inside the bus callback
 * that asked for them. Point changes are delivered straight to the matching handlers;
 * a change written while a handler runs waits in a FIFO queue until that handler has
 * returned, so Lua is never re-entered and a chain of rules has a bounded depth. */
#include <errno.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules_internal.h"
#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/util.h"

#define DRAIN_MAX 100000 /* queued events run for one outside change, at most */
#define FIRE_MAX 100000  /* timers run by one advance, at most */

typedef struct rule_bucket {
    const char *ptype;
    rule_hook_t **v;
    size_t n, cap;
} rule_bucket_t;

int64_t rules__now(const sprig_rules_t *e)
{
    return e->o.clock != NULL ? e->o.clock(e->o.clock_arg) : sprig_wall_ns();
}

/* The time of a run, for lastRun: the coarse clock (a few ms) is plenty and far cheaper
 * than a precise read per call. */
static int64_t run_time(const sprig_rules_t *e)
{
    if (e->o.clock != NULL) {
        return e->o.clock(e->o.clock_arg);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *rule_id(const rule_t *r)
{
    return sprig_node_id(r->node);
}

static const sprig_point_t *rule_point(const rule_t *r, const char *type)
{
    const sprig_point_t *p = sprig_tree_point(sprig_core_tree(r->eng->core), r->node, type, "0");
    return p != NULL && !p->tombstone ? p : NULL;
}

void rules__log(rule_t *r, int warn, const char *msg)
{
    sprig_rules_t *e = r->eng;
    if (e->o.log != NULL) {
        e->o.log(rule_id(r), warn, msg, e->o.log_arg);
    }
    else if (warn) {
        sprig_log_warn("rule %s: %s", rule_id(r), msg);
    }
    else {
        sprig_log_info("rule %s: %s", rule_id(r), msg);
    }
}

/* Writes points to the rule's own node, as the rule (origin = its id). */
static int write_own(rule_t *r, sprig_point_t *pts, size_t n)
{
    sprig_error_t err;
    for (size_t i = 0; i < n; i++) {
        pts[i].origin = rule_id(r);
    }
    int rc = sprig_core_write(r->eng->core, rule_id(r), pts, n, NULL, &err);
    if (rc != 0) {
        sprig_log_warn("rule %s: %s", rule_id(r), err.msg);
    }
    return rc;
}

void rules__set_error(rule_t *r, const char *msg, bool run)
{
    const sprig_point_t *p = rule_point(r, "error");
    const char *cur = p != NULL ? p->text : "";
    r->error_run = run && msg[0] != '\0';
    if (strcmp(cur, msg) == 0) {
        return;
    }
    if (msg[0] != '\0') {
        rules__log(r, 1, msg);
    }
    sprig_point_t pt = {.type = "error", .text = msg};
    write_own(r, &pt, 1);
}

/* --- hooks -------------------------------------------------------------------------- */

rule_hook_t *rules__hook_add(rule_box_t *rb)
{
    sprig_rules_t *e = rb->rule->eng;
    if (e->nhooks == e->caphooks) {
        size_t cap = e->caphooks != 0 ? e->caphooks * 2 : 16;
        rule_hook_t **v = sprig_realloc(e->hooks, cap * sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        e->hooks = v;
        e->caphooks = cap;
    }
    rule_hook_t *h = sprig_calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->rb = rb;
    h->handle = ++rb->rule->next_handle;
    h->fnref = LUA_NOREF;
    h->at_secs = -1;
    e->hooks[e->nhooks++] = h;
    return h;
}

static void hook_kill(sprig_rules_t *e, rule_hook_t *h)
{
    if (!h->dead) {
        h->dead = true;
        if (!h->timer) {
            e->index_dirty = true;
        }
    }
}

void rules__hook_cancel(rule_box_t *rb, int handle)
{
    sprig_rules_t *e = rb->rule->eng;
    for (size_t i = 0; i < e->nhooks; i++) {
        rule_hook_t *h = e->hooks[i];
        if (!h->dead && h->rb == rb && h->handle == handle) {
            hook_kill(e, h);
            if (h->timer) {
                rules__rearm(e);
            }
            return;
        }
    }
}

static void kill_box_hooks(sprig_rules_t *e, rule_box_t *rb)
{
    for (size_t i = 0; i < e->nhooks; i++) {
        if (!e->hooks[i]->dead && e->hooks[i]->rb == rb) {
            hook_kill(e, e->hooks[i]);
        }
    }
}

static void bucket_free(rule_bucket_t *b)
{
    sprig_free(b->v);
    sprig_free(b);
}

static void index_free(sprig_rules_t *e)
{
    for (size_t i = 0; i < e->by_ptype.cap; i++) {
        if (e->by_ptype.items != NULL && e->by_ptype.items[i] != NULL) {
            bucket_free(e->by_ptype.items[i]);
        }
    }
    tree__map_free(&e->by_ptype);
    memset(&e->by_ptype, 0, sizeof(e->by_ptype));
    e->nwild = 0;
}

static bool bucket_eq(const void *item, const void *key)
{
    return strcmp(((const rule_bucket_t *)item)->ptype, key) == 0;
}

static int push_hook(rule_hook_t ***v, size_t *n, size_t *cap, rule_hook_t *h)
{
    if (*n == *cap) {
        size_t c = *cap != 0 ? *cap * 2 : 4;
        rule_hook_t **nv = sprig_realloc(*v, c * sizeof(*nv));
        if (nv == NULL) {
            return -ENOMEM;
        }
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = h;
    return 0;
}

/* Frees dead hooks. Only when no dispatch is iterating and the queue is empty. */
static void sweep(sprig_rules_t *e)
{
    size_t k = 0;
    for (size_t i = 0; i < e->nhooks; i++) {
        if (e->hooks[i]->dead) {
            sprig_free(e->hooks[i]->node);
            sprig_free(e->hooks[i]->ntype);
            sprig_free(e->hooks[i]->ptype);
            sprig_free(e->hooks[i]->key);
            sprig_free(e->hooks[i]);
        }
        else {
            e->hooks[k++] = e->hooks[i];
        }
    }
    e->nhooks = k;
}

/* Rebuilds the point type index of live subscriptions. Only when no dispatch iterates. */
static int index_build(sprig_rules_t *e)
{
    index_free(e);
    e->index_dirty = false;
    e->last_ok = false;
    for (size_t i = 0; i < e->nhooks; i++) {
        rule_hook_t *h = e->hooks[i];
        if (h->dead || h->timer) {
            continue;
        }
        if (h->ptype == NULL) {
            if (push_hook(&e->wild, &e->nwild, &e->capwild, h) != 0) {
                goto oom;
            }
            continue;
        }
        uint64_t hash = tree__hash_bytes(h->ptype, strlen(h->ptype));
        rule_bucket_t *b = tree__map_get(&e->by_ptype, hash, bucket_eq, h->ptype);
        if (b == NULL) {
            if ((b = sprig_calloc(1, sizeof(*b))) == NULL) {
                goto oom;
            }
            b->ptype = h->ptype;
            if (tree__map_add(&e->by_ptype, hash, b) != 0) {
                sprig_free(b);
                goto oom;
            }
        }
        if (push_hook(&b->v, &b->n, &b->cap, h) != 0) {
            goto oom;
        }
    }
    return 0;
oom:
    sprig_log_error("rules: out of memory building the subscription index");
    e->index_dirty = true;
    return -ENOMEM;
}

/* --- timers ------------------------------------------------------------------------- */

int64_t rules__at_next(int at_secs, unsigned days, int64_t after)
{
    time_t now = (time_t)(after / 1000000000);
    struct tm base;
    localtime_r(&now, &base);
    for (int d = 0; d <= 8; d++) {
        struct tm tm = base;
        tm.tm_mday += d;
        tm.tm_hour = at_secs / 3600;
        tm.tm_min = at_secs / 60 % 60;
        tm.tm_sec = at_secs % 60;
        tm.tm_isdst = -1;
        time_t t = mktime(&tm);
        int64_t ns = (int64_t)t * 1000000000;
        if (t != (time_t)-1 && ns > after && (days & (1u << tm.tm_wday)) != 0) {
            return ns;
        }
    }
    return INT64_MAX;
}

int64_t sprig_rules_next_due(const sprig_rules_t *e)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < e->nhooks; i++) {
        const rule_hook_t *h = e->hooks[i];
        if (h->timer && !h->dead && h->due < due) {
            due = h->due;
        }
    }
    return due;
}

static void on_wake(uv_timer_t *t)
{
    sprig_rules_advance(t->data);
}

void rules__rearm(sprig_rules_t *e)
{
    if (e->o.clock != NULL || e->wake == NULL || e->stopping) {
        return;
    }
    int64_t due = sprig_rules_next_due(e);
    if (due == INT64_MAX) {
        uv_timer_stop(e->wake);
        return;
    }
    int64_t wait = due - rules__now(e);
    uint64_t ms = wait > 0 ? (uint64_t)((wait + 999999) / 1000000) : 0;
    uv_timer_start(e->wake, on_wake, ms, 0);
}

/* --- running Lua -------------------------------------------------------------------- */

static void unload(rule_t *r);

/* A call of the rule failed: an ordinary error is noted; a budget overrun stops it. */
static void fail_rule(rule_t *r, int rc, const char *msg)
{
    r->eng->errors++;
    if (rc == -ETIMEDOUT || rc == -ENOMEM) {
        char text[sizeof(((sprig_error_t *)0)->msg) + 96];
        snprintf(text, sizeof(text),
                 "stopped: %s; change the script or set disabled to start it again", msg);
        unload(r);
        r->stopped = true;
        rules__set_error(r, text, false);
        return;
    }
    rules__set_error(r, msg, true);
}

static void run_hook(sprig_rules_t *e, rule_hook_t *h, const ev_fields_t *f, int depth)
{
    rule_t *r = h->rb->rule;
    sprig_luabox_t *box = h->rb->box;
    lua_State *L = sprig_luabox_state(box);
    sprig_error_t err;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->fnref);
    int nargs = 0;
    if (f != NULL) {
        rules__push_event(h->rb, f);
        nargs = 1;
    }
    e->running = r;
    e->depth = depth;
    e->chain_msg[0] = '\0';
    int rc = sprig_luabox_call(box, nargs, 0, &err);
    e->running = NULL;
    if (nargs != 0 && r->cur == h->rb) {
        h->rb->ev = NULL; /* the event's fields are gone: later reads of ev say so */
        h->rb->ev_table = NULL;
    }
    r->runs++;
    r->ran = true;
    r->last_run = run_time(e);
    e->runs++;
    if (rc != 0) {
        fail_rule(r, rc, err.msg);
    }
    else if (e->chain_msg[0] != '\0') {
        rules__set_error(r, e->chain_msg, true);
    }
    else if (r->error_run) {
        rules__set_error(r, "", false);
    }
}

static void enqueue(sprig_rules_t *e, rule_hook_t *h, const sprig_event_t *ev, int depth)
{
    if (depth > RULE_MAX_DEPTH) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "a chain of rule writes is deeper than %d (rules setting each other's "
                 "inputs in a loop?): the change of %s %s is not delivered to rule %s",
                 RULE_MAX_DEPTH, ev->node, ev->point->type, rule_id(h->rb->rule));
        if (e->chain_msg[0] == '\0') {
            e->errors++;
            snprintf(e->chain_msg, sizeof(e->chain_msg), "%s", msg); /* noted after the run */
        }
        return;
    }
    if (e->qlen == e->qcap) {
        size_t cap = e->qcap != 0 ? e->qcap * 2 : 16;
        rule_event_t *q = sprig_malloc(cap * sizeof(*q));
        if (q == NULL) {
            sprig_log_error("rules: out of memory queueing an event");
            return;
        }
        for (size_t i = 0; i < e->qlen; i++) {
            q[i] = e->queue[(e->qhead + i) % e->qcap];
        }
        sprig_free(e->queue);
        e->queue = q;
        e->qcap = cap;
        e->qhead = 0;
    }
    const sprig_point_t *p = ev->point;
    const char *s[6] = {ev->node, ev->node_type, p->type, p->key, p->text, p->origin};
    size_t len[6], total = 0;
    for (int i = 0; i < 6; i++) {
        len[i] = strlen(s[i]) + 1;
        total += len[i];
    }
    char *block = sprig_malloc(total);
    if (block == NULL) {
        sprig_log_error("rules: out of memory queueing an event");
        return;
    }
    rule_event_t *q = &e->queue[(e->qhead + e->qlen++) % e->qcap];
    char **dst[6] = {&q->node, &q->ntype, &q->ptype, &q->key, &q->text, &q->origin};
    char *at = block;
    for (int i = 0; i < 6; i++) {
        memcpy(at, s[i], len[i]);
        *dst[i] = at;
        at += len[i];
    }
    q->rule = h->rb->rule;
    q->handle = h->handle;
    q->depth = depth;
    q->value = p->value;
    q->time = p->time;
    q->tombstone = p->tombstone;
    /* The hook itself is found again by handle: it may be swept before its turn. */
}

static rule_hook_t *find_hook(sprig_rules_t *e, rule_t *r, int handle)
{
    for (size_t i = 0; i < e->nhooks; i++) {
        rule_hook_t *h = e->hooks[i];
        if (!h->dead && h->handle == handle && h->rb->rule == r && r->cur == h->rb) {
            return h;
        }
    }
    return NULL;
}

/* Runs queued events in order, then frees what was cancelled. Outside any dispatch. */
static void drain(sprig_rules_t *e)
{
    size_t ran = 0;
    while (e->qlen > 0) {
        rule_event_t q = e->queue[e->qhead];
        e->qhead = (e->qhead + 1) % e->qcap;
        e->qlen--;
        if (ran++ == DRAIN_MAX) {
            sprig_log_error("rules: over %d changes queued by rules for one outside change; "
                            "the rest are dropped (rules feeding each other?)",
                            DRAIN_MAX);
        }
        rule_hook_t *h = ran <= DRAIN_MAX ? find_hook(e, q.rule, q.handle) : NULL;
        if (h != NULL) {
            ev_fields_t f = {q.node,   q.ntype, q.ptype, q.key,      q.text,
                             q.origin, q.value, q.time,  q.tombstone};
            run_hook(e, h, &f, q.depth);
        }
        sprig_free(q.node);
    }
    e->qhead = 0;
    if (e->dispatching == 0) {
        sweep(e);
    }
}

static bool matches(const rule_hook_t *h, const sprig_event_t *ev)
{
    return (h->node == NULL || strcmp(h->node, ev->node) == 0) &&
           (h->ntype == NULL || strcmp(h->ntype, ev->node_type) == 0) &&
           (h->key == NULL || strcmp(h->key, ev->point->key) == 0) &&
           (h->ptype == NULL || strcmp(h->ptype, ev->point->type) == 0);
}

static void deliver(sprig_rules_t *e, rule_hook_t *h, const sprig_event_t *ev)
{
    if (h->dead) {
        return; /* its box may be gone already: read nothing of it */
    }
    rule_t *r = h->rb->rule;
    if (r->cur != h->rb || !matches(h, ev) || strcmp(ev->point->origin, rule_id(r)) == 0) {
        return;
    }
    if (e->running != NULL) {
        enqueue(e, h, ev, e->depth + 1);
        return;
    }
    const sprig_point_t *p = ev->point;
    ev_fields_t f = {ev->node,  ev->node_type, p->type, p->key,      p->text,
                     p->origin, p->value,      p->time, p->tombstone};
    run_hook(e, h, &f, 0);
}

/* --- loading ------------------------------------------------------------------------ */

static void on_kick(uv_timer_t *t)
{
    sprig_rules_settle(t->data);
}

static void kick(sprig_rules_t *e)
{
    if (e->kick != NULL && !e->stopping) {
        uv_timer_start(e->kick, on_kick, 0, 0);
    }
}

static rule_t *find_rule(sprig_rules_t *e, const sprig_node_t *n)
{
    for (size_t i = 0; i < e->nrules; i++) {
        if (e->rules[i]->node == n) {
            return e->rules[i];
        }
    }
    return NULL;
}

static rule_t *rule_for(sprig_rules_t *e, sprig_node_t *n)
{
    rule_t *r = find_rule(e, n);
    if (r != NULL) {
        return r;
    }
    if (e->nrules == e->caprules) {
        size_t cap = e->caprules != 0 ? e->caprules * 2 : 8;
        rule_t **v = sprig_realloc(e->rules, cap * sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        e->rules = v;
        e->caprules = cap;
    }
    if ((r = sprig_calloc(1, sizeof(*r))) == NULL) {
        return NULL;
    }
    r->eng = e;
    r->node = n;
    e->rules[e->nrules++] = r;
    return r;
}

static void mark_pending(sprig_rules_t *e, sprig_node_t *n, bool restart)
{
    rule_t *r = rule_for(e, n);
    if (r == NULL) {
        sprig_log_error("rules: out of memory for rule %s", sprig_node_id(n));
        return;
    }
    r->pending = true;
    if (restart) {
        r->stopped = false;
    }
    kick(e);
}

/* Saves runs, lastRun and state of a rule that ran since the last save. */
static void save_rule(rule_t *r)
{
    if (r->cur == NULL || (!r->ran && !r->loaded)) {
        return; /* no Lua ran since the last save: nothing can have changed */
    }
    sprig_point_t pts[3];
    size_t n = 0;
    char *dump = NULL;
    if (r->ran) {
        pts[n++] = (sprig_point_t){.type = "runs", .value = (double)r->runs};
        pts[n++] = (sprig_point_t){.type = "lastRun", .value = (double)r->last_run};
        r->ran = false;
    }
    r->loaded = false;
    sprig_error_t err;
    int rc = rules__state_dump(r->cur->box, &dump, &err);
    if (rc == -ETIMEDOUT || rc == -ENOMEM) {
        /* Reading the state ran the script's own metamethods over the budget: stopped like
         * a handler would be (sprig_rules_save unloads it). */
        char text[sizeof(err.msg) + 96];
        snprintf(text, sizeof(text),
                 "stopped: %s (saving its state); change the script or set disabled to start "
                 "it again",
                 err.msg);
        r->stopped = true;
        rules__set_error(r, text, false);
    }
    else if (rc != 0) {
        rules__set_error(r, err.msg, true);
    }
    else if (r->saved_state == NULL || strcmp(dump, r->saved_state) != 0) {
        pts[n++] = (sprig_point_t){.type = "state", .text = dump};
    }
    if (n > 0 && write_own(r, pts, n) == 0 && dump != NULL) {
        sprig_free(r->saved_state);
        r->saved_state = dump;
        dump = NULL;
    }
    sprig_free(dump);
}

static void unload(rule_t *r)
{
    if (r->cur == NULL) {
        return;
    }
    save_rule(r);
    kill_box_hooks(r->eng, r->cur);
    sprig_luabox_close(r->cur->box);
    sprig_free(r->cur);
    r->cur = NULL;
    sprig_free(r->script);
    r->script = NULL;
    rules__rearm(r->eng);
}

static void load_rule(rule_t *r)
{
    sprig_rules_t *e = r->eng;
    r->pending = false;
    const sprig_point_t *sp = rule_point(r, "script");
    const sprig_point_t *dp = rule_point(r, "disabled");
    const char *script = sp != NULL ? sp->text : "";
    sprig_tree_t *tree = sprig_core_tree(e->core);
    if (!sprig_node_live(tree, r->node) || sprig_node_foreign(tree, r->node) ||
        (dp != NULL && dp->value != 0) || script[0] == '\0') {
        if (r->cur != NULL) {
            unload(r);
            rules__log(r, 0, "stopped");
        }
        return;
    }
    if (r->stopped) {
        return;
    }
    if (r->cur != NULL && strcmp(r->script, script) == 0) {
        /* The running version saved again, e.g. a refused edit taken back: the load
         * error of that edit no longer holds (a run error stays until a good run). */
        if (!r->error_run) {
            rules__set_error(r, "", false);
        }
        return;
    }
    const sprig_point_t *fp = rule_point(r, "file");
    snprintf(r->name, sizeof(r->name), "%s",
             fp != NULL && fp->text[0] != '\0' ? fp->text : rule_id(r));
    sprig_error_t err = {0};
    rule_box_t *rb = sprig_calloc(1, sizeof(*rb));
    char *copy = sprig_strdup(script);
    sprig_luabox_opts_t bo = {.mem_max = e->o.mem_max,
                              .insn_max = e->o.insn_max,
                              .time_max_ms = e->o.time_max_ms,
                              .os_time = true,
                              .user = rb};
    int rc = rb != NULL && copy != NULL ? 0 : -ENOMEM;
    if (rc == 0) {
        rb->rule = r;
        rc = sprig_luabox_open(&bo, &rb->box);
    }
    if (rc == 0) {
        rc = rules__api_open(rb, &err);
    }
    if (rc == 0) {
        /* The state: carried over from the running version, else the saved point. */
        lua_State *L = sprig_luabox_state(rb->box);
        char *text = NULL;
        if (r->cur != NULL) {
            rules__state_dump(r->cur->box, &text, &err);
        }
        const sprig_point_t *st = rule_point(r, "state");
        if (rules__state_load(rb->box,
                              text != NULL ? text
                              : st != NULL ? st->text
                                           : "",
                              &err) != 0) {
            rules__log(r, 1, err.msg);
        }
        sprig_free(text);
        lua_setglobal(L, "state");
        rc = sprig_luabox_load(rb->box, r->name, script, strlen(script), &err);
        if (rc == 0) {
            e->running = r;
            e->depth = 0;
            rc = sprig_luabox_call(rb->box, 0, 0, &err);
            e->running = NULL;
        }
    }
    if (rc != 0) {
        if (rc == -ENOMEM && err.msg[0] == '\0') {
            snprintf(err.msg, sizeof(err.msg), "%s: out of memory loading the rule", r->name);
        }
        e->errors++;
        if (rb != NULL) {
            kill_box_hooks(e, rb);
            sprig_luabox_close(rb->box);
            sprig_free(rb);
        }
        sprig_free(copy);
        rules__set_error(r, err.msg, false);
        if (r->cur != NULL) {
            rules__log(r, 1, "the edit is refused; the previous version runs on");
        }
        return;
    }
    if (r->cur != NULL) {
        kill_box_hooks(e, r->cur);
        sprig_luabox_close(r->cur->box);
        sprig_free(r->cur);
        sprig_free(r->script);
    }
    r->cur = rb;
    r->script = copy;
    size_t subs = 0, timers = 0;
    for (size_t i = 0; i < e->nhooks; i++) {
        if (e->hooks[i]->rb == rb && !e->hooks[i]->dead) {
            subs += !e->hooks[i]->timer;
            timers += e->hooks[i]->timer;
        }
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "loaded %s (%zu subscriptions, %zu timers)", r->name, subs, timers);
    rules__log(r, 0, msg);
    r->loaded = true; /* its top level may have changed the state */
    rules__set_error(r, "", false);
    rules__rearm(e);
}

void sprig_rules_settle(sprig_rules_t *e)
{
    if (e->stopping || e->running != NULL || e->dispatching != 0) {
        return;
    }
    for (size_t i = 0; i < e->nrules; i++) {
        if (e->rules[i]->pending) {
            load_rule(e->rules[i]);
            drain(e);
        }
    }
    drain(e);
    rules__rearm(e);
}

int64_t sprig_rules_advance(sprig_rules_t *e)
{
    if (e->stopping || e->running != NULL || e->dispatching != 0) {
        return sprig_rules_next_due(e);
    }
    int64_t now = rules__now(e);
    for (int fired = 0; fired < FIRE_MAX; fired++) {
        rule_hook_t *h = NULL;
        for (size_t i = 0; i < e->nhooks; i++) {
            rule_hook_t *c = e->hooks[i];
            if (c->timer && !c->dead && (h == NULL || c->due < h->due)) {
                h = c;
            }
        }
        if (h == NULL || h->due > now) {
            break;
        }
        if (h->at_secs >= 0) {
            h->due = rules__at_next(h->at_secs, h->days, h->due);
        }
        else if (h->period > 0) {
            h->due += h->period;
            if (e->o.clock == NULL && h->due <= now) {
                h->due = now + h->period; /* the real clock jumped: skip missed ticks */
            }
        }
        else {
            h->dead = true;
        }
        e->dispatching++; /* the hook must outlive its own call (it may cancel itself) */
        run_hook(e, h, NULL, 0);
        e->dispatching--;
        drain(e);
    }
    sweep(e);
    rules__rearm(e);
    return sprig_rules_next_due(e);
}

void sprig_rules_save(sprig_rules_t *e)
{
    for (size_t i = 0; i < e->nrules; i++) {
        if (e->running == NULL) {
            save_rule(e->rules[i]);
            if (e->rules[i]->stopped) {
                unload(e->rules[i]);
            }
        }
    }
}

/* --- the bus ------------------------------------------------------------------------ */

static void on_event(const sprig_event_t *ev, void *arg)
{
    sprig_rules_t *e = arg;
    if (e->stopping) {
        return;
    }
    bool is_rule = ev->node_type == e->rule_type ||
                   (ev->node_type[0] == 'r' && strcmp(ev->node_type, "rule") == 0);
    if (ev->edge_up != NULL) {
        if (is_rule) {
            mark_pending(e, sprig_tree_node(sprig_core_tree(e->core), ev->node), false);
        }
        return;
    }
    const sprig_point_t *p = ev->point;
    if (is_rule && strcmp(p->origin, ev->node) != 0 &&
        (strcmp(p->type, "script") == 0 || strcmp(p->type, "disabled") == 0 ||
         strcmp(p->type, "file") == 0)) {
        mark_pending(e, sprig_tree_node(sprig_core_tree(e->core), ev->node), true);
    }
    if (e->index_dirty && e->dispatching == 0) {
        index_build(e);
    }
    rule_bucket_t *b;
    if (e->last_ok && strcmp(p->type, e->last_ptype) == 0) {
        b = e->last_bucket; /* a run of changes of one point type, the common case */
    }
    else {
        uint64_t hash = tree__hash_bytes(p->type, strlen(p->type));
        b = tree__map_get(&e->by_ptype, hash, bucket_eq, p->type);
        snprintf(e->last_ptype, sizeof(e->last_ptype), "%s", p->type);
        e->last_bucket = b;
        e->last_ok = true;
    }
    if (b == NULL && e->nwild == 0) {
        return;
    }
    e->dispatching++;
    for (size_t i = 0; b != NULL && i < b->n; i++) {
        deliver(e, b->v[i], ev);
    }
    for (size_t i = 0; i < e->nwild; i++) {
        deliver(e, e->wild[i], ev);
    }
    e->dispatching--;
    if (e->dispatching == 0 && e->running == NULL) {
        drain(e);
    }
}

static int add_existing(sprig_node_t *n, void *arg)
{
    sprig_rules_t *e = arg;
    if (strcmp(sprig_node_type(n), "rule") == 0) {
        mark_pending(e, n, false);
    }
    return 0;
}

static void on_save(uv_timer_t *t)
{
    sprig_rules_save(t->data);
}

static uv_timer_t *new_timer(sprig_rules_t *e)
{
    uv_timer_t *t = sprig_malloc(sizeof(*t));
    if (t != NULL) {
        uv_timer_init(sprig_core_loop(e->core), t);
        t->data = e;
    }
    return t;
}

int sprig_rules_start(sprig_core_t *core, const sprig_rules_opts_t *opts, sprig_rules_t **out)
{
    sprig_rules_t *e = sprig_calloc(1, sizeof(*e));
    *out = NULL;
    if (e == NULL) {
        return -ENOMEM;
    }
    e->core = core;
    e->rule_type = sprig_tree_intern(sprig_core_tree(core), "rule");
    if (opts != NULL) {
        e->o = *opts;
    }
    e->o.mem_max = e->o.mem_max != 0 ? e->o.mem_max : 16u << 20;
    e->o.insn_max = e->o.insn_max > 0 ? e->o.insn_max : 5000000L;
    e->o.time_max_ms = e->o.time_max_ms != 0 ? e->o.time_max_ms : 100;
    e->kick = new_timer(e);
    if (e->o.clock == NULL) {
        e->wake = new_timer(e);
        e->saver = new_timer(e);
    }
    if (e->kick == NULL || (e->o.clock == NULL && (e->wake == NULL || e->saver == NULL)) ||
        sprig_bus_subscribe(sprig_core_bus(core), NULL, on_event, e, &e->sub) != 0 ||
        sprig_tree_each_node(sprig_core_tree(core), add_existing, e) != 0) {
        sprig_rules_stop(e);
        return -ENOMEM;
    }
    if (e->saver != NULL) {
        uv_timer_start(e->saver, on_save, 1000, 1000);
    }
    *out = e;
    return 0;
}

void sprig_rules_stop(sprig_rules_t *e)
{
    if (e == NULL) {
        return;
    }
    if (e->sub != NULL) {
        sprig_bus_unsubscribe(sprig_core_bus(e->core), e->sub);
    }
    for (size_t i = 0; i < e->nrules; i++) {
        unload(e->rules[i]);
    }
    e->stopping = true;
    for (size_t i = 0; i < e->nrules; i++) {
        sprig_free(e->rules[i]->saved_state);
        sprig_free(e->rules[i]);
    }
    while (e->qlen > 0) {
        sprig_free(e->queue[e->qhead].node);
        e->qhead = (e->qhead + 1) % e->qcap;
        e->qlen--;
    }
    for (size_t i = 0; i < e->nhooks; i++) {
        e->hooks[i]->dead = true;
    }
    sweep(e);
    index_free(e);
    uv_timer_t *timers[3] = {e->kick, e->wake, e->saver};
    for (int i = 0; i < 3; i++) {
        if (timers[i] != NULL) {
            uv_close((uv_handle_t *)timers[i], sprig_free_handle);
        }
    }
    sprig_free(e->hooks);
    sprig_free(e->wild);
    sprig_free(e->queue);
    sprig_free(e->rules);
    sprig_free(e);
}

void sprig_rules_stats(const sprig_rules_t *e, sprig_rules_stats_t *out)
{
    out->loaded = 0;
    for (size_t i = 0; i < e->nrules; i++) {
        out->loaded += e->rules[i]->cur != NULL;
    }
    out->runs = e->runs;
    out->errors = e->errors;
}
