/* Libraries loaded on first use: see dl.h. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dl.h"
#include "sprig/alloc.h"

int sprig_dl_load(const char *soname, const sprig_dl_sym_t *syms, size_t n, void *table,
                  size_t size, char *why, size_t whylen)
{
    void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        snprintf(why, whylen, "%s cannot be loaded (%s)", soname, dlerror());
        return -ENOENT;
    }
    char *filled = sprig_malloc(size);
    if (filled == NULL) {
        dlclose(lib);
        snprintf(why, whylen, "%s: out of memory", soname);
        return -ENOMEM;
    }
    memcpy(filled, table, size);
    for (size_t i = 0; i < n; i++) {
        void *fn = dlsym(lib, syms[i].name);
        if (fn == NULL || syms[i].offset + sizeof(fn) > size) {
            snprintf(why, whylen, "%s has no %s (too old a version)", soname, syms[i].name);
            sprig_free(filled);
            dlclose(lib);
            return -ENOENT;
        }
        memcpy(filled + syms[i].offset, &fn, sizeof(fn));
    }
    memcpy(table, filled, size);
    sprig_free(filled);
    return 0;
}
