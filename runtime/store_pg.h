/* What the PostgreSQL backend's files share (store_pg.c: connection, layout, commit;
 * store_pg_read.c: reads and repairs). Not a public header. */
#ifndef SPRIG_STORE_PG_H
#define SPRIG_STORE_PG_H

#include "store_pq.h"
#include <stdbool.h>
#include <stdint.h>

#include "sbuf.h"
#include "store_internal.h"

typedef struct store_pg {
    char *uri;          /* as given, password included: never logged */
    const char *device; /* this instance's own device ("": meta, its history upload) */
    PGconn *w;          /* commits (worker), reads and repairs (loop, none in flight) */
    PGconn *r;          /* history pages, opened when first needed */
    bool staged;        /* the staging tables exist on w's session */
    int64_t days[16];   /* history partitions known to exist (days since 1970) */
    size_t ndays;
    int64_t last_retention;
    char writer[37];        /* this store's id in sprig_commits */
    uint64_t unsure;        /* a batch whose last commit failed: it may have committed */
} store_pg_t;

/* Whether target names a PostgreSQL database (postgresql:// or postgres://). */
bool store__pg_target(const char *target);

PGconn *store__pg_connect(const char *uri, int timeout_s, char *why, size_t n);
int store__pg_exec(PGconn *conn, const char *sql, char *why, size_t n);
const char *store__pg_error(PGconn *conn, char *buf, size_t n);
int store__pg_code(PGconn *conn, const PGresult *res);

int store__pg_series_load(sprig_store_t *s, char *why, size_t n);
int store__pg_load(sprig_store_t *s, const sprig_store_visitor_t *v);
int store__pg_meta_get(sprig_store_t *s, const char *key, char *out, size_t n);
int store__pg_meta_set(sprig_store_t *s, const char *key, const char *value);
int store__pg_fix_hash(sprig_store_t *s, const char *up, const char *node, const char *type,
                       const char *key, uint64_t hash);
int store__pg_delete_row(sprig_store_t *s, const char *table, const char *a, const char *b,
                         const char *type, const char *key);
long store__pg_history(sprig_store_t *s, const sprig_store_history_query_t *q,
                       sprig_store_history_fn fn, void *arg);
long store__pg_history_after(sprig_store_t *s, int64_t after_id, size_t limit,
                             sprig_store_history_after_fn fn, void *arg);

#endif
