/* Benchmark: 1,000,000 point writes over 10,000 nodes (depth 4) through the full write
 * path (check, HLC, merge, incremental hashes, store batch with history, bus), measured
 * until the last batch is durable; then, in the same run, the raw rate of a plain SQLite
 * batched upsert of the same rows into a table of the same layout, with the same
 * pragmas. Prints both and their ratio. Not a test: figures go in the README.
 *
 * usage: bench_write [WRITES] [NODES] */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sprig/core.h"
#include "sprig/err.h"
#include "sprig/hash.h"
#include "sprig/schema.h"
#include "sprig/util.h"

#define BENCH_NAME "bench_write"
#include "bench.h"
#include "bench_core.h"

static void exec_or_die(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        die(sql, msg != NULL ? msg : "?");
    }
}

static double bench_raw(const char *path, long writes, long nodes)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char id[32];
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        die(path, sqlite3_errmsg(db));
    }
    exec_or_die(db, "PRAGMA journal_mode = WAL");
    exec_or_die(db, "PRAGMA synchronous = FULL");
    exec_or_die(db, "CREATE TABLE points(node TEXT NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL,"
                    " time INTEGER NOT NULL, value REAL NOT NULL, text TEXT NOT NULL,"
                    " tombstone INTEGER NOT NULL, origin TEXT NOT NULL, hash INTEGER NOT NULL,"
                    " PRIMARY KEY(node, type, key)) WITHOUT ROWID");
    sqlite3_prepare_v2(db,
                       "INSERT INTO points(node, type, key, time, value, text, tombstone, origin,"
                       " hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                       " ON CONFLICT(node, type, key) DO UPDATE SET time = excluded.time,"
                       " value = excluded.value, text = excluded.text,"
                       " tombstone = excluded.tombstone, origin = excluded.origin,"
                       " hash = excluded.hash",
                       -1, &st, NULL);
    int64_t t = sprig_wall_ns();
    double t0 = now_s();
    for (long w = 0; w < writes; w++) {
        if (w % 10000 == 0) {
            exec_or_die(db, "BEGIN");
        }
        node_id(w % (nodes - 1), id, sizeof(id));
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, "value", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, "0", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, t + w);
        sqlite3_bind_double(st, 5, (double)w);
        sqlite3_bind_text(st, 6, "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 7, 0);
        sqlite3_bind_text(st, 8, "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, (sqlite3_int64)w * 2654435761u);
        if (sqlite3_step(st) != SQLITE_DONE) {
            die("upsert", sqlite3_errmsg(db));
        }
        sqlite3_reset(st);
        if (w % 10000 == 9999 || w == writes - 1) {
            exec_or_die(db, "COMMIT");
        }
    }
    double dt = now_s() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return dt;
}

/* History appends of the same 1M samples over `series` series, three ways: no index; a
 * per-series index (series, time) kept row by row; and the store's way, appends plus a
 * bulk-filled index (sorted by series) every 200,000 rows. Same pragmas as the store. */
static double bench_history(const char *path, long writes, long series, int mode)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char sql[256];
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        die(path, sqlite3_errmsg(db));
    }
    exec_or_die(db, "PRAGMA journal_mode = WAL");
    exec_or_die(db, "PRAGMA synchronous = FULL");
    exec_or_die(db, "PRAGMA cache_size = -32768");
    exec_or_die(db, "CREATE TABLE history(id INTEGER PRIMARY KEY AUTOINCREMENT,"
                    " series INTEGER NOT NULL, time INTEGER NOT NULL, value REAL NOT NULL,"
                    " text TEXT NOT NULL, tombstone INTEGER NOT NULL, origin TEXT NOT NULL,"
                    " accepted INTEGER NOT NULL)");
    if (mode == 1) {
        exec_or_die(db, "CREATE INDEX history_series ON history(series, time)");
    }
    if (mode == 2) {
        exec_or_die(db, "CREATE TABLE history_idx(series INTEGER NOT NULL, time INTEGER NOT NULL,"
                        " id INTEGER NOT NULL, PRIMARY KEY(series, time, id)) WITHOUT ROWID");
    }
    sqlite3_prepare_v2(db,
                       "INSERT INTO history(series, time, value, text, tombstone, origin, accepted)"
                       " VALUES(?1, ?2, ?3, '', 0, '', ?2)",
                       -1, &st, NULL);
    int64_t t = sprig_wall_ns();
    long indexed = 0;
    double t0 = now_s();
    for (long w = 0; w < writes; w++) {
        if (w % 10000 == 0) {
            exec_or_die(db, "BEGIN");
        }
        sqlite3_bind_int64(st, 1, 1 + w % series);
        sqlite3_bind_int64(st, 2, t + w);
        sqlite3_bind_double(st, 3, (double)w);
        if (sqlite3_step(st) != SQLITE_DONE) {
            die("append", sqlite3_errmsg(db));
        }
        sqlite3_reset(st);
        if (w % 10000 == 9999 || w == writes - 1) {
            if (mode == 2 && (w + 1 - indexed >= 200000 || w == writes - 1)) {
                snprintf(sql, sizeof(sql),
                         "INSERT INTO history_idx SELECT series, time, id FROM history"
                         " WHERE id > %ld ORDER BY series, time, id",
                         indexed);
                exec_or_die(db, sql);
                indexed = w + 1;
            }
            exec_or_die(db, "COMMIT");
        }
    }
    double dt = now_s() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return dt;
}

int main(int argc, char **argv)
{
    long writes = argc > 1 ? atol(argv[1]) : 1000000;
    long nodes = argc > 2 ? atol(argv[2]) : 10000;
    char dir[] = "/tmp/sprig-bench-XXXXXX";
    char core_db[600], raw_db[600];
    uint64_t events = 0;
    if (writes < 1 || nodes < 2 || mkdtemp(dir) == NULL) {
        fprintf(stderr, "usage: bench_write [WRITES >= 1] [NODES >= 2]\n");
        return 2;
    }
    snprintf(core_db, sizeof(core_db), "%s/core.db", dir);
    snprintf(raw_db, sizeof(raw_db), "%s/raw.db", dir);

    double cpu_plain = 0, cpu_schema = 0;
    double tc = bench_core(core_db, writes, nodes, &events, NULL, &cpu_plain);
    remove_db(core_db);
    /* The same writes, each checked against a schema type that declares the point. */
    char schema_dir[600], schema_file[700];
    snprintf(schema_dir, sizeof(schema_dir), "%s/schema", dir);
    snprintf(schema_file, sizeof(schema_file), "%s/bench.lua", schema_dir);
    mkdir(schema_dir, 0755);
    FILE *f = fopen(schema_file, "w");
    if (f == NULL) {
        die(schema_file, "cannot be written");
    }
    fputs("nodetype \"benchNode\" {\n"
          "  points = {\n"
          "    value = { kind = \"number\", min = -1e12, max = 1e12, unit = \"W\" },\n"
          "    mode = { kind = \"enum\", values = { \"auto\", \"manual\" } },\n"
          "  },\n"
          "}\n",
          f);
    fclose(f);
    const char *dirs[] = {schema_dir};
    sprig_schema_t *schema = NULL;
    if (sprig_schema_load(dirs, 1, &schema, NULL, NULL) != 0) {
        die(schema_file, "does not load");
    }
    uint64_t events2 = 0;
    double ts = bench_core(core_db, writes, nodes, &events2, schema, &cpu_schema);
    sprig_schema_free(schema);
    unlink(schema_file);
    rmdir(schema_dir);
    double tr = bench_raw(raw_db, writes, nodes);
    double th[3];
    for (int mode = 0; mode < 3; mode++) {
        remove_db(raw_db);
        th[mode] = bench_history(raw_db, writes, nodes - 1, mode);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    remove_db(core_db);
    remove_db(raw_db);
    rmdir(dir);

    double rc = writes / tc, rr = writes / tr;
    printf("bench_write: %ld writes over %ld nodes (depth 4), WAL, synchronous=FULL\n", writes,
           nodes);
    printf("  write path (check, HLC, merge, hashes, store + history, bus): %9.0f writes/s"
           "  (%.2f s, %" PRIu64 " events)\n",
           rc, tc, events);
    printf("  the same, each write checked against a schema type:           %9.0f writes/s"
           "  (%.2f s)\n",
           writes / ts, ts);
    printf("  loop thread CPU per write: %.0f ns plain, %.0f ns schema-checked: checking costs "
           "%.1f%% (goal <= 10%%)\n",
           1e9 * cpu_plain / writes, 1e9 * cpu_schema / writes,
           100.0 * (cpu_schema - cpu_plain) / cpu_plain);
    printf("  raw SQLite batched upsert (10,000 per transaction):           %9.0f rows/s"
           "    (%.2f s)\n",
           rr, tr);
    printf("  ratio write path / raw: %.2f (goal >= 0.50)\n", rc / rr);
    printf("  history append, %ld series, no index:                         %9.0f rows/s\n",
           nodes - 1, writes / th[0]);
    printf("  history append, per-series index kept row by row:             %9.0f rows/s\n",
           writes / th[1]);
    printf("  history append, per-series index filled in bulk (the store):  %9.0f rows/s\n",
           writes / th[2]);
    printf("  peak RSS: %ld kB\n", ru.ru_maxrss);
    return 0;
}
