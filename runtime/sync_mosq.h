/* libmosquitto, loaded when the first sync link starts rather than linked: a gateway that
 * syncs nowhere (the demo, a Modbus-only site) then never maps libmosquitto and the OpenSSL
 * it links (libssl and libcrypto: about 1.7 MB of resident pages just by being loaded).
 * Each entry has the type of the function it stands for, checked against mosquitto.h. */
#ifndef SPRIG_SYNC_MOSQ_H
#define SPRIG_SYNC_MOSQ_H

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "sprig/err.h"

#define SPRIG_MOSQ_SONAME "libmosquitto.so.1"

typedef struct sprig_mosq {
    __typeof__(mosquitto_lib_init) *lib_init;
    __typeof__(mosquitto_new) *new_;
    __typeof__(mosquitto_destroy) *destroy;
    __typeof__(mosquitto_int_option) *int_option;
    __typeof__(mosquitto_tls_set) *tls_set;
    __typeof__(mosquitto_username_pw_set) *username_pw_set;
    __typeof__(mosquitto_will_set) *will_set;
    __typeof__(mosquitto_connect_callback_set) *connect_callback_set;
    __typeof__(mosquitto_disconnect_callback_set) *disconnect_callback_set;
    __typeof__(mosquitto_message_callback_set) *message_callback_set;
    __typeof__(mosquitto_subscribe_callback_set) *subscribe_callback_set;
    __typeof__(mosquitto_connect_async) *connect_async;
    __typeof__(mosquitto_disconnect) *disconnect;
    __typeof__(mosquitto_socket) *socket;
    __typeof__(mosquitto_loop_read) *loop_read;
    __typeof__(mosquitto_loop_write) *loop_write;
    __typeof__(mosquitto_loop_misc) *loop_misc;
    __typeof__(mosquitto_want_write) *want_write;
    __typeof__(mosquitto_publish) *publish;
    __typeof__(mosquitto_subscribe) *subscribe;
    __typeof__(mosquitto_strerror) *strerror;
    __typeof__(mosquitto_reason_string) *reason_string;
    __typeof__(mosquitto_connack_string) *connack_string;
} sprig_mosq_t;

/* The library's functions; set by sync__mosq_load. */
extern sprig_mosq_t sync__mosq;

/* Loads libmosquitto and initialises it, once per process; later calls return at once.
 * 0, or -ENOENT with the library named, why it failed and what to install in err. */
int sync__mosq_load(sprig_error_t *err);

#endif
