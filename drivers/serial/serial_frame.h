/* The MCU link's frames (DESIGN.md section 8, Simple IoT's serial protocol), without I/O:
 * a frame is seq (u8) | subject (16 bytes, NUL padded) | payload | CRC-16/KERMIT of what
 * precedes it (little-endian), COBS-encoded and ended by a zero byte. Pure functions, any
 * thread; the decoder takes any bytes (it is fuzzed: tests/fuzz/). */
#ifndef SPRIG_SERIAL_FRAME_H
#define SPRIG_SERIAL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define SER_SUBJECT 16       /* bytes of the subject field */
#define SER_PAYLOAD_MAX 4096 /* largest payload taken or sent */
#define SER_RAW_MAX (1 + SER_SUBJECT + SER_PAYLOAD_MAX + 2)
/* Largest encoded frame, with its zero delimiter. */
#define SER_WIRE_MAX (SER_RAW_MAX + SER_RAW_MAX / 254 + 2)

/* CRC-16/KERMIT (poly 0x1021 reflected, init 0, no final xor): "123456789" is 0x2189. */
uint16_t ser_crc16_kermit(const uint8_t *p, size_t n);

/* COBS: encodes n bytes into out (room for n + n / 254 + 1), without the delimiter;
 * returns the encoded length. */
size_t ser_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);
/* Decodes n COBS bytes (no delimiter) into out (cap bytes); returns the decoded length,
 * or -EINVAL when the input is not valid COBS (a zero inside, a code past the end) or
 * -E2BIG when it does not fit. */
long ser_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

typedef struct ser_frame {
    uint8_t seq;
    char subject[SER_SUBJECT + 1]; /* NUL terminated */
    const uint8_t *payload;        /* into the decoded buffer */
    size_t len;
} ser_frame_t;

/* Parses a decoded frame: 0, -EINVAL (shorter than seq, subject and CRC, a subject that
 * is not printable ASCII, or anything but NULs after it) or -EBADMSG (CRC mismatch). */
int ser_frame_parse(const uint8_t *raw, size_t n, ser_frame_t *out);
/* Builds the wire bytes of a frame (COBS plus the zero delimiter) into out (cap bytes,
 * SER_WIRE_MAX is always enough); returns their length, or -E2BIG when the payload is
 * over SER_PAYLOAD_MAX or the subject over 16 bytes, -EINVAL when the subject is not
 * printable ASCII. An ack is a frame with no subject
 * and no payload. */
long ser_frame_build(uint8_t seq, const char *subject, const uint8_t *payload, size_t len,
                     uint8_t *out, size_t cap);

#endif
