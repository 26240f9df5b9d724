/* Modbus values and requests, without I/O (DESIGN.md section 8, "Modbus conventions"):
 * registers to values and back for every data format and byte order, and the planner that
 * joins IOs into the fewest read requests. Every function is pure; any thread. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "modbus_codec.h"
#include "sprig/alloc.h"

/* The protocol's cap on bits in one FC1/FC2 read. */
#define MB_MAX_BITS 2000

static const char *const table_names[] = {"coil", "discreteInput", "holdingRegister",
                                          "inputRegister"};
static const char *const format_names[] = {"uint16", "int16", "uint32",  "int32",
                                           "uint64", "int64", "float32", "float64"};
static const char *const order_names[] = {"ABCD", "DCBA", "BADC", "CDAB"};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Index of s in names, or -1. Names are matched exactly, as the schema spells them. */
static int find_name(const char *s, const char *const *names, size_t n)
{
    if (s == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int mb_table_parse(const char *s, mb_table_t *out)
{
    int i = find_name(s, table_names, COUNT_OF(table_names));
    if (i < 0) {
        return -EINVAL;
    }
    *out = (mb_table_t)i;
    return 0;
}

int mb_format_parse(const char *s, mb_format_t *out)
{
    int i = find_name(s, format_names, COUNT_OF(format_names));
    if (i < 0) {
        return -EINVAL;
    }
    *out = (mb_format_t)i;
    return 0;
}

int mb_order_parse(const char *s, mb_order_t *out)
{
    int i = find_name(s, order_names, COUNT_OF(order_names));
    if (i < 0) {
        return -EINVAL;
    }
    *out = (mb_order_t)i;
    return 0;
}

const char *mb_table_name(mb_table_t t)
{
    if ((unsigned)t >= COUNT_OF(table_names)) {
        return "unknown";
    }
    return table_names[t];
}

static bool is_bit_table(mb_table_t t)
{
    return t == MB_COIL || t == MB_DISCRETE_INPUT;
}

/* Registers of a whole value of this format: 1, 2 or 4 (1 for an unknown format). */
static int format_width(mb_format_t f)
{
    switch (f) {
    case MB_UINT32:
    case MB_INT32:
    case MB_FLOAT32:
        return 2;
    case MB_UINT64:
    case MB_INT64:
    case MB_FLOAT64:
        return 4;
    default:
        return 1;
    }
}

int mb_io_width(const mb_io_fmt_t *f)
{
    if (is_bit_table(f->table) || f->bit >= 0) {
        return 1;
    }
    return format_width(f->format);
}

/* Which byte of the value (0 = A, the most significant) travels as wire byte j of n
 * registers (wire byte 2i is the high byte of register i). Each order is its own inverse,
 * so the same map serves decoding and encoding. */
static int wire_to_value(mb_order_t o, int j, int n)
{
    int last = 2 * n - 1;
    switch (o) {
    case MB_DCBA:
        return last - j;
    case MB_BADC:
        return j ^ 1;
    case MB_CDAB:
        return 2 * (n - 1 - j / 2) + (j & 1);
    default:
        return j;
    }
}

/* The value's bits, most significant first, from n registers in wire order. */
static uint64_t gather(mb_order_t o, const uint16_t *regs, int n)
{
    uint8_t v[8];
    for (int j = 0; j < 2 * n; j++) {
        uint16_t r = regs[j / 2];
        v[wire_to_value(o, j, n)] = (uint8_t)((j & 1) ? r & 0xFF : r >> 8);
    }
    uint64_t u = 0;
    for (int j = 0; j < 2 * n; j++) {
        u = (u << 8) | v[j];
    }
    return u;
}

/* The inverse of gather: u's low 16 * n bits into n registers in wire order. */
static void scatter(mb_order_t o, uint64_t u, uint16_t *regs, int n)
{
    uint8_t v[8];
    for (int j = 2 * n - 1; j >= 0; j--) {
        v[j] = (uint8_t)(u & 0xFF);
        u >>= 8;
    }
    for (int i = 0; i < n; i++) {
        regs[i] =
            (uint16_t)(v[wire_to_value(o, 2 * i, n)] << 8 | v[wire_to_value(o, 2 * i + 1, n)]);
    }
}

/* The raw (unscaled) value of u in format f; two's complement without
 * implementation-defined conversions. */
static double raw_value(mb_format_t f, uint64_t u)
{
    switch (f) {
    case MB_UINT16:
    case MB_UINT32:
    case MB_UINT64:
        return (double)u;
    case MB_INT16:
        return (double)((int32_t)u - (u >= 0x8000u ? 0x10000 : 0));
    case MB_INT32:
        return (double)((int64_t)u - (u >= 0x80000000u ? 0x100000000LL : 0));
    case MB_INT64:
        if (u > (uint64_t)INT64_MAX) {
            return (double)(-(int64_t)~u - 1);
        }
        return (double)(int64_t)u;
    case MB_FLOAT32: {
        uint32_t b = (uint32_t)u;
        float x;
        memcpy(&x, &b, sizeof x);
        return x;
    }
    case MB_FLOAT64: {
        double x;
        memcpy(&x, &u, sizeof x);
        return x;
    }
    default:
        return NAN;
    }
}

double mb_decode(const mb_io_fmt_t *f, const uint16_t *regs)
{
    if (is_bit_table(f->table)) {
        return regs[0] != 0 ? 1.0 : 0.0;
    }
    if (f->bit >= 0) {
        if (f->bit > 15) {
            return NAN;
        }
        return (double)((regs[0] >> f->bit) & 1);
    }
    int n = format_width(f->format);
    double raw = raw_value(f->format, gather(f->order, regs, n));
    return raw * f->scale + f->offset;
}

/* The bits of raw in integer format f (rounded half away from zero, as llround), or
 * -ERANGE when the rounded value is outside the format. raw is finite. The bounds are
 * powers of two, exact in a double, so no conversion below is out of range. */
static int integer_bits(mb_format_t f, double raw, uint64_t *u)
{
    double r = round(raw);
    double lo, hi; /* lo <= r < hi */
    bool is_signed = f == MB_INT16 || f == MB_INT32 || f == MB_INT64;
    int bits = f == MB_UINT16 || f == MB_INT16 ? 16 : f == MB_UINT32 || f == MB_INT32 ? 32 : 64;
    if (is_signed) {
        lo = -ldexp(1.0, bits - 1);
        hi = ldexp(1.0, bits - 1);
    }
    else {
        lo = 0.0;
        hi = ldexp(1.0, bits);
    }
    if (!(r >= lo && r < hi)) {
        return -ERANGE;
    }
    if (r >= 0) {
        *u = (uint64_t)r;
    }
    else {
        /* Two's complement of |r| in 64 bits; scatter keeps the low 16 * n bits. */
        *u = ~(uint64_t)(-r) + 1;
    }
    return 0;
}

int mb_encode(const mb_io_fmt_t *f, double value, uint16_t *regs)
{
    if (is_bit_table(f->table) || f->bit >= 0) {
        if (!is_bit_table(f->table) && f->bit > 15) {
            return -EINVAL;
        }
        if (value != 0.0 && value != 1.0) {
            return -ERANGE;
        }
        if (is_bit_table(f->table)) {
            regs[0] = value == 1.0 ? 1 : 0;
        }
        else if (value == 1.0) {
            regs[0] = (uint16_t)(regs[0] | 1u << f->bit);
        }
        else {
            regs[0] = (uint16_t)(regs[0] & ~(1u << f->bit));
        }
        return 0;
    }
    if (f->scale == 0.0) {
        return -EINVAL;
    }
    double raw = (value - f->offset) / f->scale;
    if (!isfinite(raw)) {
        return -ERANGE;
    }
    uint64_t u;
    switch (f->format) {
    case MB_FLOAT32: {
        if (fabs(raw) > FLT_MAX) {
            return -ERANGE;
        }
        float x = (float)raw;
        uint32_t b;
        memcpy(&b, &x, sizeof b);
        u = b;
        break;
    }
    case MB_FLOAT64:
        memcpy(&u, &raw, sizeof u);
        break;
    case MB_UINT16:
    case MB_INT16:
    case MB_UINT32:
    case MB_INT32:
    case MB_UINT64:
    case MB_INT64: {
        int rc = integer_bits(f->format, raw, &u);
        if (rc < 0) {
            return rc;
        }
        break;
    }
    default:
        return -EINVAL;
    }
    scatter(f->order, u, regs, format_width(f->format));
    return 0;
}

bool mb_same(const mb_io_fmt_t *f, double value, const uint16_t *regs)
{
    uint16_t enc[4] = {regs[0], 0, 0, 0};
    if (mb_encode(f, value, enc) < 0) {
        return false;
    }
    if (is_bit_table(f->table)) {
        return enc[0] == (regs[0] != 0 ? 1 : 0);
    }
    if (f->bit >= 0) {
        return ((enc[0] ^ regs[0]) >> f->bit & 1) == 0;
    }
    int n = format_width(f->format);
    return memcmp(enc, regs, (size_t)n * sizeof enc[0]) == 0;
}

/* A span's sort key: unit, table, address, then its index, so the sort is stable. */
typedef struct span_key {
    int unit;
    int table;
    int address;
    size_t k;
} span_key_t;

static int span_cmp(const void *pa, const void *pb)
{
    const span_key_t *a = pa, *b = pb;
    if (a->unit != b->unit) {
        return a->unit < b->unit ? -1 : 1;
    }
    if (a->table != b->table) {
        return a->table < b->table ? -1 : 1;
    }
    if (a->address != b->address) {
        return a->address < b->address ? -1 : 1;
    }
    return a->k < b->k ? -1 : a->k > b->k ? 1 : 0;
}

/* Registers (or bits) one request of table t may cover. */
static long request_limit(mb_table_t t, int max_regs)
{
    if (is_bit_table(t)) {
        return max_regs >= MB_MAX_BITS / 16 ? MB_MAX_BITS : (long)max_regs * 16;
    }
    return max_regs;
}

int mb_plan(const mb_span_t *spans, size_t nspans, int max_regs, int max_gap, mb_req_t **req,
            int *owner)
{
    *req = NULL;
    if (nspans == 0) {
        return 0;
    }
    if (nspans > INT_MAX || nspans > SIZE_MAX / sizeof(span_key_t) ||
        nspans > SIZE_MAX / sizeof(mb_req_t)) {
        return -ENOMEM;
    }
    span_key_t *order = sprig_malloc(nspans * sizeof *order);
    mb_req_t *out = sprig_malloc(nspans * sizeof *out);
    if (order == NULL || out == NULL) {
        sprig_free(order);
        sprig_free(out);
        return -ENOMEM;
    }
    for (size_t k = 0; k < nspans; k++) {
        order[k] = (span_key_t){spans[k].unit, (int)spans[k].table, spans[k].address, k};
    }
    qsort(order, nspans, sizeof *order, span_cmp);

    long gap = max_gap > 0 ? max_gap : 0;
    int n = 0;
    long end = 0; /* address after the last register the current request covers */
    for (size_t i = 0; i < nspans; i++) {
        size_t k = order[i].k;
        const mb_span_t *s = &spans[k];
        int width = s->width > 0 ? s->width : 1;
        long s_end = (long)s->address + width;
        if (n > 0) {
            mb_req_t *r = &out[n - 1];
            long new_end = s_end > end ? s_end : end;
            /* A span inside the request joins it even when the request is one span
             * wider than the limit: it costs nothing, and duplicates then share. */
            bool fits = s_end <= end || (s->address - end <= gap &&
                                         new_end - r->address <= request_limit(s->table, max_regs));
            if (r->unit == s->unit && r->table == s->table && fits) {
                r->count = (int)(new_end - r->address);
                end = new_end;
                owner[k] = n - 1;
                continue;
            }
        }
        out[n] = (mb_req_t){s->unit, s->table, s->address, width};
        end = s_end;
        owner[k] = n;
        n++;
    }
    sprig_free(order);
    *req = out;
    return n;
}
