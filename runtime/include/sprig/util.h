/* Small helpers several modules share: id checks, UUIDs, clocks and time formatting. */
#ifndef SPRIG_UTIL_H
#define SPRIG_UTIL_H

#include <stdbool.h>
#include "sprig/common.h"

/* True when s is 1..SPRIG_ID_MAX bytes of [A-Za-z0-9._:-] (ids, point types, keys). */
SPRIG_API bool sprig_id_valid(const char *s);
/* True when the n bytes at s are well-formed UTF-8 with no NUL. */
SPRIG_API bool sprig_utf8_valid(const char *s, size_t n);
/* Makes the string s (in a buffer of cap bytes) well-formed UTF-8 without control
 * characters, in place, for sentences built from pieces of input that go into JSON and
 * logs: each byte that does not belong to a well-formed sequence (bytes a client sent, or
 * what a cut with "%.40s" leaves at the end of a piece) and each control byte but newline
 * and tab becomes the text \xNN, so the sentence shows what was sent; what no longer
 * fits is cut at a character's end. Returns the number of bytes escaped (0 for a string
 * of 1,024 bytes or more, left as it is). */
SPRIG_API size_t sprig_utf8_escape(char *s, size_t cap);
/* Writes a random UUIDv4 as 36 characters plus NUL into out; returns 0 or -errno. */
SPRIG_API int sprig_uuid4(char out[37]);
/* Wall-clock time in nanoseconds since the Unix epoch. */
SPRIG_API int64_t sprig_wall_ns(void);
/* Formats ns as RFC 3339 UTC with nine fraction digits ("2026-11-27T21:05:00.123456789Z")
 * into out (at least 36 bytes); returns out. */
SPRIG_API char *sprig_time_format(int64_t ns, char *out, size_t n);

#endif
