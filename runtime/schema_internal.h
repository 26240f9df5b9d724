/* What schema.c, schema_check.c and schema_src.c share: finding the line of a field in a schema file's
 * source text, so an error names the line of the point or attribute that is wrong. */
#ifndef SPRIG_SCHEMA_INTERNAL_H
#define SPRIG_SCHEMA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "sprig/schema.h"

/* True when v is one of the NULL-terminated list (NULL: an empty list). */
bool schema__in_list(const char *const *list, const char *v);

/* The tokens of one schema file. */
typedef struct schema_src schema_src_t;

/* Splits the Lua source text[0..len) into tokens, with their lines. Returns the tokens
 * (free with schema__src_free), or NULL when out of memory. text is borrowed and must stay
 * valid until schema__src_free. */
schema_src_t *schema__src_open(const char *text, size_t len);
void schema__src_free(schema_src_t *src);

/* The line of what `keys` names in the spec of the `nodetype "name" { ... }` call at `line`:
 * keys is NULL-terminated, a path of field names through nested table constructors
 * (e.g. "points", "level", "max"). Comments and strings are skipped, keys may be written
 * `name =` or `["name"] =`, and a key given twice counts where Lua takes it (the last).
 * Returns the line of the deepest key found, or `line` itself when the call or the first
 * key is not in the text (a spec built elsewhere, a type name computed at run time) or src
 * is NULL. */
int schema__src_line(const schema_src_t *src, int line, const char *name, const char *const *keys);

/* A loaded schema (schema.c builds it; schema_check.c looks types up in it): its types
 * sorted by name, and everything its tables point to. */
typedef struct type_rec {
    sprig_schema_type_t t; /* first: a sprig_schema_type_t * is a type_rec * */
    sprig_schema_point_t *own;
    size_t nown;
    int extends_line, parents_line; /* where the spec says them, for errors found later */
    int resolved;                   /* 0 no, 1 in progress, 2 done */
} type_rec_t;

struct sprig_schema {
    type_rec_t **types;
    size_t n, cap;
    char **strings; /* everything the tables point to */
    size_t nstr, capstr;
    void **blocks;
    size_t nblk, capblk;
};

#endif
