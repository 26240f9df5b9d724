/* Logging to stderr, one line per event, with a settable level. */
#ifndef SPRIG_LOG_H
#define SPRIG_LOG_H

#include "sprig/common.h"

typedef enum { SPRIG_LOG_ERROR, SPRIG_LOG_WARN, SPRIG_LOG_INFO, SPRIG_LOG_DEBUG } sprig_log_level_t;

/* Sets the most verbose level printed (default SPRIG_LOG_INFO). */
SPRIG_API void sprig_log_set_level(sprig_log_level_t level);
/* Parses "error", "warn", "info" or "debug"; returns 0 or -EINVAL. */
SPRIG_API int sprig_log_parse_level(const char *s, sprig_log_level_t *out);
SPRIG_API void sprig_log(sprig_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define sprig_log_error(...) sprig_log(SPRIG_LOG_ERROR, __VA_ARGS__)
#define sprig_log_warn(...) sprig_log(SPRIG_LOG_WARN, __VA_ARGS__)
#define sprig_log_info(...) sprig_log(SPRIG_LOG_INFO, __VA_ARGS__)
#define sprig_log_debug(...) sprig_log(SPRIG_LOG_DEBUG, __VA_ARGS__)

#endif
