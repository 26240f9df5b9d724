/* A growing text buffer, for messages and COPY text built piece by piece (sync's JSON,
 * the PostgreSQL store's rows). Out of memory sticks: later appends do nothing and oom
 * says so, so a caller checks once at the end. p is NUL-terminated while not oom. Not a
 * public header. */
#ifndef SPRIG_SBUF_H
#define SPRIG_SBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

/* Room for n more bytes after len (and a NUL): where they go, or NULL when out of memory.
 * The caller writes them and adds what it wrote to len. */
char *sb_reserve(sbuf_t *b, size_t n);
void sb_add(sbuf_t *b, const char *s, size_t n);
void sb_str(sbuf_t *b, const char *s);        /* appends s as-is */
void sb_fmt(sbuf_t *b, const char *fmt, ...)  /* appends printf output (short) */
    __attribute__((format(printf, 2, 3)));
void sb_free(sbuf_t *b);

#endif
