/* Drivers (DESIGN.md section 8): each drivers/<name>/ exports one descriptor, listed in a
 * table generated at build time. The runtime starts one instance for each live node of a
 * type the driver serves, hands it every change of that node's points that the instance
 * did not write itself, and restarts it when the driver asks (a config change). */
#ifndef SPRIG_DRIVER_H
#define SPRIG_DRIVER_H

#include <uv.h>
#include "sprig/bus.h"
#include "sprig/core.h"

typedef struct sprig_driver_ctx sprig_driver_ctx_t;

#define SPRIG_DRIVER_RESTART 1

struct sprig_driver {
    const char *name;
    const char *const *node_types; /* NULL-terminated */
    /* Creates the instance's state from the node's points; 0 or -errno (the instance is
     * then not started, and the error logged with the node's id). */
    int (*init)(sprig_driver_ctx_t *ctx, void **state);
    /* Starts its handles on the loop (or its port thread); 0 or -errno. */
    int (*start)(void *state);
    /* A point of the node changed, written by someone else (a person, a rule, sync).
     * Returns 0, or SPRIG_DRIVER_RESTART to be stopped and started again with the new
     * config. May be NULL (every change restarts). */
    int (*write)(void *state, const sprig_event_t *ev);
    /* Stops the instance and frees its state (in close callbacks where handles need
     * them). The ctx stays valid until the state is freed, not after. */
    void (*stop)(void *state);
};

/* The built-in drivers, NULL-terminated (generated from CMake's SPRIG_DRIVERS). */
extern const struct sprig_driver *const sprig_drivers[];

/* For drivers: their loop, node and core (borrowed, valid while the instance runs). */
SPRIG_API uv_loop_t *sprig_driver_loop(const sprig_driver_ctx_t *ctx);
SPRIG_API const sprig_node_t *sprig_driver_node(const sprig_driver_ctx_t *ctx);
SPRIG_API sprig_core_t *sprig_driver_core(const sprig_driver_ctx_t *ctx);
/* The node's value point of that type (key "0"), or dflt when absent or tombstoned. */
SPRIG_API double sprig_driver_number(const sprig_driver_ctx_t *ctx, const char *type, double dflt);
/* The node's text point of that type (key "0"), or dflt; valid until the point changes. */
SPRIG_API const char *sprig_driver_text(const sprig_driver_ctx_t *ctx, const char *type,
                                        const char *dflt);
/* Writes points to the instance's node through the write path with origin = the node's
 * id. Returns what sprig_core_write returns (errors are also logged). */
SPRIG_API int sprig_driver_write(sprig_driver_ctx_t *ctx, const sprig_point_t *pts, size_t n);

/* Asks for the instance to be stopped and started again on the next loop turn (a driver
 * whose config lives in other nodes too, such as a Modbus bus's IOs). Loop thread. */
SPRIG_API void sprig_driver_restart(sprig_driver_ctx_t *ctx);

/* The driver manager: starts instances for existing nodes and follows the bus to start,
 * restart and stop them. Returns 0 or -ENOMEM. */
typedef struct sprig_drivers sprig_drivers_t;
SPRIG_API int sprig_drivers_start(sprig_core_t *core, const struct sprig_driver *const *table,
                                  sprig_drivers_t **out);
/* Stops every instance; NULL is a no-op. Run the loop afterwards so close callbacks run. */
SPRIG_API void sprig_drivers_stop(sprig_drivers_t *d);
SPRIG_API size_t sprig_drivers_running(const sprig_drivers_t *d);

#endif
