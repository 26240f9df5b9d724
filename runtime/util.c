/* Shared helpers: the id charset, UTF-8 checks, UUIDv4 and time formatting. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "sprig/util.h"

bool sprig_id_valid(const char *s)
{
    size_t n = 0;
    if (s == NULL) {
        return false;
    }
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' || ch == '-';
        if (!ok || n >= SPRIG_ID_MAX) {
            return false;
        }
    }
    return n > 0;
}

/* The length of the well-formed UTF-8 sequence at s (at most n bytes), or 0 when the
 * bytes there are not one (a NUL, a stray or missing continuation byte, an overlong
 * form, a surrogate, a code point past U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c == 0) {
        return 0;
    }
    if (c < 0x80) {
        return 1;
    }
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
    }
    else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
    }
    else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
    }
    else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

bool sprig_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0, len; i < n; i += len) {
        if ((len = utf8_seq(s + i, n - i)) == 0) {
            return false;
        }
    }
    return true;
}

size_t sprig_utf8_escape(char *str, size_t cap)
{
    char in[1024];
    size_t n = strlen(str);
    if (cap == 0 || n >= sizeof(in)) {
        return 0;
    }
    memcpy(in, str, n + 1);
    const unsigned char *s = (const unsigned char *)in;
    size_t w = 0, escaped = 0;
    for (size_t i = 0, len; i < n; i += len) {
        len = utf8_seq(s + i, n - i);
        bool control = len == 1 && (s[i] < 0x20 || s[i] == 0x7f) && s[i] != '\n' &&
                       s[i] != '\t';
        if (len == 0 || control) {
            if (w + 4 >= cap) {
                break;
            }
            snprintf(str + w, 5, "\\x%02x", s[i]);
            w += 4;
            len = 1;
            escaped++;
            continue;
        }
        if (w + len >= cap) {
            break; /* cut at a character's end */
        }
        memcpy(str + w, s + i, len);
        w += len;
    }
    str[w] = '\0';
    return escaped;
}

int sprig_uuid4(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        return -errno;
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

int64_t sprig_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

char *sprig_time_format(int64_t ns, char *out, size_t n)
{
    time_t sec = (time_t)(ns / 1000000000LL);
    long frac = (long)(ns % 1000000000LL);
    if (frac < 0) {
        frac += 1000000000L;
        sec -= 1;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return out;
}
