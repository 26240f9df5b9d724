/* Benchmark: polling 100 holding registers over Modbus TCP on loopback, against a
 * libmodbus server in this process (its own thread), three ways in one run:
 *   per-register  a bare libmodbus loop, one request per register;
 *   block         a bare libmodbus loop, all 100 registers in one request;
 *   sprig         the modbus driver (a bus with 100 modbusIo nodes, pollPeriod 0 so it
 *                 polls back to back) in a core over a scratch database.
 * Prints register values read per second for each, counted at the server, and sprig's
 * share of the block loop (goal: at least 0.9). Not a test: figures go in the README.
 *
 * usage: bench_modbus [SECONDS] */
#include <errno.h>
#include <modbus.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "sprig/core.h"
#include "sprig/driver.h"
#include "sprig/err.h"

#define BENCH_NAME "bench_modbus"
#include "bench.h"

#define NREG 100

static atomic_ulong served_values; /* registers returned by the server */
static atomic_int server_stop;
static int server_port;

/* The server: one client at a time, counting the registers it returns. */
static void *server_main(void *arg)
{
    int listen_fd = *(int *)arg;
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", server_port);
    modbus_mapping_t *map = modbus_mapping_new(0, 0, NREG, 0);
    for (int i = 0; i < NREG; i++) {
        map->tab_registers[i] = (uint16_t)(1000 + i);
    }
    uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
    int fd = -1;
    while (!atomic_load(&server_stop)) {
        fd_set rd;
        FD_ZERO(&rd);
        int maxfd = listen_fd;
        FD_SET(listen_fd, &rd);
        if (fd >= 0) {
            FD_SET(fd, &rd);
            maxfd = fd > maxfd ? fd : maxfd;
        }
        struct timeval tv = {0, 50000};
        if (select(maxfd + 1, &rd, NULL, NULL, &tv) <= 0) {
            continue;
        }
        if (FD_ISSET(listen_fd, &rd)) {
            if (fd >= 0) {
                close(fd);
            }
            fd = modbus_tcp_accept(ctx, &listen_fd);
            continue;
        }
        modbus_set_socket(ctx, fd);
        int rc = modbus_receive(ctx, q);
        if (rc < 0) {
            close(fd);
            fd = -1;
            continue;
        }
        if (rc > 0 && modbus_reply(ctx, q, rc, map) > 0 && q[7] == 3) {
            atomic_fetch_add(&served_values, (unsigned long)((q[10] << 8) | q[11]));
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    modbus_mapping_free(map);
    modbus_free(ctx);
    return NULL;
}

static double bare(double secs, int per_request)
{
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", server_port);
    if (ctx == NULL || modbus_connect(ctx) != 0) {
        die("bare client", modbus_strerror(errno));
    }
    modbus_set_slave(ctx, 1);
    uint16_t regs[NREG];
    unsigned long start = atomic_load(&served_values);
    double t0 = now_s(), t;
    do {
        for (int a = 0; a < NREG; a += per_request) {
            if (modbus_read_registers(ctx, a, per_request, regs) != per_request) {
                die("bare read", modbus_strerror(errno));
            }
        }
    } while ((t = now_s()) - t0 < secs);
    double rate = (double)(atomic_load(&served_values) - start) / (t - t0);
    modbus_close(ctx);
    modbus_free(ctx);
    return rate;
}

static double with_sprig(double secs)
{
    char dir[] = "/tmp/sprig-bench-modbus-XXXXXX", db[64], uri[32];
    if (mkdtemp(dir) == NULL) {
        die("mkdtemp", strerror(errno));
    }
    snprintf(db, sizeof(db), "%s/b.db", dir);
    snprintf(uri, sizeof(uri), "127.0.0.1:%d", server_port);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sprig_core_t *c;
    sprig_error_t err;
    sprig_core_opts_t co = {.db_path = db};
    if (sprig_core_open(&loop, &co, &c, &err) != 0) {
        die("core", err.msg);
    }
    sprig_point_t bus[] = {
        {.type = "protocol", .text = "TCP"},
        {.type = "uri", .text = uri},
        {.type = "pollPeriod", .value = 0},
        {.type = "timeout", .value = 1000},
    };
    if (sprig_core_create(c, "bus", "modbus", sprig_core_root_id(c), bus, 4, NULL, NULL, &err) !=
        0) {
        die("bus", err.msg);
    }
    for (int i = 0; i < NREG; i++) {
        char id[16];
        snprintf(id, sizeof(id), "r%d", i);
        sprig_point_t io[] = {
            {.type = "id", .value = 1},
            {.type = "address", .value = i},
            {.type = "modbusIoType", .text = "holdingRegister"},
        };
        if (sprig_core_create(c, id, "modbusIo", "bus", io, 3, NULL, NULL, &err) != 0) {
            die("io", err.msg);
        }
    }
    sprig_drivers_t *d;
    if (sprig_drivers_start(c, sprig_drivers, &d) != 0) {
        die("drivers", "out of memory");
    }
    /* Warm up (connect, first values written), then measure. */
    double t0 = now_s();
    while (now_s() - t0 < 0.5) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    unsigned long start = atomic_load(&served_values);
    t0 = now_s();
    double t;
    while ((t = now_s()) - t0 < secs) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    double rate = (double)(atomic_load(&served_values) - start) / (t - t0);
    const sprig_point_t *v = sprig_tree_point(
        sprig_core_tree(c), sprig_tree_node(sprig_core_tree(c), "r42"), "value", "0");
    if (v == NULL || v->value != 1042) {
        die("sprig", "r42 does not hold 1042: the driver did not read the registers");
    }
    sprig_drivers_stop(d);
    sprig_core_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    remove_db(db);
    rmdir(dir);
    return rate;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3;
    if (!(secs > 0)) {
        die("usage", "bench_modbus [SECONDS]");
    }
    int listen_fd = -1;
    for (server_port = 15600; server_port < 15700 && listen_fd < 0; server_port++) {
        modbus_t *ctx = modbus_new_tcp("127.0.0.1", server_port);
        listen_fd = modbus_tcp_listen(ctx, 1);
        modbus_free(ctx);
        if (listen_fd >= 0) {
            break;
        }
    }
    if (listen_fd < 0) {
        die("server", "no free port in 15600-15699");
    }
    pthread_t th;
    pthread_create(&th, NULL, server_main, &listen_fd);
    double per = bare(secs, 1), block = bare(secs, NREG), sprig = with_sprig(secs);
    printf("per-register loop:  %.0f values/s (%.0f requests/s)\n", per, per);
    printf("block loop:         %.0f values/s (%.0f requests/s of %d registers)\n", block,
           block / NREG, NREG);
    printf("sprig modbus:       %.0f values/s (%.0f requests/s)\n", sprig, sprig / NREG);
    printf("sprig / block:      %.2f (goal >= 0.90); sprig / per-register: %.1fx\n", sprig / block,
           sprig / per);
    atomic_store(&server_stop, 1);
    pthread_join(th, NULL);
    close(listen_fd);
    return 0;
}
