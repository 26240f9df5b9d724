/* In-process publish/subscribe of accepted changes, by node id, node type and point type.
 * Subscribers: the printer of `sprig run`, drivers, and later rules, sync and the api.
 * Loop thread only. */
#ifndef SPRIG_BUS_H
#define SPRIG_BUS_H

#include "sprig/point.h"

typedef struct sprig_bus sprig_bus_t;
typedef struct sprig_bus_sub sprig_bus_sub_t;

/* One accepted change: a point of a node (edge_up NULL) or of the edge edge_up -> node.
 * Everything is borrowed and valid only during the callback. */
typedef struct sprig_event {
    const char *node;      /* id of the node (the child, for an edge point) */
    const char *node_type; /* its type */
    const char *edge_up;   /* parent id for an edge point, else NULL */
    const sprig_point_t *point;
    const void *source; /* the link it came in on (sync), NULL for a local write */
    uint64_t batch;     /* store batch that holds it (sprig_core_when_durable) */
} sprig_event_t;

typedef void (*sprig_bus_cb)(const sprig_event_t *ev, void *arg);

/* Filter of a subscription: a NULL field matches anything. For an edge point, node and
 * node_type are those of the child. */
typedef struct sprig_bus_filter {
    const char *node;
    const char *node_type;
    const char *point_type;
} sprig_bus_filter_t;

SPRIG_API int sprig_bus_open(sprig_bus_t **out);
/* Frees the bus and every subscription; NULL is a no-op. */
SPRIG_API void sprig_bus_close(sprig_bus_t *bus);
/* Subscribes cb with a copy of filter (filter NULL: everything). Returns 0 or -ENOMEM;
 * *out (optional) is the handle for sprig_bus_unsubscribe. */
SPRIG_API int sprig_bus_subscribe(sprig_bus_t *bus, const sprig_bus_filter_t *filter,
                                  sprig_bus_cb cb, void *arg, sprig_bus_sub_t **out);
/* Removes a subscription; safe from inside any callback (it gets no further events). */
SPRIG_API void sprig_bus_unsubscribe(sprig_bus_t *bus, sprig_bus_sub_t *sub);
/* Calls every matching subscriber in the order they subscribed. A subscriber may
 * publish (nested) and subscribe or unsubscribe from its callback. */
SPRIG_API void sprig_bus_publish(sprig_bus_t *bus, const sprig_event_t *ev);
SPRIG_API uint64_t sprig_bus_published(const sprig_bus_t *bus);

#endif
