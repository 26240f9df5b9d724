/* Unit tests of the Modbus codec and request planner (modbus_codec.h, DESIGN.md section 8):
 * exact register words for known values in every byte order, round trips of every format
 * and order over edge values, scale and offset, rounding and range errors, register bits
 * and bit tables, the encoded comparison, and the planner's joins, limits and order. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "modbus_codec.h"
#include "sprig/alloc.h"

static const mb_order_t orders[] = {MB_ABCD, MB_DCBA, MB_BADC, MB_CDAB};
static const mb_format_t formats[] = {MB_UINT16, MB_INT16, MB_UINT32,  MB_INT32,
                                      MB_UINT64, MB_INT64, MB_FLOAT32, MB_FLOAT64};

static mb_io_fmt_t fmt(mb_format_t f, mb_order_t o)
{
    return (mb_io_fmt_t){MB_HOLDING_REGISTER, f, o, -1, 1.0, 0.0};
}

static void assert_regs(const uint16_t *got, const uint16_t *want, int n)
{
    for (int i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            fail_msg("register %d: 0x%04X, want 0x%04X", i, got[i], want[i]);
        }
    }
}

/* Encodes value and checks the words, then decodes them back to value exactly. */
static void check_words(mb_format_t f, mb_order_t o, double value, const uint16_t *want)
{
    mb_io_fmt_t io = fmt(f, o);
    uint16_t regs[4] = {0xDEAD, 0xDEAD, 0xDEAD, 0xDEAD};
    int n = mb_io_width(&io);
    assert_int_equal(mb_encode(&io, value, regs), 0);
    assert_regs(regs, want, n);
    for (int i = n; i < 4; i++) {
        assert_int_equal(regs[i], 0xDEAD); /* nothing past the width is written */
    }
    double back = mb_decode(&io, want);
    assert_true(back == value);
}

static void test_parse(void **state)
{
    (void)state;
    static const char *const tables[] = {"coil", "discreteInput", "holdingRegister",
                                         "inputRegister"};
    static const char *const fnames[] = {"uint16", "int16", "uint32",  "int32",
                                         "uint64", "int64", "float32", "float64"};
    static const char *const onames[] = {"ABCD", "DCBA", "BADC", "CDAB"};
    mb_table_t t;
    mb_format_t f;
    mb_order_t o;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(mb_table_parse(tables[i], &t), 0);
        assert_int_equal(t, (mb_table_t)i);
        assert_string_equal(mb_table_name(t), tables[i]);
        assert_int_equal(mb_order_parse(onames[i], &o), 0);
        assert_int_equal(o, orders[i]);
    }
    for (int i = 0; i < 8; i++) {
        assert_int_equal(mb_format_parse(fnames[i], &f), 0);
        assert_int_equal(f, formats[i]);
    }
    assert_int_equal(mb_table_parse("Coil", &t), -EINVAL);
    assert_int_equal(mb_table_parse("holding", &t), -EINVAL);
    assert_int_equal(mb_table_parse("holdingRegisters", &t), -EINVAL);
    assert_int_equal(mb_table_parse("", &t), -EINVAL);
    assert_int_equal(mb_table_parse(NULL, &t), -EINVAL);
    assert_int_equal(mb_format_parse("float", &f), -EINVAL);
    assert_int_equal(mb_format_parse("UINT16", &f), -EINVAL);
    assert_int_equal(mb_format_parse("int8", &f), -EINVAL);
    assert_int_equal(mb_order_parse("abcd", &o), -EINVAL);
    assert_int_equal(mb_order_parse("DCAB", &o), -EINVAL);
    assert_int_equal(mb_order_parse("AB", &o), -EINVAL);
    assert_string_equal(mb_table_name((mb_table_t)9), "unknown");
}

static void test_width(void **state)
{
    (void)state;
    static const int want[] = {1, 1, 2, 2, 4, 4, 2, 4};
    for (int i = 0; i < 8; i++) {
        mb_io_fmt_t io = fmt(formats[i], MB_ABCD);
        assert_int_equal(mb_io_width(&io), want[i]);
        io.bit = 3;
        assert_int_equal(mb_io_width(&io), 1);
        io.bit = -1;
        io.table = MB_COIL;
        assert_int_equal(mb_io_width(&io), 1);
        io.table = MB_DISCRETE_INPUT;
        assert_int_equal(mb_io_width(&io), 1);
        io.table = MB_INPUT_REGISTER;
        assert_int_equal(mb_io_width(&io), want[i]);
    }
}

static void test_words_16(void **state)
{
    (void)state;
    check_words(MB_INT16, MB_ABCD, -2, (const uint16_t[]){0xFFFE});
    check_words(MB_INT16, MB_CDAB, -2, (const uint16_t[]){0xFFFE});
    check_words(MB_INT16, MB_BADC, -2, (const uint16_t[]){0xFEFF});
    check_words(MB_INT16, MB_DCBA, -2, (const uint16_t[]){0xFEFF});
    check_words(MB_UINT16, MB_ABCD, 0x1234, (const uint16_t[]){0x1234});
    check_words(MB_UINT16, MB_CDAB, 0x1234, (const uint16_t[]){0x1234});
    check_words(MB_UINT16, MB_BADC, 0x1234, (const uint16_t[]){0x3412});
    check_words(MB_UINT16, MB_DCBA, 0x1234, (const uint16_t[]){0x3412});
    check_words(MB_INT16, MB_ABCD, -32768, (const uint16_t[]){0x8000});
    check_words(MB_INT16, MB_ABCD, 32767, (const uint16_t[]){0x7FFF});
    check_words(MB_UINT16, MB_ABCD, 65535, (const uint16_t[]){0xFFFF});
}

static void test_words_32(void **state)
{
    (void)state;
    check_words(MB_UINT32, MB_ABCD, 0x11223344, (const uint16_t[]){0x1122, 0x3344});
    check_words(MB_UINT32, MB_DCBA, 0x11223344, (const uint16_t[]){0x4433, 0x2211});
    check_words(MB_UINT32, MB_BADC, 0x11223344, (const uint16_t[]){0x2211, 0x4433});
    check_words(MB_UINT32, MB_CDAB, 0x11223344, (const uint16_t[]){0x3344, 0x1122});
    check_words(MB_INT32, MB_ABCD, -1, (const uint16_t[]){0xFFFF, 0xFFFF});
    check_words(MB_INT32, MB_ABCD, INT32_MIN, (const uint16_t[]){0x8000, 0x0000});
    check_words(MB_INT32, MB_DCBA, INT32_MIN, (const uint16_t[]){0x0000, 0x0080});
    check_words(MB_INT32, MB_BADC, INT32_MIN, (const uint16_t[]){0x0080, 0x0000});
    check_words(MB_INT32, MB_CDAB, INT32_MIN, (const uint16_t[]){0x0000, 0x8000});
    check_words(MB_INT32, MB_ABCD, -2, (const uint16_t[]){0xFFFF, 0xFFFE});
    check_words(MB_INT32, MB_BADC, -2, (const uint16_t[]){0xFFFF, 0xFEFF});
    /* 1.0f = 0x3F800000, -2.5f = 0xC0200000, 0.1f = 0x3DCCCCCD. */
    check_words(MB_FLOAT32, MB_ABCD, 1.0, (const uint16_t[]){0x3F80, 0x0000});
    check_words(MB_FLOAT32, MB_DCBA, 1.0, (const uint16_t[]){0x0000, 0x803F});
    check_words(MB_FLOAT32, MB_BADC, 1.0, (const uint16_t[]){0x803F, 0x0000});
    check_words(MB_FLOAT32, MB_CDAB, 1.0, (const uint16_t[]){0x0000, 0x3F80});
    check_words(MB_FLOAT32, MB_ABCD, -2.5, (const uint16_t[]){0xC020, 0x0000});
    check_words(MB_FLOAT32, MB_CDAB, -2.5, (const uint16_t[]){0x0000, 0xC020});
    check_words(MB_FLOAT32, MB_ABCD, 0.1f, (const uint16_t[]){0x3DCC, 0xCCCD});
    check_words(MB_FLOAT32, MB_DCBA, 0.1f, (const uint16_t[]){0xCDCC, 0xCC3D});
}

static void test_words_64(void **state)
{
    (void)state;
    /* 0x1122334455667700 needs 53 bits: exact in a double. */
    double v = (double)0x1122334455667700ULL;
    check_words(MB_UINT64, MB_ABCD, v, (const uint16_t[]){0x1122, 0x3344, 0x5566, 0x7700});
    check_words(MB_UINT64, MB_DCBA, v, (const uint16_t[]){0x0077, 0x6655, 0x4433, 0x2211});
    check_words(MB_UINT64, MB_BADC, v, (const uint16_t[]){0x2211, 0x4433, 0x6655, 0x0077});
    check_words(MB_UINT64, MB_CDAB, v, (const uint16_t[]){0x7700, 0x5566, 0x3344, 0x1122});

    /* 0x1122334455667788 does not fit a double's 53 bits: decoding gives the nearest
     * double, which is 0x1122334455667800. */
    static const uint16_t w[4][4] = {
        {0x1122, 0x3344, 0x5566, 0x7788},
        {0x8877, 0x6655, 0x4433, 0x2211},
        {0x2211, 0x4433, 0x6655, 0x8877},
        {0x7788, 0x5566, 0x3344, 0x1122},
    };
    for (int i = 0; i < 4; i++) {
        mb_io_fmt_t io = fmt(MB_UINT64, orders[i]);
        assert_true(mb_decode(&io, w[i]) == (double)0x1122334455667788ULL);
        assert_true(mb_decode(&io, w[i]) == (double)0x1122334455667800ULL);
        io.format = MB_INT64;
        assert_true(mb_decode(&io, w[i]) == (double)0x1122334455667788LL);
    }
    mb_io_fmt_t io = fmt(MB_UINT64, MB_ABCD);
    uint16_t regs[4];
    assert_int_equal(mb_encode(&io, (double)0x1122334455667788ULL, regs), 0);
    assert_regs(regs, (const uint16_t[]){0x1122, 0x3344, 0x5566, 0x7800}, 4);

    /* -2.5 = 0xC004000000000000. */
    check_words(MB_FLOAT64, MB_ABCD, -2.5, (const uint16_t[]){0xC004, 0, 0, 0});
    check_words(MB_FLOAT64, MB_DCBA, -2.5, (const uint16_t[]){0, 0, 0, 0x04C0});
    check_words(MB_FLOAT64, MB_BADC, -2.5, (const uint16_t[]){0x04C0, 0, 0, 0});
    check_words(MB_FLOAT64, MB_CDAB, -2.5, (const uint16_t[]){0, 0, 0, 0xC004});
    /* 1.0 = 0x3FF0000000000000; 0.1 = 0x3FB999999999999A. */
    check_words(MB_FLOAT64, MB_ABCD, 0.1, (const uint16_t[]){0x3FB9, 0x9999, 0x9999, 0x999A});
    check_words(MB_FLOAT64, MB_DCBA, 0.1, (const uint16_t[]){0x9A99, 0x9999, 0x9999, 0xB93F});
    check_words(MB_FLOAT64, MB_BADC, 0.1, (const uint16_t[]){0xB93F, 0x9999, 0x9999, 0x9A99});
    check_words(MB_FLOAT64, MB_CDAB, 0.1, (const uint16_t[]){0x999A, 0x9999, 0x9999, 0x3FB9});

    check_words(MB_INT64, MB_ABCD, -1, (const uint16_t[]){0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF});
    check_words(MB_INT64, MB_ABCD, -2, (const uint16_t[]){0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE});
    check_words(MB_INT64, MB_DCBA, -2, (const uint16_t[]){0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF});
    check_words(MB_INT64, MB_ABCD, -9223372036854775808.0, (const uint16_t[]){0x8000, 0, 0, 0});
    check_words(MB_INT64, MB_CDAB, -9223372036854775808.0, (const uint16_t[]){0, 0, 0, 0x8000});
    /* The largest doubles below 2^63 and 2^64. */
    check_words(MB_INT64, MB_ABCD, 9223372036854774784.0,
                (const uint16_t[]){0x7FFF, 0xFFFF, 0xFFFF, 0xFC00});
    check_words(MB_UINT64, MB_ABCD, 18446744073709549568.0,
                (const uint16_t[]){0xFFFF, 0xFFFF, 0xFFFF, 0xF800});
}

/* The value's bytes, most significant first, computed without the codec. */
static int reference_bytes(mb_format_t f, double v, uint8_t *b)
{
    uint64_t u;
    int n;
    switch (f) {
    case MB_FLOAT32: {
        float x = (float)v;
        uint32_t w;
        memcpy(&w, &x, 4);
        u = w;
        n = 4;
        break;
    }
    case MB_FLOAT64:
        memcpy(&u, &v, 8);
        n = 8;
        break;
    case MB_INT16:
    case MB_INT32:
    case MB_INT64:
        u = (uint64_t)(int64_t)v;
        n = f == MB_INT16 ? 2 : f == MB_INT32 ? 4 : 8;
        break;
    default:
        u = (uint64_t)v;
        n = f == MB_UINT16 ? 2 : f == MB_UINT32 ? 4 : 8;
        break;
    }
    for (int j = n - 1; j >= 0; j--) {
        b[j] = (uint8_t)u;
        u >>= 8;
    }
    return n;
}

/* Which value byte travels as wire byte j, spelled out per order and size. */
static const int perm2[4][2] = {{0, 1}, {1, 0}, {1, 0}, {0, 1}};
static const int perm4[4][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 0, 3, 2}, {2, 3, 0, 1}};
static const int perm8[4][8] = {
    {0, 1, 2, 3, 4, 5, 6, 7},
    {7, 6, 5, 4, 3, 2, 1, 0},
    {1, 0, 3, 2, 5, 4, 7, 6},
    {6, 7, 4, 5, 2, 3, 0, 1},
};

static void test_round_trips(void **state)
{
    (void)state;
    static const double edges[8][7] = {
        {0, 1, 65535, 0x1234, 0x8000, 0, 0},
        {0, 1, -1, -32768, 32767, 0x1234, -0x1234},
        {0, 1, 4294967295.0, 0x80000000, 0x12345678, 0, 0},
        {0, 1, -1, -2147483648.0, 2147483647.0, -0x12345678, 0x7F00},
        {0, 1, 18446744073709549568.0, 9223372036854775808.0, 0x123456789ABC, 0, 0},
        {0, 1, -1, -9223372036854775808.0, 9223372036854774784.0, -0x123456789ABC, 2},
        {0, 1, -1, FLT_MAX, -FLT_MAX, FLT_MIN, 0x1p-149},
        {0, 1, -1, DBL_MAX, -DBL_MAX, DBL_MIN, 0x1p-1074},
    };
    for (int fi = 0; fi < 8; fi++) {
        for (int oi = 0; oi < 4; oi++) {
            mb_io_fmt_t io = fmt(formats[fi], orders[oi]);
            int n = mb_io_width(&io);
            for (int vi = 0; vi < 7; vi++) {
                double v = edges[fi][vi];
                uint16_t regs[4] = {0};
                assert_int_equal(mb_encode(&io, v, regs), 0);
                assert_true(mb_decode(&io, regs) == v);
                assert_true(mb_same(&io, v, regs));

                uint8_t b[8];
                int nb = reference_bytes(formats[fi], v, b);
                assert_int_equal(nb, 2 * n);
                const int *p = n == 1 ? perm2[oi] : n == 2 ? perm4[oi] : perm8[oi];
                for (int i = 0; i < n; i++) {
                    uint16_t want = (uint16_t)(b[p[2 * i]] << 8 | b[p[2 * i + 1]]);
                    if (regs[i] != want) {
                        fail_msg("format %d order %d value %g register %d: 0x%04X, want 0x%04X", fi,
                                 oi, v, i, regs[i], want);
                    }
                }
            }
        }
    }
    /* Unsigned formats' all-ones words decode to their maxima (uint64: nearest double). */
    static const uint16_t ones[4] = {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF};
    mb_io_fmt_t io = fmt(MB_UINT16, MB_ABCD);
    assert_true(mb_decode(&io, ones) == 65535.0);
    io.format = MB_UINT32;
    assert_true(mb_decode(&io, ones) == 4294967295.0);
    io.format = MB_UINT64;
    assert_true(mb_decode(&io, ones) == 18446744073709551616.0);
    io.format = MB_INT16;
    assert_true(mb_decode(&io, ones) == -1.0);
    io.format = MB_INT32;
    assert_true(mb_decode(&io, ones) == -1.0);
    io.format = MB_INT64;
    assert_true(mb_decode(&io, ones) == -1.0);
    /* -0.0 keeps its sign in the registers (decoding adds the offset: +0.0). */
    io = fmt(MB_FLOAT32, MB_ABCD);
    uint16_t regs[4];
    assert_int_equal(mb_encode(&io, -0.0, regs), 0);
    assert_regs(regs, (const uint16_t[]){0x8000, 0x0000}, 2);
    assert_true(mb_decode(&io, regs) == 0.0);
}

static void test_scale_offset(void **state)
{
    (void)state;
    mb_io_fmt_t io = {MB_INPUT_REGISTER, MB_UINT16, MB_ABCD, -1, 0.1, -40.0};
    uint16_t raw = 1234;
    assert_true(mb_decode(&io, &raw) == 83.4);
    uint16_t regs[1];
    assert_int_equal(mb_encode(&io, 83.4, regs), 0);
    assert_int_equal(regs[0], 1234);
    assert_int_equal(mb_encode(&io, 83.44, regs), 0);
    assert_int_equal(regs[0], 1234);
    assert_int_equal(mb_encode(&io, 83.46, regs), 0);
    assert_int_equal(regs[0], 1235);
    assert_int_equal(mb_encode(&io, -40.0, regs), 0);
    assert_int_equal(regs[0], 0);
    /* Below the offset is a negative raw: not a uint16. */
    assert_int_equal(mb_encode(&io, -40.1, regs), -ERANGE);

    /* Scale 2, offset 10 on int32: raw = (value - 10) / 2. */
    io = (mb_io_fmt_t){MB_HOLDING_REGISTER, MB_INT32, MB_CDAB, -1, 2.0, 10.0};
    uint16_t r2[2];
    assert_int_equal(mb_encode(&io, -90.0, r2), 0);
    assert_regs(r2, (const uint16_t[]){0xFFCE, 0xFFFF}, 2); /* -50 */
    assert_true(mb_decode(&io, r2) == -90.0);

    /* Floats are scaled too. */
    io = (mb_io_fmt_t){MB_HOLDING_REGISTER, MB_FLOAT32, MB_ABCD, -1, 0.5, 1.0};
    assert_int_equal(mb_encode(&io, 3.0, r2), 0);
    assert_regs(r2, (const uint16_t[]){0x4080, 0x0000}, 2); /* 4.0f */
    assert_true(mb_decode(&io, r2) == 3.0);

    /* A negative scale works; a zero scale cannot be inverted. */
    io = (mb_io_fmt_t){MB_HOLDING_REGISTER, MB_INT16, MB_ABCD, -1, -1.0, 0.0};
    assert_int_equal(mb_encode(&io, 5.0, regs), 0);
    assert_int_equal(regs[0], 0xFFFB);
    assert_true(mb_decode(&io, regs) == 5.0);
    io.scale = 0.0;
    regs[0] = 0x1111;
    assert_int_equal(mb_encode(&io, 5.0, regs), -EINVAL);
    assert_int_equal(mb_encode(&io, NAN, regs), -EINVAL);
    assert_int_equal(regs[0], 0x1111);
    assert_true(mb_decode(&io, regs) == 0.0); /* raw * 0 + offset */
    assert_false(mb_same(&io, 0.0, regs));
}

static void test_rounding(void **state)
{
    (void)state;
    mb_io_fmt_t io = fmt(MB_UINT16, MB_ABCD);
    uint16_t regs[4];
    static const double in[] = {2.5, 3.5, 2.4999, 2.5001, 0.4, -0.4, 65535.4, 0.5};
    static const uint16_t out[] = {3, 4, 2, 3, 0, 0, 65535, 1};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        assert_int_equal(mb_encode(&io, in[i], regs), 0);
        assert_int_equal(regs[0], out[i]);
    }
    io.format = MB_INT16;
    assert_int_equal(mb_encode(&io, -2.5, regs), 0);
    assert_int_equal(regs[0], 0xFFFD); /* -3: halves away from zero */
    assert_int_equal(mb_encode(&io, -32768.4, regs), 0);
    assert_int_equal(regs[0], 0x8000);
    io.format = MB_INT64;
    assert_int_equal(mb_encode(&io, -1.5, regs), 0);
    assert_regs(regs, (const uint16_t[]){0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE}, 4);
    /* Floats are not rounded to integers. */
    io.format = MB_FLOAT64;
    assert_int_equal(mb_encode(&io, 2.5, regs), 0);
    assert_true(mb_decode(&io, regs) == 2.5);
}

static void test_range(void **state)
{
    (void)state;
    static const struct {
        mb_format_t f;
        double v;
    } bad[] = {
        {MB_UINT16, 65536},
        {MB_UINT16, 65535.5},
        {MB_UINT16, -1},
        {MB_UINT16, -0.5},
        {MB_INT16, -32769},
        {MB_INT16, -32768.5},
        {MB_INT16, 32767.5},
        {MB_INT16, 32768},
        {MB_UINT32, -1},
        {MB_UINT32, 4294967296.0},
        {MB_UINT32, 4294967295.5},
        {MB_INT32, 2147483648.0},
        {MB_INT32, -2147483649.0},
        {MB_UINT64, 1.9e19},
        {MB_UINT64, 18446744073709551616.0},
        {MB_UINT64, -1},
        {MB_INT64, 9223372036854775808.0},
        {MB_INT64, -9223372036854777856.0},
        {MB_INT64, 1e300},
        {MB_FLOAT32, 1e39},
        {MB_FLOAT32, -1e39},
        {MB_FLOAT32, (double)FLT_MAX * 1.0000001},
    };
    uint16_t regs[4] = {0x1111, 0x2222, 0x3333, 0x4444};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int oi = 0; oi < 4; oi++) {
            mb_io_fmt_t io = fmt(bad[i].f, orders[oi]);
            if (mb_encode(&io, bad[i].v, regs) != -ERANGE) {
                fail_msg("format %d value %.17g: not -ERANGE", bad[i].f, bad[i].v);
            }
        }
    }
    for (int fi = 0; fi < 8; fi++) {
        mb_io_fmt_t io = fmt(formats[fi], MB_ABCD);
        assert_int_equal(mb_encode(&io, NAN, regs), -ERANGE);
        assert_int_equal(mb_encode(&io, INFINITY, regs), -ERANGE);
        assert_int_equal(mb_encode(&io, -INFINITY, regs), -ERANGE);
        /* Finite value, raw beyond a double. */
        io.scale = 1e-300;
        assert_int_equal(mb_encode(&io, 1e300, regs), -ERANGE);
    }
    /* A refused write leaves the registers alone. */
    assert_regs(regs, (const uint16_t[]){0x1111, 0x2222, 0x3333, 0x4444}, 4);
}

static void test_bits(void **state)
{
    (void)state;
    mb_io_fmt_t io = {MB_HOLDING_REGISTER, MB_FLOAT64, MB_DCBA, 2, 10.0, 5.0};
    uint16_t reg = 0x0004;
    assert_true(mb_decode(&io, &reg) == 1.0); /* scale and offset ignored */
    io.bit = 1;
    assert_true(mb_decode(&io, &reg) == 0.0);
    io.bit = 0;
    reg = 0x8001;
    assert_true(mb_decode(&io, &reg) == 1.0);
    io.bit = 15;
    assert_true(mb_decode(&io, &reg) == 1.0);

    reg = 0x0001;
    assert_int_equal(mb_encode(&io, 1.0, &reg), 0);
    assert_int_equal(reg, 0x8001);
    assert_int_equal(mb_encode(&io, 1.0, &reg), 0);
    assert_int_equal(reg, 0x8001);
    io.bit = 0;
    assert_int_equal(mb_encode(&io, 0.0, &reg), 0);
    assert_int_equal(reg, 0x8000);
    io.bit = 7;
    assert_int_equal(mb_encode(&io, 0.0, &reg), 0);
    assert_int_equal(reg, 0x8000);
    assert_int_equal(mb_encode(&io, 2.0, &reg), -ERANGE);
    assert_int_equal(mb_encode(&io, 0.5, &reg), -ERANGE);
    assert_int_equal(mb_encode(&io, -1.0, &reg), -ERANGE);
    assert_int_equal(mb_encode(&io, NAN, &reg), -ERANGE);
    assert_int_equal(reg, 0x8000);
    io.scale = 0.0; /* not used by bits */
    assert_int_equal(mb_encode(&io, 1.0, &reg), 0);
    assert_int_equal(reg, 0x8080);

    /* A bit beyond the register is a bad config. */
    io.bit = 16;
    assert_true(isnan(mb_decode(&io, &reg)));
    assert_int_equal(mb_encode(&io, 1.0, &reg), -EINVAL);
    assert_int_equal(reg, 0x8080);
    assert_false(mb_same(&io, 1.0, &reg));

    /* Bit tables: regs[0] is the bit; format, order, bit, scale and offset are ignored. */
    mb_table_t tables[] = {MB_COIL, MB_DISCRETE_INPUT};
    for (int i = 0; i < 2; i++) {
        mb_io_fmt_t c = {tables[i], MB_FLOAT32, MB_CDAB, 3, 10.0, 5.0};
        uint16_t b = 1;
        assert_true(mb_decode(&c, &b) == 1.0);
        b = 0;
        assert_true(mb_decode(&c, &b) == 0.0);
        assert_int_equal(mb_encode(&c, 1.0, &b), 0);
        assert_int_equal(b, 1);
        assert_int_equal(mb_encode(&c, 0.0, &b), 0);
        assert_int_equal(b, 0);
        assert_int_equal(mb_encode(&c, 15.0, &b), -ERANGE);
        assert_int_equal(mb_encode(&c, NAN, &b), -ERANGE);
        c.scale = 0.0;
        assert_int_equal(mb_encode(&c, 1.0, &b), 0);
        assert_int_equal(b, 1);
    }
}

static void test_same(void **state)
{
    (void)state;
    mb_io_fmt_t io = fmt(MB_FLOAT32, MB_CDAB);
    uint16_t regs[4];
    assert_int_equal(mb_encode(&io, 0.1f, regs), 0);
    assert_true(mb_same(&io, 0.1, regs)); /* a double 0.1 a float32 cannot hold */
    assert_true(mb_same(&io, 0.1f, regs));
    assert_true(mb_decode(&io, regs) != 0.1);
    assert_false(mb_same(&io, 0.2, regs));
    assert_false(mb_same(&io, NAN, regs));
    assert_false(mb_same(&io, 1e39, regs));

    /* float64 holds 0.1 and 0.1f apart. */
    io.format = MB_FLOAT64;
    assert_int_equal(mb_encode(&io, 0.1f, regs), 0);
    assert_false(mb_same(&io, 0.1, regs));
    assert_true(mb_same(&io, 0.1f, regs));

    /* Scaled integers compare after rounding. */
    io = (mb_io_fmt_t){MB_HOLDING_REGISTER, MB_UINT16, MB_BADC, -1, 0.1, -40.0};
    uint16_t raw = 0xD204; /* 1234 with the bytes swapped */
    assert_true(mb_same(&io, 83.4, &raw));
    assert_true(mb_same(&io, 83.44, &raw));
    assert_false(mb_same(&io, 83.46, &raw));
    assert_false(mb_same(&io, -100.0, &raw));

    /* Only the words of the width count. */
    io = fmt(MB_UINT32, MB_ABCD);
    uint16_t w[4] = {0x0001, 0x0002, 0x9999, 0x9999};
    assert_true(mb_same(&io, 65538.0, w));
    assert_false(mb_same(&io, 65539.0, w));

    /* A register bit compares only its bit. */
    io = (mb_io_fmt_t){MB_HOLDING_REGISTER, MB_UINT16, MB_ABCD, 2, 1.0, 0.0};
    uint16_t reg = 0xFFFB;
    assert_true(mb_same(&io, 0.0, &reg));
    assert_false(mb_same(&io, 1.0, &reg));
    reg = 0x0004;
    assert_true(mb_same(&io, 1.0, &reg));
    assert_false(mb_same(&io, 0.0, &reg));
    assert_false(mb_same(&io, 2.0, &reg));
    assert_int_equal(reg, 0x0004); /* regs are not written */

    /* Coils. */
    io = (mb_io_fmt_t){MB_COIL, MB_UINT16, MB_ABCD, -1, 1.0, 0.0};
    uint16_t b = 1;
    assert_true(mb_same(&io, 1.0, &b));
    assert_false(mb_same(&io, 0.0, &b));
    b = 0;
    assert_true(mb_same(&io, 0.0, &b));
    assert_false(mb_same(&io, 0.5, &b));
}

/* The planner's invariants: every span inside its request, same unit and table, requests
 * ordered by unit, table, address and within the limit unless holding one wide span. */
static void check_plan(const mb_span_t *s, size_t n, int max_regs, const mb_req_t *req, int nreq,
                       const int *owner)
{
    assert_true(nreq >= 0 && (size_t)nreq <= n);
    for (size_t k = 0; k < n; k++) {
        assert_true(owner[k] >= 0 && owner[k] < nreq);
        const mb_req_t *r = &req[owner[k]];
        assert_int_equal(r->unit, s[k].unit);
        assert_int_equal(r->table, s[k].table);
        assert_true(r->address <= s[k].address);
        assert_true(s[k].address + s[k].width <= r->address + r->count);
    }
    for (int i = 0; i < nreq; i++) {
        bool bits = req[i].table == MB_COIL || req[i].table == MB_DISCRETE_INPUT;
        int limit = bits ? (max_regs * 16 < 2000 ? max_regs * 16 : 2000) : max_regs;
        if (req[i].count > limit) {
            /* Exactly one wide span's own request, with only spans inside it. */
            bool own = false;
            for (size_t k = 0; k < n; k++) {
                own = own || (owner[k] == i && s[k].address == req[i].address &&
                              s[k].width == req[i].count);
            }
            assert_true(own);
        }
        if (i > 0) {
            const mb_req_t *a = &req[i - 1], *b = &req[i];
            assert_true(a->unit < b->unit || (a->unit == b->unit && a->table < b->table) ||
                        (a->unit == b->unit && a->table == b->table && a->address <= b->address));
        }
    }
}

static int plan(const mb_span_t *s, size_t n, int max_regs, int max_gap, mb_req_t **req, int *owner)
{
    int nreq = mb_plan(s, n, max_regs, max_gap, req, owner);
    assert_true(nreq >= 0);
    check_plan(s, n, max_regs, *req, nreq, owner);
    return nreq;
}

static void assert_req(const mb_req_t *r, int unit, mb_table_t t, int address, int count)
{
    if (r->unit != unit || r->table != t || r->address != address || r->count != count) {
        fail_msg("request {%d, %d, %d, %d}, want {%d, %d, %d, %d}", r->unit, r->table, r->address,
                 r->count, unit, t, address, count);
    }
}

static void test_plan_adjacent(void **state)
{
    (void)state;
    mb_span_t s[200];
    int owner[200];
    mb_req_t *req;
    for (int i = 0; i < 200; i++) {
        s[i] = (mb_span_t){1, MB_HOLDING_REGISTER, 100 + i, 1};
    }
    assert_int_equal(plan(s, 50, 125, 0, &req, owner), 1);
    assert_req(&req[0], 1, MB_HOLDING_REGISTER, 100, 50);
    sprig_free(req);

    assert_int_equal(plan(s, 200, 125, 0, &req, owner), 2);
    assert_req(&req[0], 1, MB_HOLDING_REGISTER, 100, 125);
    assert_req(&req[1], 1, MB_HOLDING_REGISTER, 225, 75);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(owner[i], i < 125 ? 0 : 1);
    }
    sprig_free(req);

    /* Reversed input plans the same. */
    mb_span_t rev[200];
    for (int i = 0; i < 200; i++) {
        rev[i] = s[199 - i];
    }
    assert_int_equal(plan(rev, 200, 125, 0, &req, owner), 2);
    assert_req(&req[0], 1, MB_HOLDING_REGISTER, 100, 125);
    assert_req(&req[1], 1, MB_HOLDING_REGISTER, 225, 75);
    assert_int_equal(owner[0], 1);
    assert_int_equal(owner[199], 0);
    sprig_free(req);

    /* One register per request. */
    assert_int_equal(plan(s, 5, 1, 10, &req, owner), 5);
    sprig_free(req);

    assert_int_equal(mb_plan(s, 0, 125, 0, &req, owner), 0);
    assert_null(req);
}

static void test_plan_gaps(void **state)
{
    (void)state;
    mb_span_t s[10];
    int owner[10];
    mb_req_t *req;
    for (int i = 0; i < 10; i++) {
        s[i] = (mb_span_t){1, MB_INPUT_REGISTER, 10 * i, 1};
    }
    assert_int_equal(plan(s, 10, 125, 16, &req, owner), 1);
    assert_req(&req[0], 1, MB_INPUT_REGISTER, 0, 91);
    sprig_free(req);
    assert_int_equal(plan(s, 10, 125, 9, &req, owner), 1); /* a gap of exactly max_gap */
    sprig_free(req);
    assert_int_equal(plan(s, 10, 125, 8, &req, owner), 10);
    sprig_free(req);
    assert_int_equal(plan(s, 10, 125, 4, &req, owner), 10);
    for (int i = 0; i < 10; i++) {
        assert_req(&req[i], 1, MB_INPUT_REGISTER, 10 * i, 1);
        assert_int_equal(owner[i], i);
    }
    sprig_free(req);
    /* Gaps count against the limit: 0..45 is 46 registers, 0..50 is 51. */
    assert_int_equal(plan(s, 10, 50, 16, &req, owner), 2);
    assert_req(&req[0], 1, MB_INPUT_REGISTER, 0, 41);
    assert_req(&req[1], 1, MB_INPUT_REGISTER, 50, 41);
    sprig_free(req);
    /* A negative max_gap acts as 0: adjacent spans still join. */
    s[1].address = 1;
    assert_int_equal(plan(s, 2, 125, -5, &req, owner), 1);
    assert_req(&req[0], 1, MB_INPUT_REGISTER, 0, 2);
    sprig_free(req);
}

static void test_plan_units_tables(void **state)
{
    (void)state;
    mb_span_t s[] = {
        {2, MB_HOLDING_REGISTER, 0, 1},
        {1, MB_INPUT_REGISTER, 1, 1},
        {1, MB_HOLDING_REGISTER, 1, 1},
        {1, MB_HOLDING_REGISTER, 0, 1},
        {1, MB_COIL, 0, 1},
        {2, MB_HOLDING_REGISTER, 1, 1},
        {1, MB_DISCRETE_INPUT, 0, 1},
        {1, MB_INPUT_REGISTER, 0, 1},
    };
    int owner[8];
    mb_req_t *req;
    assert_int_equal(plan(s, 8, 125, 0, &req, owner), 5);
    assert_req(&req[0], 1, MB_COIL, 0, 1);
    assert_req(&req[1], 1, MB_DISCRETE_INPUT, 0, 1);
    assert_req(&req[2], 1, MB_HOLDING_REGISTER, 0, 2);
    assert_req(&req[3], 1, MB_INPUT_REGISTER, 0, 2);
    assert_req(&req[4], 2, MB_HOLDING_REGISTER, 0, 2);
    static const int want[] = {4, 3, 2, 2, 0, 4, 1, 3};
    for (int k = 0; k < 8; k++) {
        assert_int_equal(owner[k], want[k]);
    }
    sprig_free(req);
}

static void test_plan_coils(void **state)
{
    (void)state;
    mb_span_t *s = malloc(3000 * sizeof *s);
    int *owner = malloc(3000 * sizeof *owner);
    assert_non_null(s);
    assert_non_null(owner);
    for (int i = 0; i < 3000; i++) {
        s[i] = (mb_span_t){7, MB_COIL, i, 1};
    }
    mb_req_t *req;
    assert_int_equal(plan(s, 3000, 125, 0, &req, owner), 2);
    assert_req(&req[0], 7, MB_COIL, 0, 2000);
    assert_req(&req[1], 7, MB_COIL, 2000, 1000);
    sprig_free(req);
    /* max_regs 10: 160 bits a request. */
    assert_int_equal(plan(s, 3000, 10, 0, &req, owner), 19);
    for (int i = 0; i < 18; i++) {
        assert_req(&req[i], 7, MB_COIL, 160 * i, 160);
    }
    assert_req(&req[18], 7, MB_COIL, 2880, 120);
    sprig_free(req);
    for (int i = 0; i < 3000; i++) {
        s[i].table = MB_DISCRETE_INPUT;
    }
    assert_int_equal(plan(s, 3000, 1000, 0, &req, owner), 2);
    assert_req(&req[0], 7, MB_DISCRETE_INPUT, 0, 2000);
    sprig_free(req);
    free(s);
    free(owner);
}

static void test_plan_wide(void **state)
{
    (void)state;
    mb_span_t s[130];
    int owner[130];
    mb_req_t *req;
    /* uint16 at 0..122, a float64 at 123..126, then 127 and 128: 0..126 would be 127. */
    for (int i = 0; i < 123; i++) {
        s[i] = (mb_span_t){1, MB_HOLDING_REGISTER, i, 1};
    }
    s[123] = (mb_span_t){1, MB_HOLDING_REGISTER, 123, 4};
    s[124] = (mb_span_t){1, MB_HOLDING_REGISTER, 127, 1};
    s[125] = (mb_span_t){1, MB_HOLDING_REGISTER, 128, 1};
    assert_int_equal(plan(s, 126, 125, 0, &req, owner), 2);
    assert_req(&req[0], 1, MB_HOLDING_REGISTER, 0, 123);
    assert_req(&req[1], 1, MB_HOLDING_REGISTER, 123, 6);
    assert_int_equal(owner[122], 0);
    assert_int_equal(owner[123], 1);
    assert_int_equal(owner[125], 1);
    sprig_free(req);
    /* Without the first two, the float64 fits: 2..126 is 125 registers. */
    assert_int_equal(plan(s + 2, 124, 125, 0, &req, owner), 2);
    assert_req(&req[0], 1, MB_HOLDING_REGISTER, 2, 125);
    assert_req(&req[1], 1, MB_HOLDING_REGISTER, 127, 2);
    sprig_free(req);

    /* A span wider than max_regs gets a request of its own. */
    mb_span_t w[] = {
        {1, MB_HOLDING_REGISTER, 10, 1},
        {1, MB_HOLDING_REGISTER, 11, 4},
        {1, MB_HOLDING_REGISTER, 15, 1},
    };
    assert_int_equal(plan(w, 3, 2, 0, &req, owner), 3);
    assert_req(&req[0], 1, MB_HOLDING_REGISTER, 10, 1);
    assert_req(&req[1], 1, MB_HOLDING_REGISTER, 11, 4);
    assert_req(&req[2], 1, MB_HOLDING_REGISTER, 15, 1);
    sprig_free(req);
    /* Spans inside the wide one's request are read with it; those sticking out are not. */
    mb_span_t in[] = {
        {1, MB_HOLDING_REGISTER, 11, 4},
        {1, MB_HOLDING_REGISTER, 12, 1},
        {1, MB_HOLDING_REGISTER, 11, 4},
        {1, MB_HOLDING_REGISTER, 14, 2},
    };
    assert_int_equal(plan(in, 4, 2, 0, &req, owner), 2);
    assert_req(&req[0], 1, MB_HOLDING_REGISTER, 11, 4);
    assert_req(&req[1], 1, MB_HOLDING_REGISTER, 14, 2);
    assert_int_equal(owner[0], 0);
    assert_int_equal(owner[1], 0);
    assert_int_equal(owner[2], 0);
    assert_int_equal(owner[3], 1);
    sprig_free(req);
}

static void test_plan_overlap(void **state)
{
    (void)state;
    /* Two bits of register 5 (listed twice), then 6: max_gap 0 joins them all. */
    mb_span_t s[] = {
        {1, MB_HOLDING_REGISTER, 5, 1},
        {1, MB_HOLDING_REGISTER, 5, 1},
        {1, MB_HOLDING_REGISTER, 6, 1},
    };
    int owner[4];
    mb_req_t *req;
    assert_int_equal(plan(s, 2, 125, 0, &req, owner), 1);
    assert_req(&req[0], 1, MB_HOLDING_REGISTER, 5, 1);
    sprig_free(req);
    assert_int_equal(plan(s, 3, 125, 0, &req, owner), 1);
    assert_req(&req[0], 1, MB_HOLDING_REGISTER, 5, 2);
    sprig_free(req);
    /* One register a request: the duplicates still share one. */
    assert_int_equal(plan(s, 3, 1, 0, &req, owner), 2);
    assert_req(&req[0], 1, MB_HOLDING_REGISTER, 5, 1);
    assert_req(&req[1], 1, MB_HOLDING_REGISTER, 6, 1);
    assert_int_equal(owner[1], 0);
    sprig_free(req);

    /* A float32 at 10..11, a uint16 inside it at 11, a float64 at 8..11 and one at 12: the
     * end is the furthest register so far, so 12 is adjacent. */
    mb_span_t o[] = {
        {1, MB_INPUT_REGISTER, 10, 2},
        {1, MB_INPUT_REGISTER, 11, 1},
        {1, MB_INPUT_REGISTER, 8, 4},
        {1, MB_INPUT_REGISTER, 12, 1},
    };
    assert_int_equal(plan(o, 4, 125, 0, &req, owner), 1);
    assert_req(&req[0], 1, MB_INPUT_REGISTER, 8, 5);
    sprig_free(req);
    /* A narrow span first at an address does not shorten the request. */
    mb_span_t p[] = {
        {1, MB_INPUT_REGISTER, 0, 1},
        {1, MB_INPUT_REGISTER, 0, 4},
        {1, MB_INPUT_REGISTER, 2, 1},
        {1, MB_INPUT_REGISTER, 5, 1},
    };
    assert_int_equal(plan(p, 4, 125, 0, &req, owner), 2);
    assert_req(&req[0], 1, MB_INPUT_REGISTER, 0, 4);
    assert_req(&req[1], 1, MB_INPUT_REGISTER, 5, 1);
    sprig_free(req);
}

static void test_plan_random(void **state)
{
    (void)state;
    enum { N = 300 };
    mb_span_t s[N], shuffled[N];
    int owner[N], owner2[N];
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    static const int widths[] = {1, 1, 2, 4};
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < N; i++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            mb_table_t t = (mb_table_t)(rng >> 40 & 3);
            bool bits = t == MB_COIL || t == MB_DISCRETE_INPUT;
            s[i] = (mb_span_t){(int)(rng >> 50 & 3), t, (int)(rng >> 20 & 1023),
                               bits ? 1 : widths[rng >> 33 & 3]};
        }
        int max_regs = 1 + round * 3;
        int max_gap = round % 7;
        mb_req_t *req, *req2;
        int n = plan(s, N, max_regs, max_gap, &req, owner);
        /* Deterministic whatever the input order. */
        for (int i = 0; i < N; i++) {
            shuffled[i] = s[(i * 7 + 3) % N];
        }
        int n2 = plan(shuffled, N, max_regs, max_gap, &req2, owner2);
        assert_int_equal(n, n2);
        assert_memory_equal(req, req2, (size_t)n * sizeof *req);
        for (int i = 0; i < N; i++) {
            assert_int_equal(owner2[i], owner[(i * 7 + 3) % N]);
        }
        sprig_free(req);
        sprig_free(req2);
    }
}

static void test_plan_nomem(void **state)
{
    (void)state;
    mb_span_t s[] = {{1, MB_HOLDING_REGISTER, 0, 1}, {1, MB_HOLDING_REGISTER, 1, 1}};
    int owner[2];
    mb_req_t *req = (mb_req_t *)&req;
    sprig_alloc_fail_after(0);
    assert_int_equal(mb_plan(s, 2, 125, 0, &req, owner), -ENOMEM);
    assert_null(req);
    sprig_alloc_fail_after(1);
    assert_int_equal(mb_plan(s, 2, 125, 0, &req, owner), -ENOMEM);
    assert_null(req);
    sprig_alloc_fail_after(-1);
    assert_int_equal(mb_plan(s, 2, 125, 0, &req, owner), 1);
    sprig_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),        cmocka_unit_test(test_width),
        cmocka_unit_test(test_words_16),     cmocka_unit_test(test_words_32),
        cmocka_unit_test(test_words_64),     cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_scale_offset), cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_range),        cmocka_unit_test(test_bits),
        cmocka_unit_test(test_same),         cmocka_unit_test(test_plan_adjacent),
        cmocka_unit_test(test_plan_gaps),    cmocka_unit_test(test_plan_units_tables),
        cmocka_unit_test(test_plan_coils),   cmocka_unit_test(test_plan_wide),
        cmocka_unit_test(test_plan_overlap), cmocka_unit_test(test_plan_random),
        cmocka_unit_test(test_plan_nomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
