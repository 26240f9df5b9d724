/* Unit tests of the MCU link's frame codec (serial_frame.h): CRC-16/KERMIT check values,
 * COBS known vectors, round trips of random buffers and the decoder's rejections, and
 * frames built, decoded and parsed back, with their CRC, length and subject errors. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "serial_frame.h"

/* A fixed-seed xorshift32, so a failing round trip is reproducible. */
static uint32_t rng_state = 0x5eed1234u;

static uint32_t rng(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x;
}

/* Encodes in and checks the bytes against want, then decodes them back to in. */
static void check_cobs(const uint8_t *in, size_t n, const uint8_t *want, size_t wn)
{
    uint8_t enc[600];
    uint8_t dec[600];
    assert_true(n + n / 254 + 1 <= sizeof(enc));
    size_t e = ser_cobs_encode(in, n, enc);
    assert_int_equal(e, wn);
    assert_memory_equal(enc, want, wn);
    assert_true(e <= n + n / 254 + 1);
    long d = ser_cobs_decode(enc, e, dec, sizeof(dec));
    assert_int_equal(d, (long)n);
    if (n > 0) {
        assert_memory_equal(dec, in, n);
    }
}

static void test_crc(void **state)
{
    (void)state;
    assert_int_equal(ser_crc16_kermit((const uint8_t *)"123456789", 9), 0x2189);
    assert_int_equal(ser_crc16_kermit((const uint8_t *)"", 0), 0);
    assert_int_equal(ser_crc16_kermit(NULL, 0), 0);
    /* A single byte changes it. */
    assert_int_not_equal(ser_crc16_kermit((const uint8_t *)"123456788", 9), 0x2189);
}

static void test_cobs_vectors(void **state)
{
    (void)state;
    check_cobs(NULL, 0, (const uint8_t[]){0x01}, 1);
    check_cobs((const uint8_t[]){0x00}, 1, (const uint8_t[]){0x01, 0x01}, 2);
    check_cobs((const uint8_t[]){0x00, 0x00}, 2, (const uint8_t[]){0x01, 0x01, 0x01}, 3);
    check_cobs((const uint8_t[]){0x11, 0x22, 0x00, 0x33}, 4,
               (const uint8_t[]){0x03, 0x11, 0x22, 0x02, 0x33}, 5);
    check_cobs((const uint8_t[]){0x11, 0x22, 0x33, 0x44}, 4,
               (const uint8_t[]){0x05, 0x11, 0x22, 0x33, 0x44}, 5);
    check_cobs((const uint8_t[]){0x11, 0x00, 0x00, 0x00}, 4,
               (const uint8_t[]){0x02, 0x11, 0x01, 0x01, 0x01}, 5);

    uint8_t in[600];
    uint8_t want[600];
    for (size_t i = 0; i < sizeof(in); i++) {
        in[i] = (uint8_t)(i % 255 + 1); /* 1..255, never zero */
    }
    /* 254 non-zero bytes fill one block: 0xFF then the bytes. This encoder then opens a
     * new, empty block, so a trailing 0x01 follows (Wikipedia's encoder stops after the
     * 0xFF block); both decode to the same 254 bytes, and the decoder takes either. */
    want[0] = 0xFF;
    memcpy(want + 1, in, 254);
    want[255] = 0x01;
    check_cobs(in, 254, want, 256);
    long d;
    uint8_t dec[600];
    d = ser_cobs_decode(want, 255, dec, sizeof(dec)); /* the form without the 0x01 */
    assert_int_equal(d, 254);
    assert_memory_equal(dec, in, 254);
    /* 255 bytes: the 0xFF block, then a block of one. */
    want[255] = 0x02;
    want[256] = in[254];
    check_cobs(in, 255, want, 257);
    /* 253 bytes: one block of code 0xFE. */
    want[0] = 0xFE;
    memcpy(want + 1, in, 253);
    check_cobs(in, 253, want, 254);
    /* 254 non-zero bytes then a zero: 0xFF block, then 0x01 for the zero, 0x01 for the end. */
    uint8_t z[255];
    memcpy(z, in, 254);
    z[254] = 0;
    want[0] = 0xFF;
    memcpy(want + 1, in, 254);
    want[255] = 0x01;
    want[256] = 0x01;
    check_cobs(z, 255, want, 257);
    /* 508 non-zero bytes: two full blocks and the trailing 0x01, n + n / 254 + 1 bytes. */
    want[0] = 0xFF;
    memcpy(want + 1, in, 254);
    want[255] = 0xFF;
    memcpy(want + 256, in + 254, 254);
    want[510] = 0x01;
    check_cobs(in, 508, want, 511);
}

static void test_cobs_round_trips(void **state)
{
    (void)state;
    enum { MAX = 3000 };
    uint8_t *in = malloc(MAX);
    uint8_t *enc = malloc(MAX + MAX / 254 + 1);
    uint8_t *dec = malloc(MAX);
    assert_non_null(in);
    assert_non_null(enc);
    assert_non_null(dec);
    for (size_t n = 0; n <= MAX; n++) {
        /* Vary the density of zeros: none, rare, frequent, all. */
        uint32_t mode = (uint32_t)(n % 4);
        for (size_t i = 0; i < n; i++) {
            uint8_t b = (uint8_t)rng();
            switch (mode) {
            case 0:
                b = (uint8_t)(b % 255 + 1);
                break;
            case 1:
                b = rng() % 300 == 0 ? 0 : b;
                break;
            case 2:
                b = (uint8_t)(rng() % 4 == 0 ? 0 : b);
                break;
            default:
                b = (uint8_t)(rng() % 2 == 0 ? 0 : b);
                break;
            }
            in[i] = b;
        }
        size_t e = ser_cobs_encode(in, n, enc);
        assert_true(e <= n + n / 254 + 1);
        assert_true(e >= n + 1);
        for (size_t i = 0; i < e; i++) {
            if (enc[i] == 0) {
                fail_msg("n %zu: a zero at %zu of the encoded bytes", n, i);
            }
        }
        long d = ser_cobs_decode(enc, e, dec, MAX);
        assert_int_equal(d, (long)n);
        if (n > 0 && memcmp(dec, in, n) != 0) {
            fail_msg("n %zu: the round trip differs", n);
        }
        /* One byte short of room. */
        if (n > 0) {
            assert_int_equal(ser_cobs_decode(enc, e, dec, n - 1), -E2BIG);
        }
    }
    free(in);
    free(enc);
    free(dec);
}

static void test_cobs_rejects(void **state)
{
    (void)state;
    uint8_t out[64];
    /* A zero inside a block, and a zero as a code. */
    assert_int_equal(ser_cobs_decode((const uint8_t[]){0x03, 0x11, 0x00}, 3, out, sizeof(out)),
                     -EINVAL);
    assert_int_equal(
        ser_cobs_decode((const uint8_t[]){0x02, 0x11, 0x00, 0x01}, 4, out, sizeof(out)), -EINVAL);
    assert_int_equal(ser_cobs_decode((const uint8_t[]){0x00}, 1, out, sizeof(out)), -EINVAL);
    /* A code that runs past the end. */
    assert_int_equal(ser_cobs_decode((const uint8_t[]){0x03, 0x11}, 2, out, sizeof(out)), -EINVAL);
    assert_int_equal(
        ser_cobs_decode((const uint8_t[]){0x02, 0x11, 0x05, 0x22}, 4, out, sizeof(out)), -EINVAL);
    assert_int_equal(ser_cobs_decode((const uint8_t[]){0xFF}, 1, out, sizeof(out)), -EINVAL);
    /* Too small a buffer: the data, then the implied zero. */
    const uint8_t four[] = {0x03, 0x11, 0x22, 0x02, 0x33};
    assert_int_equal(ser_cobs_decode(four, 5, out, 4), 4);
    assert_int_equal(ser_cobs_decode(four, 5, out, 3), -E2BIG);
    assert_int_equal(ser_cobs_decode(four, 5, out, 2), -E2BIG);
    assert_int_equal(ser_cobs_decode(four, 5, out, 0), -E2BIG);
    /* Empty input decodes to nothing. */
    assert_int_equal(ser_cobs_decode(four, 0, out, 0), 0);
}

/* Builds a frame, checks its wire form (one zero, at the end), decodes and parses it.
 * raw must hold SER_RAW_MAX bytes; f points into it. */
static void build_parse(uint8_t seq, const char *subject, const uint8_t *payload, size_t len,
                        uint8_t *raw, ser_frame_t *f)
{
    static uint8_t wire[SER_WIRE_MAX];
    long w = ser_frame_build(seq, subject, payload, len, wire, sizeof(wire));
    assert_true(w > 0);
    assert_int_equal(wire[w - 1], 0);
    for (long i = 0; i < w - 1; i++) {
        if (wire[i] == 0) {
            fail_msg("a zero at %ld of %ld wire bytes", i, w);
        }
    }
    long n = ser_cobs_decode(wire, (size_t)w - 1, raw, SER_RAW_MAX);
    assert_int_equal(n, (long)(1 + SER_SUBJECT + len + 2));
    assert_int_equal(ser_frame_parse(raw, (size_t)n, f), 0);
}

static void test_frame_round_trip(void **state)
{
    (void)state;
    static uint8_t raw[SER_RAW_MAX];
    ser_frame_t f;
    const char *json = "[{\"type\":\"temp\",\"key\":\"0\",\"value\":21.5}]";
    build_parse(42, "points", (const uint8_t *)json, strlen(json), raw, &f);
    assert_int_equal(f.seq, 42);
    assert_string_equal(f.subject, "points");
    assert_int_equal(f.len, strlen(json));
    assert_memory_equal(f.payload, json, f.len);

    /* An ack: no subject, no payload. */
    build_parse(255, NULL, NULL, 0, raw, &f);
    assert_int_equal(f.seq, 255);
    assert_string_equal(f.subject, "");
    assert_int_equal(f.len, 0);
    build_parse(0, "", NULL, 0, raw, &f);
    assert_int_equal(f.seq, 0);
    assert_string_equal(f.subject, "");

    /* A 16-byte subject fills the field with no NUL. */
    build_parse(7, "abcdefghijklmnop", (const uint8_t *)"x", 1, raw, &f);
    assert_string_equal(f.subject, "abcdefghijklmnop");
    assert_int_equal(f.len, 1);

    /* The largest payload, full of zeros and 0xFF: the wire form still has one zero. */
    static uint8_t big[SER_PAYLOAD_MAX];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i % 3 == 0 ? 0 : rng());
    }
    build_parse(1, "file", big, sizeof(big), raw, &f);
    assert_int_equal(f.len, SER_PAYLOAD_MAX);
    assert_memory_equal(f.payload, big, SER_PAYLOAD_MAX);
    /* No zeros at all: the most COBS overhead. */
    memset(big, 0xA5, sizeof(big));
    build_parse(2, "file", big, sizeof(big), raw, &f);
    assert_memory_equal(f.payload, big, SER_PAYLOAD_MAX);
    /* All zeros. */
    memset(big, 0, sizeof(big));
    build_parse(3, "file", big, sizeof(big), raw, &f);
    assert_memory_equal(f.payload, big, SER_PAYLOAD_MAX);

    /* Random frames of every size class. */
    for (int r = 0; r < 300; r++) {
        size_t len = rng() % (SER_PAYLOAD_MAX + 1);
        for (size_t i = 0; i < len; i++) {
            big[i] = (uint8_t)(rng() % 5 == 0 ? 0 : rng());
        }
        uint8_t seq = (uint8_t)rng();
        build_parse(seq, "s", big, len, raw, &f);
        assert_int_equal(f.seq, seq);
        assert_int_equal(f.len, len);
        if (len > 0) {
            assert_memory_equal(f.payload, big, len);
        }
    }
}

/* The raw (decoded) frame bytes of seq | subject | payload | CRC, without COBS. */
static size_t raw_frame(uint8_t seq, const char *subject, const uint8_t *payload, size_t len,
                        uint8_t *raw)
{
    static uint8_t wire[SER_WIRE_MAX];
    long w = ser_frame_build(seq, subject, payload, len, wire, sizeof(wire));
    assert_true(w > 0);
    long n = ser_cobs_decode(wire, (size_t)w - 1, raw, SER_RAW_MAX);
    assert_true(n > 0);
    return (size_t)n;
}

static void test_frame_errors(void **state)
{
    (void)state;
    static uint8_t raw[SER_RAW_MAX];
    ser_frame_t f;
    size_t n = raw_frame(9, "points", (const uint8_t *)"hello", 5, raw);
    assert_int_equal(n, 1 + SER_SUBJECT + 5 + 2);
    assert_int_equal(ser_frame_parse(raw, n, &f), 0);

    /* A flipped bit anywhere (payload, seq, subject, CRC) fails the CRC. */
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++) {
            raw[i] ^= (uint8_t)(1u << b);
            assert_int_equal(ser_frame_parse(raw, n, &f), -EBADMSG);
            raw[i] ^= (uint8_t)(1u << b);
        }
    }
    /* A byte lost from the end: a CRC mismatch, or too short. */
    assert_int_equal(ser_frame_parse(raw, n - 1, &f), -EBADMSG);

    /* Shorter than seq, subject and CRC: 18 bytes and less. */
    size_t ack = raw_frame(1, NULL, NULL, 0, raw);
    assert_int_equal(ack, 19);
    assert_int_equal(ser_frame_parse(raw, ack, &f), 0);
    for (size_t k = 0; k < 19; k++) {
        assert_int_equal(ser_frame_parse(raw, k, &f), -EINVAL);
    }

    /* A subject with a control character or a byte over 0x7E, with a valid CRC. */
    const char *bad[] = {"po\tints", "\x01", "abc\x7f", "\x80x", "ok\x1b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* build refuses them; a peer could still send one: made by hand here */
        static uint8_t wire[SER_WIRE_MAX];
        assert_int_equal(ser_frame_build(3, bad[i], (const uint8_t *)"p", 1, wire, sizeof(wire)),
                         -EINVAL);
        memset(raw, 0, 1 + SER_SUBJECT);
        raw[0] = 3;
        memcpy(raw + 1, bad[i], strlen(bad[i]));
        raw[1 + SER_SUBJECT] = 'p';
        uint16_t crc = ser_crc16_kermit(raw, 1 + SER_SUBJECT + 1);
        raw[2 + SER_SUBJECT] = (uint8_t)(crc & 0xff);
        raw[3 + SER_SUBJECT] = (uint8_t)(crc >> 8);
        assert_int_equal(ser_frame_parse(raw, 4 + SER_SUBJECT, &f), -EINVAL);
    }
    /* Bytes after the subject's NUL must be NULs too. */
    memset(raw, 0, 1 + SER_SUBJECT);
    raw[1] = 'a';
    raw[3] = 0x01;
    uint16_t crc = ser_crc16_kermit(raw, 1 + SER_SUBJECT);
    raw[1 + SER_SUBJECT] = (uint8_t)(crc & 0xff);
    raw[2 + SER_SUBJECT] = (uint8_t)(crc >> 8);
    assert_int_equal(ser_frame_parse(raw, 3 + SER_SUBJECT, &f), -EINVAL);
    /* Printable edges are taken. */
    n = raw_frame(3, " ~", NULL, 0, raw);
    assert_int_equal(ser_frame_parse(raw, n, &f), 0);
    assert_string_equal(f.subject, " ~");
}

static void test_build_limits(void **state)
{
    (void)state;
    static uint8_t payload[SER_PAYLOAD_MAX + 1];
    static uint8_t wire[SER_WIRE_MAX + 16];
    assert_int_equal(ser_frame_build(1, "x", payload, SER_PAYLOAD_MAX + 1, wire, sizeof(wire)),
                     -E2BIG);
    assert_true(ser_frame_build(1, "x", payload, SER_PAYLOAD_MAX, wire, sizeof(wire)) > 0);
    assert_int_equal(ser_frame_build(1, "abcdefghijklmnopq", NULL, 0, wire, sizeof(wire)), -E2BIG);
    assert_int_equal(ser_frame_build(1, "abcdefghijklmnop", NULL, 0, wire, sizeof(wire)), 21);

    /* SER_WIRE_MAX is enough for the worst case: no zero anywhere. */
    memset(payload, 0x5A, sizeof(payload));
    long w =
        ser_frame_build(0xFF, "abcdefghijklmnop", payload, SER_PAYLOAD_MAX, wire, SER_WIRE_MAX);
    assert_true(w > 0);
    assert_true(w <= SER_WIRE_MAX);
    /* A buffer too small for the wire form. */
    assert_int_equal(ser_frame_build(1, "abc", (const uint8_t *)"12345", 5, wire, 10), -E2BIG);
    long need = ser_frame_build(1, "abc", (const uint8_t *)"12345", 5, wire, sizeof(wire));
    assert_true(need > 0);
    assert_int_equal(ser_frame_build(1, "abc", (const uint8_t *)"12345", 5, wire, (size_t)need),
                     need);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc),
        cmocka_unit_test(test_cobs_vectors),
        cmocka_unit_test(test_cobs_round_trips),
        cmocka_unit_test(test_cobs_rejects),
        cmocka_unit_test(test_frame_round_trip),
        cmocka_unit_test(test_frame_errors),
        cmocka_unit_test(test_build_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
