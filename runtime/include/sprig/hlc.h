/* Hybrid logical clock (DESIGN.md section 3): local writes get max(wall, last + 1), and
 * every time received from elsewhere advances last, so causally later writes win even
 * without an RTC. A remote time too far ahead of the wall clock is refused. */
#ifndef SPRIG_HLC_H
#define SPRIG_HLC_H

#include "sprig/common.h"

#define SPRIG_HLC_DRIFT_DEFAULT (5LL * 60 * 1000000000LL) /* 5 minutes in ns */

typedef int64_t (*sprig_hlc_wall_fn)(void *arg);

/* A plain struct so it can live inside its owner; not thread-safe (loop thread). */
typedef struct sprig_hlc {
    int64_t last;
    int64_t drift_ns;
    uint64_t refused; /* remote times refused for drift */
    sprig_hlc_wall_fn wall;
    void *wall_arg;
} sprig_hlc_t;

/* Sets up hlc with the given drift limit (<= 0 means SPRIG_HLC_DRIFT_DEFAULT) and wall
 * clock (NULL means the real one; tests pass their own). */
SPRIG_API void sprig_hlc_init(sprig_hlc_t *hlc, int64_t drift_ns, sprig_hlc_wall_fn wall,
                              void *arg);
/* Returns a time for a local write: max(wall, last + 1), and remembers it. */
SPRIG_API int64_t sprig_hlc_now(sprig_hlc_t *hlc);
/* Checks a time received from elsewhere without changing the clock: 0 when usable,
 * SPRIG_EDRIFT when it is more than the drift limit ahead of wall time, -EINVAL when it
 * is not positive. Fills err with a sentence that names the time and the limit. */
SPRIG_API int sprig_hlc_check(sprig_hlc_t *hlc, int64_t remote, sprig_error_t *err);
/* Advances last to remote when remote is later (call after sprig_hlc_check passed). */
SPRIG_API void sprig_hlc_observe(sprig_hlc_t *hlc, int64_t remote);

#endif
