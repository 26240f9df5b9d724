/* The allocator seam: thin wrappers over libc with failure injection for tests. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/alloc.h"

static long fail_after = -1;

/* Returns 1 when this allocation should fail (injected), 0 otherwise. */
static int injected_failure(void)
{
    if (fail_after < 0) {
        return 0;
    }
    if (fail_after == 0) {
        return 1;
    }
    fail_after--;
    return 0;
}

void sprig_alloc_fail_after(long n)
{
    fail_after = n;
}

void *sprig_malloc(size_t n)
{
    return injected_failure() ? NULL : malloc(n);
}

void *sprig_calloc(size_t count, size_t n)
{
    return injected_failure() ? NULL : calloc(count, n);
}

void *sprig_realloc(void *p, size_t n)
{
    return injected_failure() ? NULL : realloc(p, n);
}

void sprig_free(void *p)
{
    free(p);
}

int sprig_grow(void **items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap != 0 ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2 / size) {
            return -ENOMEM;
        }
        n *= 2;
    }
    void *p = sprig_realloc(*items, n * size);
    if (p == NULL) {
        return -ENOMEM;
    }
    *items = p;
    *cap = n;
    return 0;
}

void sprig_free_handle(struct uv_handle_s *h)
{
    sprig_free(h);
}

char *sprig_strndup(const char *s, size_t n)
{
    char *d = sprig_malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *sprig_strdup(const char *s)
{
    return sprig_strndup(s, strlen(s));
}
