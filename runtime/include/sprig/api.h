/* The local HTTP/JSON API (DESIGN.md section 9), served by libmicrohttpd on the core's
 * libuv loop: MHD runs without threads of its own, its epoll fd watched by a uv_poll and
 * its timeouts by a uv_timer, so every handler runs on the loop thread and writes through
 * the one write path. Writes answer once their store batch is durable (the connection is
 * suspended meanwhile); /v1/events streams accepted changes as server-sent events. */
#ifndef SPRIG_API_H
#define SPRIG_API_H

#include "sprig/core.h"

typedef struct sprig_api sprig_api_t;

typedef struct sprig_api_opts {
    const char *listen; /* "ADDR:PORT" or "[V6]:PORT"; NULL: 127.0.0.1:8118; port 0 picks one */
    const char *token;  /* bearer token, required for a non-loopback address; NULL: none */
    size_t body_max;    /* largest request body in bytes, but an import's; 0: 1 MiB */
    size_t import_max;  /* largest POST /v1/import body in bytes; 0: 64 MiB */
} sprig_api_opts_t;

/* Starts serving on the core's loop. Returns 0, -EINVAL (bad address, or a non-loopback
 * address without a token), -EADDRINUSE or -ENOMEM, with err naming the address and the
 * fault. Stop with sprig_api_stop. */
SPRIG_API int sprig_api_start(sprig_core_t *core, const sprig_api_opts_t *opts, sprig_api_t **out,
                              sprig_error_t *err);
/* The port actually bound (useful with port 0). */
SPRIG_API unsigned sprig_api_port(const sprig_api_t *api);
/* Ends event streams, answers waiting writes that are durable, closes every connection
 * and frees the server (handles in their close callbacks: run the loop afterwards).
 * NULL is a no-op. */
SPRIG_API void sprig_api_stop(sprig_api_t *api);

#endif
