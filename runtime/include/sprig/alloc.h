/* The one allocator seam (Redis's zmalloc): every module allocates through these, so a
 * test can inject failures and a benchmark can count bytes. */
#ifndef SPRIG_ALLOC_H
#define SPRIG_ALLOC_H

#include "sprig/common.h"

/* Like malloc/calloc/realloc/free/strdup; NULL on failure (or injected failure).
 * sprig_free(NULL) is a no-op. Any thread may call them. */
SPRIG_API void *sprig_malloc(size_t n);
SPRIG_API void *sprig_calloc(size_t count, size_t n);
SPRIG_API void *sprig_realloc(void *p, size_t n);
SPRIG_API void sprig_free(void *p);
SPRIG_API char *sprig_strdup(const char *s);
SPRIG_API char *sprig_strndup(const char *s, size_t n);

/* Makes room for at least `need` items of `size` bytes in the array *items of capacity
 * *cap (doubling, from 16), so every growing array grows the same way. Returns 0, or
 * -ENOMEM with *items and *cap as they were. */
SPRIG_API int sprig_grow(void **items, size_t *cap, size_t need, size_t size);

/* A libuv close callback for a handle allocated with sprig_malloc: frees it
 * (uv_close(h, sprig_free_handle)). */
struct uv_handle_s;
SPRIG_API void sprig_free_handle(struct uv_handle_s *h);

/* Failure injection for tests: after `n` more successful allocations, every allocation
 * fails until reset with n < 0 (the default). Not thread-safe; tests only. */
SPRIG_API void sprig_alloc_fail_after(long n);

#endif
