/* The Modbus driver's two halves: modbus.c on the loop thread (config from the tree, the
 * points it writes) and modbus_port.c on the port's own thread (libmodbus, blocking). They
 * share a config snapshot, fixed while the thread runs, and talk through two queues under
 * one mutex: writes to do (loop -> port, with a condition variable) and results (port ->
 * loop, with a uv_async_t). STYLE.md, "The loop": threads touch no core state. */
#ifndef SPRIG_MODBUS_INTERNAL_H
#define SPRIG_MODBUS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "modbus_codec.h"
#include "sprig/common.h"

#define MB_BACKOFF_MAX_NS (5LL * 1000000000) /* a silent unit is retried at least this often */
#define MB_REPUBLISH_NS (600LL * 1000000000) /* an unchanged value is written again after */

typedef enum mb_quality { MB_Q_NONE, MB_Q_GOOD, MB_Q_STALE, MB_Q_ERROR } mb_quality_t;

/* Kinds of failure, for the bus's counters. */
typedef enum mb_fault {
    MB_F_TIMEOUT,
    MB_F_CRC,
    MB_F_EXCEPTION,
    MB_F_MALFORMED,
    MB_F_OTHER,
    MB_F_COUNT
} mb_fault_t;

/* One modbusIo node, as configured when the bus started. */
typedef struct mb_io {
    char id[SPRIG_ID_MAX + 1];
    int unit;
    int address;
    mb_io_fmt_t fmt;
    bool read_only;
    int64_t period_ns; /* 0: as fast as the bus allows */
    /* port thread only */
    int64_t due;
    /* loop thread only */
    double value;
    bool has_value;
    int64_t published;
    mb_quality_t quality;
} mb_io_t;

/* The bus as configured when it started. */
typedef struct mb_conf {
    char id[SPRIG_ID_MAX + 1];
    bool server, tcp;
    char port[256]; /* serial device (RTU) */
    char host[256]; /* TCP: host to connect to or listen on */
    int tcp_port;
    int baud, data_bits, stop_bits;
    char parity; /* 'N', 'E', 'O' */
    int unit;    /* server: the unit id answered */
    int64_t period_ns, timeout_ns;
    int retries, max_regs, max_gap;
    int debug;
    mb_io_t *ios;
    size_t nios;
} mb_conf_t;

/* A result from the port thread. io < 0: for the bus only (counters). */
typedef struct mb_result {
    int io;
    mb_quality_t quality;
    double value;     /* when quality is good */
    mb_fault_t fault; /* when not good */
    bool counted;     /* one failed request per result of each IO that failed */
} mb_result_t;

/* A write for the port thread: IO io to value (scaled). */
typedef struct mb_write {
    int io;
    double value;
} mb_write_t;

typedef struct mb_port {
    mb_conf_t conf;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop; /* under mu */
    mb_write_t *writes;
    size_t nwrites, capwrites;
    mb_result_t *results;
    size_t nresults, capresults;
    uint64_t faults[MB_F_COUNT]; /* under mu: counted since the loop last took them */
    uint64_t requests;           /* under mu: requests that got an answer */
    uv_async_t *wake;            /* to the loop: results are waiting */
} mb_port_t;

/* Readies the queues (before anything else touches them). */
void mb_port_init(mb_port_t *p);
/* Starts the port thread (client or server by conf). 0 or -errno. */
int mb_port_start(mb_port_t *p);
/* Asks the thread to stop and joins it (at most one request timeout); the queues stay
 * readable until mb_port_free. */
void mb_port_stop(mb_port_t *p);
void mb_port_free(mb_port_t *p);
/* Queues a write; wakes the thread. Loop thread. 0 or -ENOMEM. */
int mb_port_write(mb_port_t *p, int io, double value);
/* Takes the results (caller frees *out) and the fault counts since the last call. */
size_t mb_port_take(mb_port_t *p, mb_result_t **out, uint64_t faults[MB_F_COUNT]);

#endif
