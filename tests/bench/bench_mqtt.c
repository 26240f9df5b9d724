/* Benchmark helper: a bare libmosquitto loop publishing N QoS 1 messages of SIZE bytes to
 * one topic and receiving them back through the broker, the floor that sync's live
 * forwarding is compared with (tests/bench/bench_sync.py). Prints messages/s.
 *
 * usage: bench_mqtt HOST PORT [N [SIZE]] */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_NAME "bench_mqtt"
#include "bench.h"

static long received;

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m, (void)obj, (void)msg;
    received++;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_mqtt HOST PORT [N [SIZE]]\n");
        return 2;
    }
    long n = argc > 3 ? atol(argv[3]) : 100000;
    int size = argc > 4 ? atoi(argv[4]) : 100;
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new("bench-mqtt", true, NULL);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_message_callback_set(m, on_message);
    if (m == NULL || mosquitto_connect(m, argv[1], atoi(argv[2]), 30) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench_mqtt: cannot connect to %s:%s\n", argv[1], argv[2]);
        return 1;
    }
    mosquitto_subscribe(m, NULL, "bench/loop", 1);
    for (int i = 0; i < 20; i++) {
        mosquitto_loop(m, 10, 1);
    }
    char *payload = calloc(1, (size_t)size);
    memset(payload, 'x', (size_t)size);
    double t0 = now_s();
    long sent = 0;
    while (received < n && now_s() - t0 < 60) {
        /* Keep a window of messages in flight, as a publisher that does not wait would. */
        while (sent < n && sent - received < 1000) {
            if (mosquitto_publish(m, NULL, "bench/loop", size, payload, 1, false) != 0) {
                break;
            }
            sent++;
        }
        mosquitto_loop(m, 1, 50);
    }
    double dt = now_s() - t0;
    printf("%.0f\n", received / dt);
    free(payload);
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    return received == n ? 0 : 1;
}
