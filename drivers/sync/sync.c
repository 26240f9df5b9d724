/* sync: the downstream end of sync over MQTT (DESIGN.md section 5), one link per `sync`
 * node, through runtime/sync.c. Its config is the node's points (schema/sync.lua); the
 * password is read from passwordFile, never kept in the tree. A config change restarts
 * the link; the status points it writes itself do not reach here. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sprig/alloc.h"
#include "sprig/driver.h"
#include "sprig/log.h"
#include "sprig/sync.h"

typedef struct syncd {
    sprig_driver_ctx_t *ctx;
    sprig_sync_t *link;
    char password[256];
    bool disabled;
} syncd_t;

static const char *text_or_null(sprig_driver_ctx_t *ctx, const char *type)
{
    const char *t = sprig_driver_text(ctx, type, "");
    return t[0] != '\0' ? t : NULL;
}

/* A link that cannot start says why on its node (state error, error), not in the log only. */
static void refuse(sprig_driver_ctx_t *ctx, const char *msg)
{
    sprig_log_error("sync %s: %s", sprig_node_id(sprig_driver_node(ctx)), msg);
    sprig_point_t pts[] = {{.type = "state", .text = "error"}, {.type = "error", .text = msg}};
    sprig_driver_write(ctx, pts, 2);
}

/* Reads the first line of a password file; 0 or -errno (reported on the node). */
static int read_password(sprig_driver_ctx_t *ctx, const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int err = errno;
        char msg[512];
        snprintf(msg, sizeof(msg), "passwordFile %.400s cannot be read: %s", path, strerror(err));
        refuse(ctx, msg);
        return -err;
    }
    if (fgets(out, (int)n, f) == NULL) {
        out[0] = '\0';
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int syncd_init(sprig_driver_ctx_t *ctx, void **state)
{
    syncd_t *d = sprig_calloc(1, sizeof(*d));
    if (d == NULL) {
        return -ENOMEM;
    }
    d->ctx = ctx;
    d->disabled = sprig_driver_number(ctx, "disabled", 0) != 0;
    const char *pw = text_or_null(ctx, "passwordFile");
    if (pw != NULL && read_password(ctx, pw, d->password, sizeof(d->password)) != 0) {
        sprig_free(d);
        return -EINVAL;
    }
    *state = d;
    return 0;
}

static int syncd_start(void *state)
{
    syncd_t *d = state;
    if (d->disabled) {
        return 0;
    }
    sprig_driver_ctx_t *ctx = d->ctx;
    const char *id = sprig_node_id(sprig_driver_node(ctx));
    sprig_sync_opts_t o = {
        .uri = text_or_null(ctx, "uri"),
        .ca_file = text_or_null(ctx, "caFile"),
        .cert_file = text_or_null(ctx, "certFile"),
        .key_file = text_or_null(ctx, "keyFile"),
        .username = text_or_null(ctx, "username"),
        .password = d->password[0] != '\0' ? d->password : NULL,
        .device_id = text_or_null(ctx, "deviceId"),
        .node_id = id,
        .period_s = sprig_driver_number(ctx, "period", 20),
        .max_msg = (size_t)sprig_driver_number(ctx, "maxMessage", 0),
    };
    sprig_error_t err;
    int rc = sprig_sync_start(sprig_driver_core(ctx), &o, &d->link, &err);
    if (rc != 0) {
        refuse(ctx, err.msg);
    }
    return rc;
}

static int syncd_write(void *state, const sprig_event_t *ev)
{
    (void)state;
    return strcmp(ev->point->type, "description") == 0 ? 0 : SPRIG_DRIVER_RESTART;
}

static void syncd_stop(void *state)
{
    syncd_t *d = state;
    sprig_sync_stop(d->link);
    memset(d->password, 0, sizeof(d->password));
    sprig_free(d);
}

static const char *const syncd_types[] = {"sync", NULL};

const struct sprig_driver sprig_driver_sync = {
    .name = "sync",
    .node_types = syncd_types,
    .init = syncd_init,
    .start = syncd_start,
    .write = syncd_write,
    .stop = syncd_stop,
};
