/* The allocator seam: thin wrappers over libc with failure injection for tests. */
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
