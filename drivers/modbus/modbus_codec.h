/* Modbus values and requests, without I/O (DESIGN.md section 8, "Modbus conventions"):
 * decoding registers into values and encoding values into registers for every data format
 * and byte order, and planning the fewest read requests that cover a set of IOs. Pure
 * functions, any thread. */
#ifndef SPRIG_MODBUS_CODEC_H
#define SPRIG_MODBUS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mb_table {
    MB_COIL,             /* read FC1, write FC5/FC15 */
    MB_DISCRETE_INPUT,   /* read FC2 */
    MB_HOLDING_REGISTER, /* read FC3, write FC6/FC16 */
    MB_INPUT_REGISTER,   /* read FC4 */
} mb_table_t;

typedef enum mb_format {
    MB_UINT16,
    MB_INT16,
    MB_UINT32,
    MB_INT32,
    MB_UINT64,
    MB_INT64,
    MB_FLOAT32,
    MB_FLOAT64,
} mb_format_t;

typedef enum mb_order { MB_ABCD, MB_DCBA, MB_BADC, MB_CDAB } mb_order_t;

/* How one IO is read and written. bit < 0: the whole value; 0-15: one bit of a register
 * (the value is 0 or 1, the format is ignored). Tables of bits (coils, discrete inputs)
 * ignore format, order and bit. */
typedef struct mb_io_fmt {
    mb_table_t table;
    mb_format_t format;
    mb_order_t order;
    int bit;
    double scale; /* value = raw * scale + offset */
    double offset;
} mb_io_fmt_t;

/* Parses the schema's text of modbusIoType, dataFormat, byteOrder ("holdingRegister",
 * "float32", "CDAB"...). 0, or -EINVAL for an unknown name. */
int mb_table_parse(const char *s, mb_table_t *out);
int mb_format_parse(const char *s, mb_format_t *out);
int mb_order_parse(const char *s, mb_order_t *out);
const char *mb_table_name(mb_table_t t);

/* Registers (or bits) one IO occupies: 1 for bits and 16-bit formats and register bits,
 * 2 for 32-bit, 4 for 64-bit formats. */
int mb_io_width(const mb_io_fmt_t *f);

/* Decodes the IO's value from its registers (regs[0..width-1], in wire order; for bit
 * tables regs[0] is 0 or 1), applying scale and offset. */
double mb_decode(const mb_io_fmt_t *f, const uint16_t *regs);

/* Encodes a (scaled) value into the IO's registers (regs[0..width-1]): raw =
 * (value - offset) / scale, rounded to nearest for integer formats. For a register bit,
 * regs[0] holds the current register on input and gets the bit set or cleared. Returns
 * 0, or -ERANGE when raw does not fit the format (or is not finite, or a bit is not 0/1),
 * or -EINVAL when scale is 0. */
int mb_encode(const mb_io_fmt_t *f, double value, uint16_t *regs);

/* True when value and the value held in regs encode to the same registers (so a
 * valueSet a float32 cannot hold exactly is written once, not forever). */
bool mb_same(const mb_io_fmt_t *f, double value, const uint16_t *regs);

/* One IO to read, for planning: its unit, table, first address and width. */
typedef struct mb_span {
    int unit;
    mb_table_t table;
    int address; /* 0-65535 */
    int width;
} mb_span_t;

/* One read request: unit, table, first address, count of registers/bits. */
typedef struct mb_req {
    int unit;
    mb_table_t table;
    int address;
    int count;
} mb_req_t;

/* Plans read requests covering every span, fewest first: spans are grouped by (unit,
 * table), sorted by address, and joined into one request while the gap of unused
 * registers between them is at most max_gap and the request stays within max_regs
 * registers (bit tables: max_regs * 16 bits, at most 2000). A span wider than max_regs
 * gets a request of its own. req[i] for i < return value; spans[k] is covered by
 * request owner[k] (owner has nspans entries). Returns the number of requests (<= nspans),
 * or -ENOMEM. The caller frees *req. */
int mb_plan(const mb_span_t *spans, size_t nspans, int max_regs, int max_gap, mb_req_t **req,
            int *owner);

#endif
