/* Logging: one line per event on stderr, prefixed with UTC time and level. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sprig/log.h"

static sprig_log_level_t log_level = SPRIG_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sprig_log_set_level(sprig_log_level_t level)
{
    log_level = level;
}

int sprig_log_parse_level(const char *s, sprig_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (sprig_log_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

void sprig_log(sprig_log_level_t level, const char *fmt, ...)
{
    if (level > log_level) {
        return;
    }
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %-5s ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line, so lines of several threads do not interleave. */
    fprintf(stderr, "%s\n", line);
}
