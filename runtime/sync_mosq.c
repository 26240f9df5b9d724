/* libmosquitto loaded on first use: see sync_mosq.h. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "dl.h"
#include "sync_mosq.h"

sprig_mosq_t sync__mosq;

static const sprig_dl_sym_t entries[] = {
#define E(field, fn) {#fn, offsetof(sprig_mosq_t, field)}
    E(lib_init, mosquitto_lib_init),
    E(new_, mosquitto_new),
    E(destroy, mosquitto_destroy),
    E(int_option, mosquitto_int_option),
    E(tls_set, mosquitto_tls_set),
    E(username_pw_set, mosquitto_username_pw_set),
    E(will_set, mosquitto_will_set),
    E(connect_callback_set, mosquitto_connect_callback_set),
    E(disconnect_callback_set, mosquitto_disconnect_callback_set),
    E(message_callback_set, mosquitto_message_callback_set),
    E(subscribe_callback_set, mosquitto_subscribe_callback_set),
    E(connect_async, mosquitto_connect_async),
    E(disconnect, mosquitto_disconnect),
    E(socket, mosquitto_socket),
    E(loop_read, mosquitto_loop_read),
    E(loop_write, mosquitto_loop_write),
    E(loop_misc, mosquitto_loop_misc),
    E(want_write, mosquitto_want_write),
    E(publish, mosquitto_publish),
    E(subscribe, mosquitto_subscribe),
    E(strerror, mosquitto_strerror),
    E(reason_string, mosquitto_reason_string),
    E(connack_string, mosquitto_connack_string),
#undef E
};

int sync__mosq_load(sprig_error_t *err)
{
    static bool loaded;
    if (loaded) {
        return 0;
    }
    char why[512];
    int rc = sprig_dl_load(SPRIG_MOSQ_SONAME, entries, sizeof(entries) / sizeof(entries[0]),
                           &sync__mosq, sizeof(sync__mosq), why, sizeof(why));
    if (rc != 0) {
        return sprig_error_set(err, rc,
                               "sync: %s; sync needs the libmosquitto1 package, version 2.0 or "
                               "newer",
                               why);
    }
    sync__mosq.lib_init();
    loaded = true;
    return 0;
}
