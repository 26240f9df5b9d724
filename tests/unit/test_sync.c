/* Unit tests of a sync link's broker list (sync_uri.c): the uri of a sync node or
 * --sync-broker is one broker URI or a comma-separated list of them. Hand-picked cases pin
 * the sentences a person reads; thousands of random lists, valid and with one element
 * broken, are checked against a small model of the rules. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sync_internal.h"

static sync_broker_t out[SYNC_BROKERS_MAX];

static int parse(const char *list, size_t *n, sprig_error_t *err)
{
    memset(out, 0x5a, sizeof(out));
    err->msg[0] = '\0';
    return sync__parse_uris(list, out, SYNC_BROKERS_MAX, n, err);
}

static void expect_one(const char *uri, const char *host, int port, bool tls)
{
    size_t n = 99;
    sprig_error_t err;
    int rc = parse(uri, &n, &err);
    if (rc != 0) {
        fail_msg("%s: refused: %s", uri, err.msg);
    }
    assert_int_equal(n, 1);
    assert_string_equal(out[0].host, host);
    assert_int_equal(out[0].port, port);
    assert_int_equal(out[0].tls, tls);
    assert_false(out[0].v311);
}

static void test_single(void **state)
{
    (void)state;
    expect_one("mqtt://broker.example", "broker.example", 1883, false);
    expect_one("mqtts://broker.example", "broker.example", 8883, true);
    expect_one("mqtt://127.0.0.1:1", "127.0.0.1", 1, false);
    expect_one("mqtts://h:65535", "h", 65535, true);
    expect_one("mqtt://h:1884/", "h", 1884, false);
    expect_one("mqtt://h:1884/some/path", "h", 1884, false);
    expect_one("mqtt://[::1]:1885", "::1", 1885, false);
    expect_one("mqtts://[fe80::1]", "fe80::1", 8883, true);
    expect_one("  mqtt://h:7\t", "h", 7, false);
    expect_one("mqtt://h:0007", "h", 7, false);
    assert_string_equal(out[0].uri, "mqtt://h:0007");
}

static void test_list(void **state)
{
    (void)state;
    size_t n = 0;
    sprig_error_t err;
    assert_int_equal(parse(" mqtt://a:1 ,mqtts://b:2,\tmqtt://[::1]:3", &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(out[0].uri, "mqtt://a:1");
    assert_string_equal(out[1].uri, "mqtts://b:2");
    assert_string_equal(out[2].uri, "mqtt://[::1]:3");
    assert_string_equal(out[1].host, "b");
    assert_true(out[1].tls);
    assert_false(out[0].tls || out[2].tls);
    assert_int_equal(out[2].port, 3);
}

/* Each refusal, with the sentence a person reads. */
static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *uri, *msg;
    } cases[] = {
        {"http://x", "sync: uri \"http://x\" must start with mqtt:// or mqtts://"},
        {"mqtt://a:1,http://b",
         "sync: uri \"mqtt://a:1,http://b\" element 2 \"http://b\" must start with mqtt:// "
         "or mqtts://"},
        {"mqtt://a:1,", "sync: uri \"mqtt://a:1,\" element 2 is empty"},
        {",mqtt://a:1", "sync: uri \",mqtt://a:1\" element 1 is empty"},
        {"mqtt://a:1, \t,mqtt://b", "sync: uri \"mqtt://a:1, \t,mqtt://b\" element 2 is empty"},
        {"", "sync: uri is empty (mqtt://host:port)"},
        {"  ", "sync: uri is empty (mqtt://host:port)"},
        {"mqtt://", "sync: uri \"mqtt://\" has no host"},
        {"mqtt://:1883", "sync: uri \"mqtt://:1883\" has no host"},
        {"mqtt://[]:1883", "sync: uri \"mqtt://[]:1883\" has no host"},
        {"mqtt://a:1,mqtts://:2", "sync: uri \"mqtt://a:1,mqtts://:2\" element 2 \"mqtts://:2\" "
                                  "has no host"},
        {"mqtt://a:0", "sync: uri \"mqtt://a:0\": the port must be 1-65535"},
        {"mqtt://a:65536", "sync: uri \"mqtt://a:65536\": the port must be 1-65535"},
        {"mqtt://a:99999999999999999999", "sync: uri \"mqtt://a:99999999999999999999\": the port "
                                          "must be 1-65535"},
        {"mqtt://a:", "sync: uri \"mqtt://a:\": the port must be 1-65535"},
        {"mqtt://a:1x", "sync: uri \"mqtt://a:1x\": the port must be 1-65535"},
        {"mqtt://a:-1", "sync: uri \"mqtt://a:-1\": the port must be 1-65535"},
        {"mqtt://b:1,mqtt://a:x/",
         "sync: uri \"mqtt://b:1,mqtt://a:x/\" element 2 \"mqtt://a:x/\": "
         "the port must be 1-65535"},
        {"mqtt://[::1", "sync: uri \"mqtt://[::1\": an IPv6 host is [address]:port"},
        {"mqtt://[::1]x", "sync: uri \"mqtt://[::1]x\": an IPv6 host is [address]:port"},
        {"MQTT://a", "sync: uri \"MQTT://a\" must start with mqtt:// or mqtts://"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = 99;
        sprig_error_t err;
        int rc = parse(cases[i].uri, &n, &err);
        if (rc != -EINVAL || strcmp(err.msg, cases[i].msg) != 0) {
            fail_msg("uri %s: rc %d, message\n  %s\nexpected\n  %s", cases[i].uri, rc, err.msg,
                     cases[i].msg);
        }
        assert_int_equal(n, 0);
    }
    size_t n = 99;
    sprig_error_t err;
    assert_int_equal(parse(NULL, &n, &err), -EINVAL);
    assert_string_equal(err.msg, "sync: uri is missing (mqtt://host:port)");
    assert_int_equal(n, 0);
}

static void test_limits(void **state)
{
    (void)state;
    char list[2048] = "";
    for (int i = 0; i < SYNC_BROKERS_MAX; i++) {
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%smqtt://h%d:%d", i ? "," : "",
                 i, 1000 + i);
    }
    size_t n = 0;
    sprig_error_t err;
    assert_int_equal(parse(list, &n, &err), 0);
    assert_int_equal(n, SYNC_BROKERS_MAX);
    assert_string_equal(out[SYNC_BROKERS_MAX - 1].host, "h15");
    strcat(list, ",mqtt://one-more");
    assert_int_equal(parse(list, &n, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "lists more than 16 brokers"));
    assert_int_equal(n, 0);

    /* A host of 255 characters fits, 256 do not; an element of 300 does not either. */
    char uri[400];
    snprintf(uri, sizeof(uri), "mqtt://%0255d:1", 0);
    assert_int_equal(parse(uri, &n, &err), 0);
    assert_int_equal(strlen(out[0].host), 255);
    snprintf(uri, sizeof(uri), "mqtt://%0256d:1", 0);
    assert_int_equal(parse(uri, &n, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "the host is longer than 255 characters"));
    snprintf(uri, sizeof(uri), "mqtt://h:1/%0289d", 0);
    assert_int_equal(strlen(uri), 300);
    assert_int_equal(parse(uri, &n, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "is longer than 299 characters"));
}

/* --- random lists against a model --------------------------------------------------- */

typedef struct model {
    char text[300];
    char host[64];
    int port;
    bool tls;
    int fault; /* 0 valid, else the kind of refusal */
} model_t;

static const char *const faults[] = {NULL, "must start with mqtt:// or mqtts://", "has no host",
                                     "the port must be 1-65535", "is empty"};

static void make_element(model_t *m, bool broken)
{
    static const char *const hosts[] = {
        "a", "broker-1.example.org", "127.0.0.1", "10.0.0.7", "[::1]", "h_2"};
    int h = rand() % 6;
    snprintf(m->host, sizeof(m->host), "%s", hosts[h]);
    if (h == 4) {
        snprintf(m->host, sizeof(m->host), "::1");
    }
    m->tls = rand() % 2;
    bool explicit_port = rand() % 3 != 0;
    m->port = explicit_port ? 1 + rand() % 65535 : m->tls ? 8883 : 1883;
    m->fault = broken ? 1 + rand() % 4 : 0;
    const char *scheme = m->tls ? "mqtts://" : "mqtt://";
    const char *path = rand() % 4 == 0 ? "/x" : "";
    char port[16] = "";
    if (explicit_port) {
        snprintf(port, sizeof(port), ":%d", m->port);
    }
    switch (m->fault) {
    case 1:
        scheme = rand() % 2 ? "http://" : "mqtt:/";
        break;
    case 2:
        snprintf(m->text, sizeof(m->text), "%s:%d%s", scheme, m->port, path);
        return;
    case 3:
        snprintf(port, sizeof(port), ":%d", rand() % 2 ? 0 : 65536 + rand() % 1000);
        break;
    case 4:
        m->text[0] = '\0';
        return;
    }
    snprintf(m->text, sizeof(m->text), "%s%s%s%s", scheme, hosts[h], port, path);
}

static void test_random(void **state)
{
    (void)state;
    srand(16);
    for (int round = 0; round < 5000; round++) {
        model_t m[SYNC_BROKERS_MAX];
        int n = 1 + rand() % SYNC_BROKERS_MAX;
        int broken = rand() % 3 == 0 ? rand() % n : -1;
        char list[6000] = "";
        size_t len = 0;
        for (int i = 0; i < n; i++) {
            make_element(&m[i], i == broken);
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s%s%s", i ? "," : "",
                                    rand() % 4 == 0 ? " " : "", m[i].text,
                                    rand() % 4 == 0 ? "\t" : "");
        }
        size_t got = 99;
        sprig_error_t err;
        int rc = parse(list, &got, &err);
        if (broken < 0) {
            if (rc != 0) {
                fail_msg("round %d: %s refused: %s", round, list, err.msg);
            }
            assert_int_equal(got, (size_t)n);
            for (int i = 0; i < n; i++) {
                assert_string_equal(out[i].uri, m[i].text);
                assert_string_equal(out[i].host, m[i].host);
                assert_int_equal(out[i].port, m[i].port);
                assert_int_equal(out[i].tls, m[i].tls);
            }
            continue;
        }
        const model_t *b = &m[broken];
        char where[400];
        if (n > 1) {
            snprintf(where, sizeof(where), "element %d ", broken + 1);
        }
        else {
            where[0] = '\0';
        }
        bool ok = rc == -EINVAL && got == 0 && strstr(err.msg, faults[b->fault]) != NULL &&
                  (n == 1 || strstr(err.msg, where) != NULL);
        if (n == 1 && b->fault == 4) {
            ok = rc == -EINVAL && strcmp(err.msg, "sync: uri is empty (mqtt://host:port)") == 0;
        }
        if (!ok) {
            fail_msg("round %d: %s (element %d broken, fault \"%s\"): rc %d, %zu, \"%s\"", round,
                     list, broken + 1, faults[b->fault], rc, got, err.msg);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),  cmocka_unit_test(test_list),
        cmocka_unit_test(test_refused), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
