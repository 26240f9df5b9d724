/* Unit tests of the in-process bus (bus.h): filters by node, node type and point type,
 * delivery in subscribe order, subscribe, unsubscribe and nested publish from inside a
 * callback, the published counter, and that closing a bus with live subscriptions frees
 * them (the sanitizer build checks for leaks). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "sprig/alloc.h"
#include "sprig/bus.h"

/* --- A log of deliveries shared by the callbacks ---------------------------------- */

#define LOG_MAX 256

typedef struct entry {
    int who;
    char node[16];
    char point_type[16];
} entry_t;

static entry_t log_[LOG_MAX];
static int log_len;

static void log_reset(void)
{
    log_len = 0;
    memset(log_, 0, sizeof(log_));
}

static void log_add(int who, const sprig_event_t *ev)
{
    assert_true(log_len < LOG_MAX);
    log_[log_len].who = who;
    strncpy(log_[log_len].node, ev->node, sizeof(log_[0].node) - 1);
    strncpy(log_[log_len].point_type, ev->point->type, sizeof(log_[0].point_type) - 1);
    log_len++;
}

/* Asserts the log holds exactly the given subscriber ids, in order. */
static void assert_log(const int *who, int n)
{
    assert_int_equal(log_len, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(log_[i].who, who[i]);
    }
}

/* A subscriber: its id in the log, and what it does when called. */
typedef struct actor {
    int id;
    sprig_bus_t *bus;
    sprig_bus_sub_t *self;
    sprig_bus_sub_t *unsub[2];   /* to unsubscribe on the first call (may include self) */
    sprig_bus_sub_t **unsub_ref; /* the same, for a handle only known at call time */
    const sprig_event_t *nested; /* to publish once, from inside the callback */
    struct actor *spawn;         /* to subscribe (everything) once, from inside */
    int calls;
} actor_t;

static void actor_cb(const sprig_event_t *ev, void *arg)
{
    actor_t *a = arg;
    a->calls++;
    log_add(a->id, ev);
    for (int i = 0; i < 2; i++) {
        if (a->unsub[i] != NULL) {
            sprig_bus_unsubscribe(a->bus, a->unsub[i]);
            a->unsub[i] = NULL;
        }
    }
    if (a->unsub_ref != NULL && *a->unsub_ref != NULL) {
        sprig_bus_unsubscribe(a->bus, *a->unsub_ref);
        *a->unsub_ref = NULL;
    }
    if (a->nested != NULL) {
        const sprig_event_t *n = a->nested;
        a->nested = NULL;
        sprig_bus_publish(a->bus, n);
    }
    if (a->spawn != NULL) {
        actor_t *s = a->spawn;
        a->spawn = NULL;
        assert_int_equal(sprig_bus_subscribe(a->bus, NULL, actor_cb, s, &s->self), 0);
    }
}

static void actor_init(actor_t *a, sprig_bus_t *bus, int id)
{
    memset(a, 0, sizeof(*a));
    a->id = id;
    a->bus = bus;
}

static void sub(sprig_bus_t *bus, actor_t *a, const char *node, const char *node_type,
                const char *point_type)
{
    sprig_bus_filter_t f = {node, node_type, point_type};
    assert_int_equal(sprig_bus_subscribe(bus, &f, actor_cb, a, &a->self), 0);
}

static const sprig_point_t p_value = {"value", "0", 1, 1.0, "", "", 0};
static const sprig_point_t p_desc = {"description", "0", 1, 0.0, "pump", "", 0};
static const sprig_point_t p_derived = {"derived", "0", 2, 2.0, "", "rule-1", 0};

static sprig_event_t ev_of(const char *node, const char *node_type, const sprig_point_t *p)
{
    sprig_event_t ev = {node, node_type, NULL, p, NULL, 0};
    return ev;
}

static int setup(void **state)
{
    (void)state;
    log_reset();
    return 0;
}

/* --- Tests ----------------------------------------------------------------------------- */

static void test_filters(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    actor_t all, all_fields_null, by_node, by_type, by_point, by_both;
    actor_init(&all, bus, 0);
    actor_init(&all_fields_null, bus, 1);
    actor_init(&by_node, bus, 2);
    actor_init(&by_type, bus, 3);
    actor_init(&by_point, bus, 4);
    actor_init(&by_both, bus, 5);
    assert_int_equal(sprig_bus_subscribe(bus, NULL, actor_cb, &all, NULL), 0);
    sub(bus, &all_fields_null, NULL, NULL, NULL);
    sub(bus, &by_node, "pump-1", NULL, NULL);
    sub(bus, &by_type, NULL, "modbusIo", NULL);
    sub(bus, &by_point, NULL, NULL, "value");
    sub(bus, &by_both, "pump-1", NULL, "value");

    sprig_event_t e1 = ev_of("pump-1", "modbusIo", &p_value);
    sprig_event_t e2 = ev_of("pump-1", "modbusIo", &p_desc);
    sprig_event_t e3 = ev_of("pump-2", "modbusIo", &p_value);
    sprig_event_t e4 = ev_of("pump-2", "variable", &p_desc);
    /* Prefixes and case do not match. */
    sprig_event_t e5 = ev_of("pump-10", "modbusIoX", &p_derived);
    sprig_event_t e6 = ev_of("PUMP-1", "modbusio", &p_desc);
    sprig_bus_publish(bus, &e1);
    sprig_bus_publish(bus, &e2);
    sprig_bus_publish(bus, &e3);
    sprig_bus_publish(bus, &e4);
    sprig_bus_publish(bus, &e5);
    sprig_bus_publish(bus, &e6);

    assert_int_equal(all.calls, 6);
    assert_int_equal(all_fields_null.calls, 6);
    assert_int_equal(by_node.calls, 2);  /* e1, e2 */
    assert_int_equal(by_type.calls, 3);  /* e1, e2, e3 */
    assert_int_equal(by_point.calls, 2); /* e1, e3 */
    assert_int_equal(by_both.calls, 1);  /* e1 */
    int want[] = {0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 0, 1, 3, 4, 0, 1, 0, 1, 0, 1};
    assert_log(want, (int)(sizeof(want) / sizeof(want[0])));
    assert_string_equal(log_[16].node, "pump-10");
    assert_string_equal(log_[16].point_type, "derived");
    sprig_bus_close(bus);
}

static void test_filter_is_copied(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    char node[] = "pump-1", type[] = "modbusIo", pt[] = "value";
    actor_t a;
    actor_init(&a, bus, 0);
    sub(bus, &a, node, type, pt);
    /* The caller's buffers are reused after subscribing. */
    strcpy(node, "other");
    strcpy(type, "other");
    strcpy(pt, "other");
    sprig_event_t hit = ev_of("pump-1", "modbusIo", &p_value);
    sprig_event_t miss = ev_of("other", "other", &(sprig_point_t){"other", "0", 1, 0, "", "", 0});
    sprig_bus_publish(bus, &hit);
    sprig_bus_publish(bus, &miss);
    assert_int_equal(a.calls, 1);
    sprig_bus_close(bus);
}

typedef struct seen {
    sprig_event_t ev;
    int calls;
} seen_t;

static void seen_cb(const sprig_event_t *ev, void *arg)
{
    seen_t *s = arg;
    s->ev = *ev;
    s->calls++;
}

static void test_event_passed_through(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    seen_t s = {{0}, 0};
    sprig_bus_filter_t f = {"pump-1", "modbusIo", "tombstone"};
    assert_int_equal(sprig_bus_subscribe(bus, &f, seen_cb, &s, NULL), 0);
    /* An edge point: node and node type are the child's. */
    int link = 0;
    sprig_point_t tomb = {"tombstone", "0", 5, 1.0, "", "", 0};
    sprig_event_t ev = {"pump-1", "modbusIo", "root", &tomb, &link, 42};
    sprig_bus_publish(bus, &ev);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.ev.node, "pump-1");
    assert_string_equal(s.ev.edge_up, "root");
    assert_ptr_equal(s.ev.point, &tomb);
    assert_ptr_equal(s.ev.source, &link);
    assert_int_equal(s.ev.batch, 42);
    sprig_bus_close(bus);
}

static void test_order_is_subscribe_order(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    actor_t a[6];
    for (int i = 0; i < 5; i++) {
        actor_init(&a[i], bus, i);
        sub(bus, &a[i], NULL, NULL, NULL);
    }
    sprig_event_t e = ev_of("n", "t", &p_value);
    sprig_bus_publish(bus, &e);
    int want1[] = {0, 1, 2, 3, 4};
    assert_log(want1, 5);

    /* Unsubscribing keeps the others' order; a new subscriber comes last. */
    sprig_bus_unsubscribe(bus, a[2].self);
    sprig_bus_unsubscribe(bus, a[4].self); /* the tail */
    actor_init(&a[5], bus, 5);
    sub(bus, &a[5], NULL, NULL, NULL);
    log_reset();
    sprig_bus_publish(bus, &e);
    int want2[] = {0, 1, 3, 5};
    assert_log(want2, 4);

    /* Down to none, then one again. */
    sprig_bus_unsubscribe(bus, a[0].self);
    sprig_bus_unsubscribe(bus, a[1].self);
    sprig_bus_unsubscribe(bus, a[3].self);
    sprig_bus_unsubscribe(bus, a[5].self);
    log_reset();
    sprig_bus_publish(bus, &e);
    assert_int_equal(log_len, 0);
    sub(bus, &a[1], NULL, NULL, NULL);
    sprig_bus_publish(bus, &e);
    int want3[] = {1};
    assert_log(want3, 1);
    sprig_bus_close(bus);
}

static void test_unsubscribe_self_in_callback(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    actor_t a, b, c;
    actor_init(&a, bus, 0);
    actor_init(&b, bus, 1);
    actor_init(&c, bus, 2);
    sub(bus, &a, NULL, NULL, NULL);
    sub(bus, &b, NULL, NULL, NULL);
    sub(bus, &c, NULL, NULL, NULL);
    b.unsub[0] = b.self;

    sprig_event_t e = ev_of("n", "t", &p_value);
    sprig_bus_publish(bus, &e);
    sprig_bus_publish(bus, &e);
    sprig_bus_publish(bus, &e);
    /* b got the event it unsubscribed in, and no more; c, after it, got every one. */
    int want[] = {0, 1, 2, 0, 2, 0, 2};
    assert_log(want, 7);
    assert_int_equal(b.calls, 1);
    sprig_bus_close(bus);
}

static void test_unsubscribe_last_self_in_callback(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    actor_t a, b, c;
    actor_init(&a, bus, 0);
    actor_init(&b, bus, 1);
    actor_init(&c, bus, 2);
    sub(bus, &a, NULL, NULL, NULL);
    sub(bus, &b, NULL, NULL, NULL);
    b.unsub[0] = b.self; /* the tail removes itself */
    sprig_event_t e = ev_of("n", "t", &p_value);
    sprig_bus_publish(bus, &e);
    /* A subscriber added afterwards is still reached. */
    sub(bus, &c, NULL, NULL, NULL);
    sprig_bus_publish(bus, &e);
    int want[] = {0, 1, 0, 2};
    assert_log(want, 4);
    sprig_bus_close(bus);
}

static void test_unsubscribe_other_in_callback(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    actor_t a, b, c, d;
    actor_init(&a, bus, 0);
    actor_init(&b, bus, 1);
    actor_init(&c, bus, 2);
    actor_init(&d, bus, 3);
    sub(bus, &a, NULL, NULL, NULL);
    sub(bus, &b, NULL, NULL, NULL);
    sub(bus, &c, NULL, NULL, NULL);
    sub(bus, &d, NULL, NULL, NULL);
    /* b removes a (already called) and c (not yet called for this event). */
    b.unsub[0] = a.self;
    b.unsub[1] = c.self;

    sprig_event_t e = ev_of("n", "t", &p_value);
    sprig_bus_publish(bus, &e);
    sprig_bus_publish(bus, &e);
    int want[] = {0, 1, 3, 1, 3};
    assert_log(want, 5);
    assert_int_equal(c.calls, 0);
    sprig_bus_close(bus);
}

static void test_nested_publish(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    actor_t rule, on_value, on_derived, all;
    actor_init(&rule, bus, 0);
    actor_init(&on_value, bus, 1);
    actor_init(&on_derived, bus, 2);
    actor_init(&all, bus, 3);
    sub(bus, &rule, NULL, NULL, "value");
    sub(bus, &on_value, NULL, NULL, "value");
    sub(bus, &on_derived, NULL, NULL, "derived");
    sub(bus, &all, NULL, NULL, NULL);
    /* A rule that, seeing a value, publishes a derived point. */
    sprig_event_t derived = ev_of("calc", "rule", &p_derived);
    rule.nested = &derived;

    assert_int_equal(sprig_bus_published(bus), 0);
    sprig_event_t e = ev_of("n", "t", &p_value);
    sprig_bus_publish(bus, &e);
    /* The nested event is delivered in full, inside the rule's callback, before the
     * outer event reaches the subscribers after the rule. */
    int want[] = {0, 2, 3, 1, 3};
    assert_log(want, 5);
    assert_string_equal(log_[1].point_type, "derived");
    assert_string_equal(log_[1].node, "calc");
    assert_string_equal(log_[3].point_type, "value");
    assert_int_equal(sprig_bus_published(bus), 2);
    sprig_bus_close(bus);
}

static void test_unsubscribe_in_nested_publish(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    actor_t outer, inner, victim, after;
    actor_init(&outer, bus, 0);
    actor_init(&inner, bus, 1);
    actor_init(&victim, bus, 2);
    actor_init(&after, bus, 3);
    sub(bus, &outer, NULL, NULL, "value");
    sub(bus, &inner, NULL, NULL, "derived");
    sub(bus, &victim, NULL, NULL, "value");
    sub(bus, &after, NULL, NULL, NULL);
    sprig_event_t derived = ev_of("calc", "rule", &p_derived);
    outer.nested = &derived;
    /* Inside the nested publish, inner removes itself and victim, which the outer
     * publish has not reached yet. */
    inner.unsub[0] = inner.self;
    inner.unsub[1] = victim.self;

    sprig_event_t e = ev_of("n", "t", &p_value);
    sprig_bus_publish(bus, &e);
    int want[] = {0, 1, 3, 3};
    assert_log(want, 4);
    assert_int_equal(victim.calls, 0);

    log_reset();
    sprig_bus_publish(bus, &derived);
    sprig_bus_publish(bus, &e);
    int want2[] = {3, 0, 3};
    assert_log(want2, 3);
    assert_int_equal(sprig_bus_published(bus), 4);
    sprig_bus_close(bus);
}

static void test_subscribe_in_callback(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    actor_t a, b, spawned, later;
    actor_init(&a, bus, 0);
    actor_init(&b, bus, 1);
    actor_init(&spawned, bus, 2);
    actor_init(&later, bus, 3);
    sub(bus, &a, NULL, NULL, NULL);
    sub(bus, &b, NULL, NULL, NULL);
    a.spawn = &spawned;

    sprig_event_t e = ev_of("n", "t", &p_value);
    sprig_bus_publish(bus, &e);
    assert_non_null(spawned.self);
    /* Whether the new subscriber also sees the event being delivered is left open;
     * every later event reaches it, after those subscribed before it. */
    log_reset();
    spawned.calls = 0;
    sprig_bus_publish(bus, &e);
    int want[] = {0, 1, 2};
    assert_log(want, 3);

    /* Subscribed and unsubscribed within one publish; the bus stays consistent and a
     * later subscriber still comes last. */
    actor_t brief;
    actor_init(&brief, bus, 4);
    a.spawn = &brief;
    sprig_bus_publish(bus, &e); /* a spawns brief */
    sprig_bus_unsubscribe(bus, brief.self);
    sub(bus, &later, NULL, NULL, NULL);
    log_reset();
    sprig_bus_publish(bus, &e);
    int want2[] = {0, 1, 2, 3};
    assert_log(want2, 4);
    sprig_bus_close(bus);
}

static void test_subscribe_and_unsubscribe_in_one_publish(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    actor_t a, b, spawned, later;
    actor_init(&a, bus, 0);
    actor_init(&b, bus, 1);
    actor_init(&spawned, bus, 2);
    actor_init(&later, bus, 3);
    sub(bus, &a, NULL, NULL, NULL);
    sub(bus, &b, NULL, NULL, NULL);
    /* a subscribes spawned (the new tail), then b removes it in the same publish: the
     * swept list must not keep pointing at the freed tail. */
    a.spawn = &spawned;
    b.unsub_ref = &spawned.self;
    sprig_event_t e = ev_of("n", "t", &p_value);
    sprig_bus_publish(bus, &e);
    assert_null(spawned.self);
    assert_int_equal(spawned.calls, 0); /* removed before the walk reached it */
    sub(bus, &later, NULL, NULL, NULL);
    log_reset();
    sprig_bus_publish(bus, &e);
    sprig_bus_publish(bus, &e);
    int want[] = {0, 1, 3, 0, 1, 3};
    assert_log(want, 6);
    assert_int_equal(spawned.calls, 0);
    sprig_bus_close(bus);
}

static void test_published_counter(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    assert_int_equal(sprig_bus_published(bus), 0);
    sprig_event_t e = ev_of("n", "t", &p_value);
    /* Counted with no subscriber, and with none matching. */
    sprig_bus_publish(bus, &e);
    assert_int_equal(sprig_bus_published(bus), 1);
    actor_t a;
    actor_init(&a, bus, 0);
    sub(bus, &a, "other", NULL, NULL);
    sprig_bus_publish(bus, &e);
    sprig_bus_publish(bus, &e);
    assert_int_equal(sprig_bus_published(bus), 3);
    assert_int_equal(a.calls, 0);
    sprig_bus_close(bus);
}

static void test_close_with_live_subscriptions(void **state)
{
    (void)state;
    sprig_bus_close(NULL);
    sprig_bus_t *bus;
    assert_int_equal(sprig_bus_open(&bus), 0);
    actor_t a[4];
    for (int i = 0; i < 4; i++) {
        actor_init(&a[i], bus, i);
    }
    sub(bus, &a[0], "pump-1", "modbusIo", "value");
    sub(bus, &a[1], NULL, "modbusIo", NULL);
    sub(bus, &a[2], NULL, NULL, NULL);
    assert_int_equal(sprig_bus_subscribe(bus, NULL, actor_cb, &a[3], NULL), 0);
    sprig_event_t e = ev_of("pump-1", "modbusIo", &p_value);
    sprig_bus_publish(bus, &e);
    assert_int_equal(log_len, 4);
    /* Everything, including the copied filter strings, is freed here. */
    sprig_bus_close(bus);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    sprig_bus_t *bus;
    sprig_alloc_fail_after(0);
    assert_int_equal(sprig_bus_open(&bus), -ENOMEM);
    sprig_alloc_fail_after(-1);
    assert_int_equal(sprig_bus_open(&bus), 0);

    actor_t a, b;
    actor_init(&a, bus, 0);
    actor_init(&b, bus, 1);
    sprig_bus_filter_t f = {"pump-1", "modbusIo", "value"};
    /* Failing at the record, then at each filter string copy: nothing is left behind
     * (the sanitizer build checks) and the bus still works. */
    for (long n = 0; n < 4; n++) {
        sprig_bus_sub_t *s = NULL;
        sprig_alloc_fail_after(n);
        assert_int_equal(sprig_bus_subscribe(bus, &f, actor_cb, &b, &s), -ENOMEM);
        sprig_alloc_fail_after(-1);
    }
    sub(bus, &a, "pump-1", NULL, NULL);
    sprig_event_t e = ev_of("pump-1", "modbusIo", &p_value);
    sprig_bus_publish(bus, &e);
    int want[] = {0};
    assert_log(want, 1);
    assert_int_equal(b.calls, 0);
    sprig_bus_close(bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_filters, setup),
        cmocka_unit_test_setup(test_filter_is_copied, setup),
        cmocka_unit_test_setup(test_event_passed_through, setup),
        cmocka_unit_test_setup(test_order_is_subscribe_order, setup),
        cmocka_unit_test_setup(test_unsubscribe_self_in_callback, setup),
        cmocka_unit_test_setup(test_unsubscribe_last_self_in_callback, setup),
        cmocka_unit_test_setup(test_unsubscribe_other_in_callback, setup),
        cmocka_unit_test_setup(test_nested_publish, setup),
        cmocka_unit_test_setup(test_unsubscribe_in_nested_publish, setup),
        cmocka_unit_test_setup(test_subscribe_in_callback, setup),
        cmocka_unit_test_setup(test_subscribe_and_unsubscribe_in_one_publish, setup),
        cmocka_unit_test_setup(test_published_counter, setup),
        cmocka_unit_test_setup(test_close_with_live_subscriptions, setup),
        cmocka_unit_test_setup(test_out_of_memory, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
