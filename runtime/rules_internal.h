/* Internals of the rule engine shared by rules.c (instances, dispatch, timers, saving) and
 * rules_lua.c (the Lua API a rule sees). Not a public header. */
#ifndef SPRIG_RULES_INTERNAL_H
#define SPRIG_RULES_INTERNAL_H

#include "map.h"
#include "sprig/luabox.h"
#include "sprig/rules.h"

#define RULE_MAX_DEPTH 16    /* rule writes triggering rules, deepest chain */
#define RULE_NOTIFY_MAX 10   /* notifications per rule per minute */
#define RULE_STATE_MAX 65536 /* bytes of a serialized state */

typedef struct rule rule_t;

/* The fields of a point change as a handler's `ev` shows them (borrowed). */
typedef struct ev_fields {
    const char *node, *ntype, *ptype, *key, *text, *origin;
    double value;
    int64_t time;
    int tombstone;
} ev_fields_t;

/* One loaded version of a rule: its sandbox. */
typedef struct rule_box {
    rule_t *rule;
    sprig_luabox_t *box;
    const ev_fields_t *ev;  /* the event being handled, or NULL */
    const void *ev_table;   /* its token (the light userdata handed out), or NULL */
    const void *ev_keys[9]; /* the interned field names of ev, by address */
} rule_box_t;

/* A subscription (on) or a timer (every, after, at) of one version of a rule. */
typedef struct rule_hook {
    rule_box_t *rb;
    int handle;
    int fnref;  /* registry: the function to call */
    bool dead;  /* cancelled, or its version unloaded; freed at the next sweep */
    bool timer; /* else a subscription */
    /* subscription filter (owned copies, NULL matches anything) */
    char *node, *ntype, *ptype, *key;
    /* timer */
    int64_t due, period; /* ns; period 0: once */
    int at_secs;         /* at(): seconds after local midnight, or -1 */
    unsigned days;       /* at(): weekday mask, bit 0 = Sunday */
} rule_hook_t;

struct rule {
    sprig_rules_t *eng;
    sprig_node_t *node;
    rule_box_t *cur; /* the running version, or NULL */
    char *script;    /* its source */
    char name[80];   /* chunk name in messages: the file, else the id */
    int next_handle;
    bool pending;   /* load again at the next settle */
    bool stopped;   /* over a budget: stays down until script or disabled change */
    bool ran;       /* ran since the last save */
    bool loaded;    /* a version loaded since the last save */
    bool error_run; /* the error point holds a run error (a good run clears it) */
    uint64_t runs, saved_runs;
    int64_t last_run;
    char *saved_state;
    int64_t notify_since;
    int notify_count;
};

/* An event waiting for its turn (a change written while a handler ran). */
typedef struct rule_event {
    rule_t *rule;
    int handle;
    int depth;
    char *node, *ntype, *ptype, *key, *text, *origin; /* one block, owned by node */
    double value;
    int64_t time;
    int tombstone;
} rule_event_t;

struct sprig_rules {
    sprig_core_t *core;
    sprig_rules_opts_t o;
    sprig_bus_sub_t *sub;
    rule_t **rules;
    size_t nrules, caprules;
    rule_hook_t **hooks; /* every subscription and timer */
    size_t nhooks, caphooks;
    bool index_dirty;
    tree__map_t by_ptype;              /* point type -> rule_bucket_t (subscriptions naming one) */
    char last_ptype[SPRIG_ID_MAX + 1]; /* the point type last looked up */
    void *last_bucket;                 /* ... its bucket */
    bool last_ok;                      /* ... when the index has not changed since */
    const char *rule_type;             /* "rule", interned by the tree */
    rule_hook_t **wild;                /* subscriptions naming no point type */
    size_t nwild, capwild;
    rule_event_t *queue; /* FIFO of waiting events */
    size_t qhead, qlen, qcap;
    rule_t *running;     /* the rule whose Lua runs now, or NULL */
    int depth;           /* chain depth of the running call */
    char chain_msg[512]; /* a change the running call made that went too deep */
    uv_timer_t *wake;    /* next timer (real clock) */
    uv_timer_t *kick;    /* pending loads, next loop turn */
    uv_timer_t *saver;   /* once a second */
    int dispatching;     /* nested deliveries iterating the index */
    bool stopping;
    uint64_t runs, errors;
};

/* rules.c, for the Lua API */
int64_t rules__now(const sprig_rules_t *e);
/* Adds a hook of rb; returns it (handle set) or NULL on -ENOMEM. */
rule_hook_t *rules__hook_add(rule_box_t *rb);
void rules__hook_cancel(rule_box_t *rb, int handle);
/* Arms the libuv timer for the earliest due hook (real clock only). */
void rules__rearm(sprig_rules_t *e);
/* Next due time of an at() hook after `after` (ns), in local time. */
int64_t rules__at_next(int at_secs, unsigned days, int64_t after);
/* Writes the rule's error point when it differs; run says whether a good run clears it. */
void rules__set_error(rule_t *r, const char *msg, bool run);
void rules__log(rule_t *r, int warn, const char *msg);

/* rules_lua.c */
/* Registers the rule API and the library in a fresh box. 0 or -ENOMEM. */
int rules__api_open(rule_box_t *rb, sprig_error_t *err);
/* Pushes the ev an event handler receives: a token whose fields are read on demand
 * while rb->ev is set (rules_lua.c). */
void rules__push_event(rule_box_t *rb, const ev_fields_t *f);
/* Serializes the box's global `state` into *out (a new string, caller frees), inside a
 * call under the box's budgets (reading the global may run the script's metamethods).
 * 0; -EINVAL when it holds what cannot be kept or is over RULE_STATE_MAX bytes;
 * -ETIMEDOUT or -ENOMEM when the budget ran out; *out is NULL then, err says why. Never
 * raises. */
int rules__state_dump(sprig_luabox_t *box, char **out, sprig_error_t *err);
/* Parses a dumped state (under the box's budgets) and pushes it as a table (an empty one
 * when text is empty). 0, or -EINVAL with err set (and an empty table pushed). */
int rules__state_load(sprig_luabox_t *box, const char *text, sprig_error_t *err);

#endif
