/* Shared definitions of every sprig module: export macro, limits and the error record. */
#ifndef SPRIG_COMMON_H
#define SPRIG_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define SPRIG_API __attribute__((visibility("default")))

/* Longest node id, point type, key and origin, in bytes (DESIGN.md section 2). */
#define SPRIG_ID_MAX 64
/* Default longest text of one point, in bytes; the core's option text_max changes it. */
#define SPRIG_TEXT_MAX_DEFAULT (64 * 1024)

/* A sentence for a person, filled by a call that fails: it names the thing, the rule
 * broken and the value. Callers own it (usually on the stack); an empty msg means no detail. */
typedef struct sprig_error {
    char msg[512];
} sprig_error_t;

/* Formats into err (which may be NULL) and returns code, so a failing path can
 * `return sprig_error_set(err, -EINVAL, "...", ...)`. */
SPRIG_API int sprig_error_set(sprig_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
