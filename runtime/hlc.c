/* Hybrid logical clock: see hlc.h. */
#include <errno.h>

#include "sprig/err.h"
#include "sprig/hlc.h"
#include "sprig/util.h"

static int64_t real_wall(void *arg)
{
    (void)arg;
    return sprig_wall_ns();
}

void sprig_hlc_init(sprig_hlc_t *hlc, int64_t drift_ns, sprig_hlc_wall_fn wall, void *arg)
{
    hlc->last = 0;
    hlc->drift_ns = drift_ns > 0 ? drift_ns : SPRIG_HLC_DRIFT_DEFAULT;
    hlc->refused = 0;
    hlc->wall = wall != NULL ? wall : real_wall;
    hlc->wall_arg = arg;
}

int64_t sprig_hlc_now(sprig_hlc_t *hlc)
{
    int64_t wall = hlc->wall(hlc->wall_arg);
    hlc->last = wall > hlc->last ? wall : hlc->last + 1;
    return hlc->last;
}

int sprig_hlc_check(sprig_hlc_t *hlc, int64_t remote, sprig_error_t *err)
{
    if (remote <= 0) {
        return sprig_error_set(err, -EINVAL, "time %lld is not after the Unix epoch",
                               (long long)remote);
    }
    int64_t wall = hlc->wall(hlc->wall_arg);
    if (remote > wall && remote - wall > hlc->drift_ns) {
        char a[40], b[40];
        hlc->refused++;
        return sprig_error_set(err, SPRIG_EDRIFT,
                               "time %s is %.3f s ahead of this clock (%s), beyond the drift "
                               "limit of %.3f s",
                               sprig_time_format(remote, a, sizeof(a)), (remote - wall) / 1e9,
                               sprig_time_format(wall, b, sizeof(b)), hlc->drift_ns / 1e9);
    }
    return 0;
}

void sprig_hlc_observe(sprig_hlc_t *hlc, int64_t remote)
{
    if (remote > hlc->last) {
        hlc->last = remote;
    }
}
