/* In-process publish/subscribe: see bus.h. Subscriptions are a list scanned in order;
 * a gateway has tens of subscribers, not thousands. Unsubscribing inside a callback
 * only marks the entry, and the list is swept when the outermost publish returns. */
#include <errno.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/bus.h"
#include "sprig/util.h"

struct sprig_bus_sub {
    struct sprig_bus_sub *next;
    char *node, *node_type, *point_type; /* NULL: any */
    sprig_bus_cb cb;
    void *arg;
    int dead;
};

struct sprig_bus {
    sprig_bus_sub_t *head, *tail;
    int depth; /* publish nesting */
    int dirty; /* some entries are dead */
    uint64_t published;
};

int sprig_bus_open(sprig_bus_t **out)
{
    *out = sprig_calloc(1, sizeof(**out));
    return *out != NULL ? 0 : -ENOMEM;
}

static void sub_free(sprig_bus_sub_t *s)
{
    sprig_free(s->node);
    sprig_free(s->node_type);
    sprig_free(s->point_type);
    sprig_free(s);
}

void sprig_bus_close(sprig_bus_t *bus)
{
    if (bus == NULL) {
        return;
    }
    sprig_bus_sub_t *s = bus->head;
    while (s != NULL) {
        sprig_bus_sub_t *next = s->next;
        sub_free(s);
        s = next;
    }
    sprig_free(bus);
}

/* Copies an optional filter string; returns -ENOMEM on failure. */
static int dup_opt(const char *src, char **dst)
{
    *dst = NULL;
    if (src == NULL) {
        return 0;
    }
    *dst = sprig_strdup(src);
    return *dst != NULL ? 0 : -ENOMEM;
}

int sprig_bus_subscribe(sprig_bus_t *bus, const sprig_bus_filter_t *filter, sprig_bus_cb cb,
                        void *arg, sprig_bus_sub_t **out)
{
    sprig_bus_sub_t *s = sprig_calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    if (filter != NULL &&
        (dup_opt(filter->node, &s->node) != 0 || dup_opt(filter->node_type, &s->node_type) != 0 ||
         dup_opt(filter->point_type, &s->point_type) != 0)) {
        sub_free(s);
        return -ENOMEM;
    }
    s->cb = cb;
    s->arg = arg;
    if (bus->tail != NULL) {
        bus->tail->next = s;
    }
    else {
        bus->head = s;
    }
    bus->tail = s;
    if (out != NULL) {
        *out = s;
    }
    return 0;
}

static void sweep(sprig_bus_t *bus)
{
    sprig_bus_sub_t **pp = &bus->head;
    bus->tail = NULL;
    while (*pp != NULL) {
        sprig_bus_sub_t *s = *pp;
        if (s->dead) {
            *pp = s->next;
            sub_free(s);
        }
        else {
            bus->tail = s;
            pp = &s->next;
        }
    }
    bus->dirty = 0;
}

void sprig_bus_unsubscribe(sprig_bus_t *bus, sprig_bus_sub_t *sub)
{
    if (sub == NULL) {
        return;
    }
    sub->dead = 1;
    bus->dirty = 1;
    if (bus->depth == 0) {
        sweep(bus);
    }
}

static int field_matches(const char *want, const char *have)
{
    return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

void sprig_bus_publish(sprig_bus_t *bus, const sprig_event_t *ev)
{
    bus->published++;
    bus->depth++;
    /* Entries added during this publish are at the tail and see this event too; that is
     * harmless and keeps the walk simple. */
    for (sprig_bus_sub_t *s = bus->head; s != NULL; s = s->next) {
        if (s->dead || !field_matches(s->node, ev->node) ||
            !field_matches(s->node_type, ev->node_type) ||
            !field_matches(s->point_type, ev->point->type)) {
            continue;
        }
        s->cb(ev, s->arg);
    }
    if (--bus->depth == 0 && bus->dirty) {
        sweep(bus);
    }
}

uint64_t sprig_bus_published(const sprig_bus_t *bus)
{
    return bus->published;
}
