/* libpq loaded on first use: see store_pq.h. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "dl.h"
#include "store_pq.h"

sprig_pq_t store__pq;

static const sprig_dl_sym_t entries[] = {
#define E(field) {"PQ" #field, offsetof(sprig_pq_t, field)}
    E(connectdbParams), E(status),         E(errorMessage), E(finish),
    E(reset),           E(exec),           E(execParams),   E(sendQueryParams),
    E(setSingleRowMode), E(getResult),     E(resultStatus), E(resultErrorField),
    E(ntuples),         E(getvalue),       E(getisnull),    E(cmdTuples),
    E(clear),           E(putCopyData),    E(putCopyEnd),
#undef E
};

int store__pq_load(char *why, size_t n)
{
    static bool loaded;
    if (loaded) {
        return 0;
    }
    char detail[400];
    int rc = sprig_dl_load(SPRIG_PQ_SONAME, entries, sizeof(entries) / sizeof(entries[0]),
                           &store__pq, sizeof(store__pq), detail, sizeof(detail));
    if (rc != 0) {
        snprintf(why, n, "%s; a PostgreSQL store needs the libpq5 package", detail);
        return rc;
    }
    loaded = true;
    return 0;
}
