/* Benchmark: the PostgreSQL store (DESIGN.md section 11). 1,000,000 point writes over
 * 10,000 nodes through the full write path into a PostgreSQL store, until the last batch
 * is durable (points, history, series: what the daemon writes); then, in the same run and
 * database, the raw rate of the same point rows upserted in batches of 10,000 the plain
 * way PostgreSQL offers (COPY into a staging table, one INSERT ... ON CONFLICT per batch,
 * one transaction each) into a table of the points layout. Prints both and their ratio
 * (goal >= 0.5, as for SQLite). Not a test: figures go in the README.
 *
 * usage: bench_store_pg [URI] [WRITES] [NODES]   (URI defaults to $SPRIG_TEST_PG_URI:
 * make bench-fleet runs it on a throwaway server through tests/integration/pg.py --run) */
#include <libpq-fe.h>
#include <stdint.h>
#include <string.h>

#include "sprig/util.h"

#define BENCH_NAME "bench_store_pg"
#include "bench.h"
#include "bench_core.h"

static void exec_or_die(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        die(sql, PQerrorMessage(c));
    }
    PQclear(r);
}

static double bench_raw(const char *uri, long writes, long nodes)
{
    PGconn *c = PQconnectdb(uri);
    if (PQstatus(c) != CONNECTION_OK) {
        die(uri, PQerrorMessage(c));
    }
    exec_or_die(c, "SET client_min_messages = warning");
    exec_or_die(c, "DROP TABLE IF EXISTS raw_points");
    exec_or_die(c, "CREATE TABLE raw_points(device TEXT NOT NULL, node TEXT NOT NULL,"
                   " type TEXT NOT NULL, key TEXT NOT NULL, time BIGINT NOT NULL,"
                   " value DOUBLE PRECISION NOT NULL, text TEXT NOT NULL,"
                   " tombstone SMALLINT NOT NULL, origin TEXT NOT NULL, hash BIGINT NOT NULL,"
                   " PRIMARY KEY(device, node, type, key))");
    exec_or_die(c, "CREATE TEMP TABLE raw_in(device TEXT, node TEXT, type TEXT, key TEXT,"
                   " time BIGINT, value DOUBLE PRECISION, text TEXT, tombstone SMALLINT,"
                   " origin TEXT, hash BIGINT) ON COMMIT DELETE ROWS");
    size_t cap = 10000 * 96;
    char *buf = malloc(cap), id[32];
    int64_t t = sprig_wall_ns();
    double t0 = now_s();
    for (long w = 0; w < writes;) {
        size_t len = 0;
        long end = w + 10000 < writes ? w + 10000 : writes;
        for (; w < end; w++) {
            node_id(w % (nodes - 1), id, sizeof(id));
            len += (size_t)snprintf(buf + len, cap - len,
                                    "\t%s\tvalue\t0\t%" PRId64 "\t%.17g\t\t0\t\t%" PRId64 "\n", id,
                                    t + w, (double)w, (int64_t)(w * 2654435761u));
        }
        exec_or_die(c, "BEGIN");
        PGresult *r = PQexec(c, "COPY raw_in FROM STDIN");
        if (PQresultStatus(r) != PGRES_COPY_IN) {
            die("COPY", PQerrorMessage(c));
        }
        PQclear(r);
        if (PQputCopyData(c, buf, (int)len) != 1 || PQputCopyEnd(c, NULL) != 1) {
            die("COPY", PQerrorMessage(c));
        }
        while ((r = PQgetResult(c)) != NULL) {
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                die("COPY", PQerrorMessage(c));
            }
            PQclear(r);
        }
        exec_or_die(c, "INSERT INTO raw_points SELECT DISTINCT ON (device, node, type, key) *"
                       " FROM raw_in ORDER BY device, node, type, key, time DESC"
                       " ON CONFLICT (device, node, type, key) DO UPDATE SET time = excluded.time,"
                       " value = excluded.value, text = excluded.text,"
                       " tombstone = excluded.tombstone, origin = excluded.origin,"
                       " hash = excluded.hash");
        exec_or_die(c, "COMMIT");
    }
    double dt = now_s() - t0;
    free(buf);
    exec_or_die(c, "DROP TABLE raw_points");
    PQfinish(c);
    return dt;
}

int main(int argc, char **argv)
{
    int a = argc > 1 && strstr(argv[1], "://") != NULL ? 2 : 1;
    const char *uri = a == 2 ? argv[1] : getenv("SPRIG_TEST_PG_URI");
    long writes = argc > a ? atol(argv[a]) : 1000000;
    long nodes = argc > a + 1 ? atol(argv[a + 1]) : 10000;
    if (uri == NULL || writes < 1 || nodes < 2) {
        fprintf(stderr, "usage: bench_store_pg [URI] [WRITES >= 1] [NODES >= 2] (URI, else "
                        "$SPRIG_TEST_PG_URI: a PostgreSQL database it may write)\n");
        return 2;
    }
    uint64_t events = 0;
    double cpu = 0;
    double tc = bench_core(uri, writes, nodes, &events, NULL, &cpu);
    double tr = bench_raw(uri, writes, nodes);
    printf("bench_store_pg: %ld writes over %ld nodes (depth 4), PostgreSQL\n", writes, nodes);
    printf("  write path into the PostgreSQL store (points, history, series): %9.0f writes/s"
           "  (%.2f s, %" PRIu64 " events)\n",
           writes / tc, tc, events);
    printf("  raw upsert of the same point rows (COPY + INSERT ON CONFLICT, 10,000 a batch): "
           "%9.0f rows/s    (%.2f s)\n",
           writes / tr, tr);
    printf("  ratio write path / raw: %.2f (goal >= 0.50)\n", tr / tc);
    return 0;
}
