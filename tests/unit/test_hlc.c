/* Unit tests of the hybrid logical clock (hlc.h, DESIGN.md section 3): local times are
 * max(wall, last + 1) and strictly increase whatever the wall clock does, observed remote
 * times push later local writes after them, and remote times too far ahead are refused
 * with a clear message and counted. A fake wall clock drives every test. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "sprig/err.h"
#include "sprig/hlc.h"
#include "sprig/util.h"

/* 2026-01-01T00:00:00Z in ns: a plausible wall time. */
#define T0 (1767225600LL * 1000000000LL)
#define SEC 1000000000LL

typedef struct fake_wall {
    int64_t now;
    int calls;
} fake_wall_t;

static int64_t fake_wall(void *arg)
{
    fake_wall_t *w = arg;
    w->calls++;
    return w->now;
}

static void test_init_defaults(void **state)
{
    (void)state;
    fake_wall_t w = {T0, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, fake_wall, &w);
    assert_int_equal(h.drift_ns, 5LL * 60 * SEC);
    assert_int_equal(SPRIG_HLC_DRIFT_DEFAULT, 300LL * SEC);
    assert_int_equal(h.last, 0);
    assert_int_equal(h.refused, 0);

    sprig_hlc_init(&h, -7, fake_wall, &w);
    assert_int_equal(h.drift_ns, SPRIG_HLC_DRIFT_DEFAULT);

    sprig_hlc_init(&h, 10 * SEC, fake_wall, &w);
    assert_int_equal(h.drift_ns, 10 * SEC);
}

static void test_now_follows_wall(void **state)
{
    (void)state;
    fake_wall_t w = {T0, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, fake_wall, &w);

    assert_int_equal(sprig_hlc_now(&h), T0);
    assert_true(w.calls > 0);
    w.now = T0 + 1000;
    assert_int_equal(sprig_hlc_now(&h), T0 + 1000);
    w.now = T0 + 5 * SEC;
    assert_int_equal(sprig_hlc_now(&h), T0 + 5 * SEC);
    assert_int_equal(h.last, T0 + 5 * SEC);
}

static void test_now_wall_stands_still(void **state)
{
    (void)state;
    fake_wall_t w = {T0, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, fake_wall, &w);

    int64_t prev = sprig_hlc_now(&h);
    assert_int_equal(prev, T0);
    for (int i = 1; i <= 1000; i++) {
        int64_t t = sprig_hlc_now(&h);
        assert_int_equal(t, prev + 1);
        assert_int_equal(t, T0 + i);
        prev = t;
    }
    /* Once the wall clock moves past last again, it is followed again. */
    w.now = T0 + SEC;
    assert_int_equal(sprig_hlc_now(&h), T0 + SEC);
}

static void test_now_wall_goes_back(void **state)
{
    (void)state;
    fake_wall_t w = {T0, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, fake_wall, &w);

    assert_int_equal(sprig_hlc_now(&h), T0);
    w.now = T0 - 3600 * SEC; /* NTP stepped the clock back an hour */
    assert_int_equal(sprig_hlc_now(&h), T0 + 1);
    assert_int_equal(sprig_hlc_now(&h), T0 + 2);
    w.now = T0 - 1;
    assert_int_equal(sprig_hlc_now(&h), T0 + 3);
    w.now = T0 + 3; /* equal to last: still last + 1 */
    assert_int_equal(sprig_hlc_now(&h), T0 + 4);
    w.now = T0 + 100;
    assert_int_equal(sprig_hlc_now(&h), T0 + 100);
}

static void test_now_strictly_increasing_random_wall(void **state)
{
    (void)state;
    fake_wall_t w = {T0, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, fake_wall, &w);

    uint64_t x = 0x9E3779B97F4A7C15ULL;
    int64_t prev = 0;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        w.now = T0 + (int64_t)(x % 2000) - 1000; /* jitters back and forth */
        int64_t t = sprig_hlc_now(&h);
        assert_true(t > prev);
        assert_true(t >= w.now);
        assert_true(t == w.now || t == prev + 1);
        prev = t;
    }
}

static void test_observe_advances(void **state)
{
    (void)state;
    fake_wall_t w = {T0, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, fake_wall, &w);

    assert_int_equal(sprig_hlc_now(&h), T0);
    /* A remote write 10 s ahead of our (slow) clock: the next local write is after it. */
    int64_t remote = T0 + 10 * SEC;
    assert_int_equal(sprig_hlc_check(&h, remote, NULL), 0);
    sprig_hlc_observe(&h, remote);
    assert_int_equal(h.last, remote);
    int64_t t = sprig_hlc_now(&h);
    assert_int_equal(t, remote + 1);
    assert_true(t > remote);
    assert_int_equal(sprig_hlc_now(&h), remote + 2);

    /* An older remote time does not move last back. */
    sprig_hlc_observe(&h, T0 - SEC);
    assert_int_equal(h.last, remote + 2);
    assert_int_equal(sprig_hlc_now(&h), remote + 3);

    /* Observing exactly last changes nothing either. */
    sprig_hlc_observe(&h, remote + 3);
    assert_int_equal(sprig_hlc_now(&h), remote + 4);

    /* Once the wall clock catches up, it leads again. */
    w.now = remote + SEC;
    assert_int_equal(sprig_hlc_now(&h), remote + SEC);
}

static void test_observe_without_rtc(void **state)
{
    (void)state;
    /* A gateway without an RTC boots at 1970 + a few seconds. */
    fake_wall_t w = {5 * SEC, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, fake_wall, &w);
    assert_int_equal(sprig_hlc_now(&h), 5 * SEC);
    sprig_hlc_observe(&h, T0);
    assert_int_equal(sprig_hlc_now(&h), T0 + 1);
}

static void test_check_within_drift(void **state)
{
    (void)state;
    fake_wall_t w = {T0, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, fake_wall, &w);
    sprig_error_t err = {{0}};

    assert_int_equal(sprig_hlc_check(&h, T0, &err), 0);
    assert_int_equal(sprig_hlc_check(&h, T0 - 3600 * SEC, &err), 0); /* old is fine */
    assert_int_equal(sprig_hlc_check(&h, 1, &err), 0);
    assert_int_equal(sprig_hlc_check(&h, T0 + SEC, &err), 0);
    /* Exactly at the limit is still accepted. */
    assert_int_equal(sprig_hlc_check(&h, T0 + SPRIG_HLC_DRIFT_DEFAULT, &err), 0);
    assert_int_equal(sprig_hlc_check(&h, T0 + SPRIG_HLC_DRIFT_DEFAULT - 1, &err), 0);
    assert_int_equal(h.refused, 0);
    /* check does not change the clock. */
    assert_int_equal(h.last, 0);
    assert_int_equal(sprig_hlc_now(&h), T0);
}

static void test_check_beyond_drift(void **state)
{
    (void)state;
    fake_wall_t w = {T0, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, fake_wall, &w);
    sprig_hlc_now(&h);
    sprig_error_t err = {{0}};

    int64_t remote = T0 + SPRIG_HLC_DRIFT_DEFAULT + 1;
    assert_int_equal(sprig_hlc_check(&h, remote, &err), SPRIG_EDRIFT);
    assert_int_equal(h.refused, 1);
    /* The message names the refused time and the limit. */
    char when[40];
    sprig_time_format(remote, when, sizeof(when));
    assert_non_null(strstr(err.msg, when));
    assert_non_null(strstr(err.msg, "300.000"));
    assert_non_null(strstr(err.msg, "drift"));
    /* The refused time did not move the clock. */
    assert_int_equal(h.last, T0);
    assert_int_equal(sprig_hlc_now(&h), T0 + 1);

    /* Each refusal is counted; a NULL err is allowed. */
    assert_int_equal(sprig_hlc_check(&h, T0 + 3600 * SEC, NULL), SPRIG_EDRIFT);
    assert_int_equal(h.refused, 2);
    /* An accepted time does not count. */
    assert_int_equal(sprig_hlc_check(&h, T0, NULL), 0);
    assert_int_equal(h.refused, 2);
    /* INT64_MAX is far ahead, not an overflow. */
    assert_int_equal(sprig_hlc_check(&h, INT64_MAX, NULL), SPRIG_EDRIFT);
    assert_int_equal(h.refused, 3);
}

static void test_check_custom_drift(void **state)
{
    (void)state;
    fake_wall_t w = {T0, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 2 * SEC, fake_wall, &w);
    sprig_error_t err = {{0}};

    assert_int_equal(sprig_hlc_check(&h, T0 + 2 * SEC, &err), 0);
    assert_int_equal(sprig_hlc_check(&h, T0 + 2 * SEC + 1, &err), SPRIG_EDRIFT);
    assert_non_null(strstr(err.msg, "2.000"));
    assert_int_equal(h.refused, 1);

    /* The limit is measured from the wall clock at the time of the check. */
    w.now = T0 + 10 * SEC;
    assert_int_equal(sprig_hlc_check(&h, T0 + 2 * SEC + 1, &err), 0);
    assert_int_equal(sprig_hlc_check(&h, T0 + 12 * SEC, &err), 0);
    assert_int_equal(sprig_hlc_check(&h, T0 + 12 * SEC + 1, &err), SPRIG_EDRIFT);
    assert_int_equal(h.refused, 2);
}

static void test_check_not_positive(void **state)
{
    (void)state;
    fake_wall_t w = {T0, 0};
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, fake_wall, &w);
    sprig_error_t err = {{0}};

    assert_int_equal(sprig_hlc_check(&h, 0, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "0"));
    err.msg[0] = '\0';
    assert_int_equal(sprig_hlc_check(&h, -5, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "-5"));
    assert_int_equal(sprig_hlc_check(&h, INT64_MIN, NULL), -EINVAL);
    /* Bad input is not a drift refusal. */
    assert_int_equal(h.refused, 0);
    assert_int_equal(h.last, 0);
}

static void test_real_wall(void **state)
{
    (void)state;
    /* NULL wall: the real clock, close to sprig_wall_ns. */
    sprig_hlc_t h;
    sprig_hlc_init(&h, 0, NULL, NULL);
    int64_t before = sprig_wall_ns();
    int64_t t1 = sprig_hlc_now(&h);
    int64_t t2 = sprig_hlc_now(&h);
    int64_t after = sprig_wall_ns();
    assert_true(t1 >= before);
    assert_true(t2 > t1);
    assert_true(t1 <= after + 1);
    assert_true(t2 <= after + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_defaults),
        cmocka_unit_test(test_now_follows_wall),
        cmocka_unit_test(test_now_wall_stands_still),
        cmocka_unit_test(test_now_wall_goes_back),
        cmocka_unit_test(test_now_strictly_increasing_random_wall),
        cmocka_unit_test(test_observe_advances),
        cmocka_unit_test(test_observe_without_rtc),
        cmocka_unit_test(test_check_within_drift),
        cmocka_unit_test(test_check_beyond_drift),
        cmocka_unit_test(test_check_custom_drift),
        cmocka_unit_test(test_check_not_positive),
        cmocka_unit_test(test_real_wall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
