/* The MCU link's frames: see serial_frame.h. */
#include <errno.h>
#include <string.h>

#include "serial_frame.h"

uint16_t ser_crc16_kermit(const uint8_t *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++) {
            crc = (crc & 1) != 0 ? (uint16_t)((crc >> 1) ^ 0x8408) : (uint16_t)(crc >> 1);
        }
    }
    return crc;
}

size_t ser_cobs_encode(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            continue;
        }
        out[o++] = in[i];
        if (++code == 0xff) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        }
    }
    out[code_at] = code;
    return o;
}

long ser_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = in[i++];
        if (code == 0 || i + (size_t)code - 1 > n) {
            return -EINVAL;
        }
        for (uint8_t k = 1; k < code; k++) {
            if (in[i] == 0) {
                return -EINVAL;
            }
            if (o == cap) {
                return -E2BIG;
            }
            out[o++] = in[i++];
        }
        if (code != 0xff && i < n) {
            if (o == cap) {
                return -E2BIG;
            }
            out[o++] = 0;
        }
    }
    return (long)o;
}

int ser_frame_parse(const uint8_t *raw, size_t n, ser_frame_t *out)
{
    if (n < 1 + SER_SUBJECT + 2) {
        return -EINVAL;
    }
    uint16_t crc = (uint16_t)(raw[n - 2] | raw[n - 1] << 8);
    if (ser_crc16_kermit(raw, n - 2) != crc) {
        return -EBADMSG;
    }
    out->seq = raw[0];
    size_t k = 0;
    for (; k < SER_SUBJECT && raw[1 + k] != 0; k++) {
        if (raw[1 + k] < 0x20 || raw[1 + k] > 0x7e) {
            return -EINVAL;
        }
        out->subject[k] = (char)raw[1 + k];
    }
    out->subject[k] = '\0';
    for (size_t pad = k; pad < SER_SUBJECT; pad++) {
        if (raw[1 + pad] != 0) {
            return -EINVAL; /* NUL padding only after the subject */
        }
    }
    out->payload = raw + 1 + SER_SUBJECT;
    out->len = n - 1 - SER_SUBJECT - 2;
    return 0;
}

long ser_frame_build(uint8_t seq, const char *subject, const uint8_t *payload, size_t len,
                     uint8_t *out, size_t cap)
{
    uint8_t raw[SER_RAW_MAX];
    size_t sl = subject != NULL ? strlen(subject) : 0;
    if (len > SER_PAYLOAD_MAX || sl > SER_SUBJECT) {
        return -E2BIG;
    }
    for (size_t k = 0; k < sl; k++) {
        if (subject[k] < 0x20 || subject[k] > 0x7e) {
            return -EINVAL; /* the other end would refuse it */
        }
    }
    raw[0] = seq;
    memset(raw + 1, 0, SER_SUBJECT);
    if (sl > 0) {
        memcpy(raw + 1, subject, sl);
    }
    if (len > 0) {
        memcpy(raw + 1 + SER_SUBJECT, payload, len);
    }
    size_t n = 1 + SER_SUBJECT + len;
    uint16_t crc = ser_crc16_kermit(raw, n);
    raw[n++] = (uint8_t)(crc & 0xff);
    raw[n++] = (uint8_t)(crc >> 8);
    if (cap < n + n / 254 + 2) {
        return -E2BIG;
    }
    size_t e = ser_cobs_encode(raw, n, out);
    out[e++] = 0;
    return (long)e;
}
