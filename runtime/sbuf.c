/* A growing text buffer: see sbuf.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sbuf.h"
#include "sprig/alloc.h"

char *sb_reserve(sbuf_t *b, size_t n)
{
    if (b->oom) {
        return NULL;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = sprig_realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->len;
}

void sb_add(sbuf_t *b, const char *s, size_t n)
{
    char *o = sb_reserve(b, n);
    if (o != NULL) {
        memcpy(o, s, n);
        b->len += n;
        b->p[b->len] = '\0';
    }
}

void sb_str(sbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

void sb_fmt(sbuf_t *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) {
        sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
    }
}

void sb_free(sbuf_t *b)
{
    sprig_free(b->p);
    memset(b, 0, sizeof(*b));
}
