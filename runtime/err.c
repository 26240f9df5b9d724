/* Error messages for errno values and sprig's own codes, and the error record. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sprig/err.h"
#include "sprig/util.h"

const char *sprig_strerror(int code)
{
    switch (code) {
#define SPRIG_ERR_CASE_(name, msg)                                                                 \
    case SPRIG_E##name:                                                                            \
        return msg;
        SPRIG_ERRNO_MAP(SPRIG_ERR_CASE_)
#undef SPRIG_ERR_CASE_
    case 0:
        return "success";
    default:
        break;
    }
    if (code < 0 && code > SPRIG_ERR_BASE) {
        return strerror(-code);
    }
    return "unknown error";
}

int sprig_error_set(sprig_error_t *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        /* A value quoted with a precision ("%.64s"), or the sentence cut at its size, may
         * end inside a character: the sentence goes into JSON and logs, so mend it. */
        sprig_utf8_escape(err->msg, sizeof(err->msg));
    }
    return code;
}
