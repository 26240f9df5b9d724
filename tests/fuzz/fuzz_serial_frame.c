/* libFuzzer target of the MCU link's frame codec (serial_frame.h): the input is a byte
 * stream from the port, split on zero bytes as the driver does; each piece is COBS-decoded
 * and parsed. A decoded piece must re-encode and decode to itself, and a frame that parses
 * must build, decode and parse back to the same seq, subject and payload (abort() if not).
 * Build and run: tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serial_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t raw[SER_RAW_MAX];
static uint8_t raw2[SER_RAW_MAX];
static uint8_t enc[SER_RAW_MAX + SER_RAW_MAX / 254 + 1];
static uint8_t wire[SER_WIRE_MAX];

static void check_piece(const uint8_t *p, size_t n)
{
    long d = ser_cobs_decode(p, n, raw, sizeof(raw));
    if (d < 0) {
        return;
    }
    /* COBS: what decoded re-encodes to bytes that decode to it again. */
    size_t e = ser_cobs_encode(raw, (size_t)d, enc);
    if (e > (size_t)d + (size_t)d / 254 + 1 || memchr(enc, 0, e) != NULL) {
        abort();
    }
    if (ser_cobs_decode(enc, e, raw2, sizeof(raw2)) != d || memcmp(raw, raw2, (size_t)d) != 0) {
        abort();
    }

    ser_frame_t f;
    if (ser_frame_parse(raw, (size_t)d, &f) != 0) {
        return;
    }
    if (strlen(f.subject) > SER_SUBJECT || f.len > SER_PAYLOAD_MAX) {
        abort();
    }
    long w = ser_frame_build(f.seq, f.subject, f.payload, f.len, wire, sizeof(wire));
    if (w < 1 || wire[w - 1] != 0 || memchr(wire, 0, (size_t)w - 1) != NULL) {
        abort();
    }
    long d2 = ser_cobs_decode(wire, (size_t)w - 1, raw2, sizeof(raw2));
    if (d2 != (long)(1 + SER_SUBJECT + f.len + 2)) {
        abort();
    }
    ser_frame_t g;
    if (ser_frame_parse(raw2, (size_t)d2, &g) != 0) {
        abort();
    }
    if (g.seq != f.seq || strcmp(g.subject, f.subject) != 0 || g.len != f.len ||
        (f.len > 0 && memcmp(g.payload, f.payload, f.len) != 0)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == 0) {
            if (i > start) { /* the driver skips empty pieces (two zeros in a row) */
                check_piece(data + start, i - start);
            }
            start = i + 1;
        }
    }
    /* A trailing piece with no delimiter yet: the driver would wait for more, but decode
     * it anyway so the fuzzer need not find the zero. */
    if (start < size) {
        check_piece(data + start, size - start);
    }
    return 0;
}
