/* Libraries loaded on first use (dlopen) instead of linked: a library only some setups
 * need (libmosquitto for sync, libpq for a PostgreSQL store) then costs nothing where it
 * is not used, nor do the libraries it links (OpenSSL, Kerberos, LDAP: megabytes of
 * resident pages just by being loaded). Not a public header. */
#ifndef SPRIG_DL_H
#define SPRIG_DL_H

#include <stddef.h>

/* One function to look up: its name, and where its address goes in the caller's table. */
typedef struct sprig_dl_sym {
    const char *name;
    size_t offset;
} sprig_dl_sym_t;

/* Opens soname and fills table (size bytes) with the n functions of syms; the library
 * stays loaded for the process's life. 0, or -ENOENT with why (the library and what went
 * wrong: not installed, a function missing) in why; table is then left as it was. */
int sprig_dl_load(const char *soname, const sprig_dl_sym_t *syms, size_t n, void *table,
                  size_t size, char *why, size_t whylen);

#endif
