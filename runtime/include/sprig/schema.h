/* Typed node schemas (DESIGN.md section 6). Schema authors write Lua files of
 * `nodetype "name" { ... }` declarations; the loader runs each file once in a sandboxed
 * Lua state (no io, os, require, load of bytecode; a memory and an instruction budget) and
 * compiles the types into C tables, so checking a write never calls Lua. A loaded schema
 * is immutable: a reload builds a new one and swaps it in only when it is whole. */
#ifndef SPRIG_SCHEMA_H
#define SPRIG_SCHEMA_H

#include <stdbool.h>
#include "sprig/point.h"

typedef enum {
    SPRIG_KIND_NUMBER,
    SPRIG_KIND_INTEGER,
    SPRIG_KIND_BOOL,
    SPRIG_KIND_TEXT,
    SPRIG_KIND_ENUM,
} sprig_kind_t;

typedef enum { SPRIG_KEYS_ONE, SPRIG_KEYS_ARRAY, SPRIG_KEYS_MAP } sprig_keys_t;

/* One declared point of a type. Strings are owned by the schema. */
typedef struct sprig_schema_point {
    const char *name;
    sprig_kind_t kind;
    bool has_min, has_max, has_default, required, owner_driver, local;
    bool owner_people; /* owner = "people": configures the system; no rule writes it */
    double min, max;
    double default_value;     /* number, integer, bool */
    const char *default_text; /* text, enum; NULL when none */
    const char *unit, *description;
    const char *const *values; /* enum values, NULL-terminated; NULL for other kinds */
    sprig_keys_t keys;
    const char *const *map_keys; /* allowed map keys, NULL-terminated; NULL: any id */
    const char *declared_in;     /* the type that declares it (differs when inherited) */
} sprig_schema_point_t;

typedef struct sprig_schema_type {
    const char *name, *description, *extends;
    const char *const *parents; /* allowed parent types, NULL-terminated; NULL: any */
    bool open;                  /* points it does not declare are allowed */
    const sprig_schema_point_t *points;
    size_t npoints;
    const char *file; /* where it is declared, and the line */
    int line;
} sprig_schema_type_t;

typedef struct sprig_schema sprig_schema_t;

/* Loads every *.lua file of each folder, in name order, folder by folder (a later folder
 * may extend the types of an earlier one). A folder given again (by the same or another
 * path: a symlink, `./schema/`, an absolute path) is loaded once, where it first appears. Returns 0 and *out, or the number of errors
 * (> 0) with each one reported through report as "FILE:LINE: message" and *out NULL; or
 * -ENOMEM. report may be NULL. */
SPRIG_API int sprig_schema_load(const char *const *dirs, size_t ndirs, sprig_schema_t **out,
                                void (*report)(const char *msg, void *arg), void *arg);
SPRIG_API void sprig_schema_free(sprig_schema_t *s);

/* The type of that name, or NULL. Borrowed, valid until the schema is freed. */
SPRIG_API const sprig_schema_type_t *sprig_schema_type(const sprig_schema_t *s, const char *name);
/* Types in name order: i from 0 until NULL. */
SPRIG_API const sprig_schema_type_t *sprig_schema_type_at(const sprig_schema_t *s, size_t i);
/* The declared point of a type, or NULL. */
SPRIG_API const sprig_schema_point_t *sprig_schema_point(const sprig_schema_type_t *t,
                                                         const char *name);

/* Checks one point written to node `node_id` of type `t`: declared (unless the type is
 * open), kind, range, enum value, key form, and owner (a driver-owned point only from
 * origin == node_id). Returns 0 or -EINVAL with err like
 * `node pump-1: point "speed" = 4000 is above max 3000 (modbusIo)`. */
SPRIG_API int sprig_schema_check_point(const sprig_schema_type_t *t, const char *node_id,
                                       const sprig_point_t *p, sprig_error_t *err);
/* The same, with the driver-owned points writable by origin == driver_id (the node whose
 * driver serves this one: a Modbus bus for its IOs); driver_id NULL means node_id. */
SPRIG_API int sprig_schema_check_point_as(const sprig_schema_type_t *t, const char *node_id,
                                          const char *driver_id, const sprig_point_t *p,
                                          sprig_error_t *err);
/* Checks a new node of type t under a parent of type parent_type with its first points:
 * the parent type is allowed, and every required point is given or has a default.
 * Returns 0 or -EINVAL with err. */
SPRIG_API int sprig_schema_check_create(const sprig_schema_type_t *t, const char *node_id,
                                        const char *parent_type, const sprig_point_t *pts, size_t n,
                                        sprig_error_t *err);
/* Checks only the parents rule: a node of type t may sit under a parent of parent_type.
 * Returns 0 or -EINVAL with err. */
SPRIG_API int sprig_schema_check_parent(const sprig_schema_type_t *t, const char *node_id,
                                        const char *parent_type, sprig_error_t *err);
/* Checks only that every required point without a default is among pts. Returns 0 or
 * -EINVAL with err. */
SPRIG_API int sprig_schema_check_required(const sprig_schema_type_t *t, const char *node_id,
                                          const sprig_point_t *pts, size_t n, sprig_error_t *err);
/* True when the point type is local to this instance (not hashed, not synced). */
SPRIG_API bool sprig_schema_is_local(const sprig_schema_t *s, const char *node_type,
                                     const char *point_type);

/* How many declared names sprig_schema_check_type suggests at most. */
#define SPRIG_SCHEMA_SUGGEST_MAX 3
/* Checks that a new node `node_id` is of a type the schema declares. Returns 0, or -EINVAL
 * with err like `node p1: type "pumpp" is not declared (did you mean pump?)`, suggesting
 * up to SPRIG_SCHEMA_SUGGEST_MAX declared types closest by edit distance (at most one edit,
 * case ignored, per three bytes of the name; none when none is that close), nearest
 * first. */
SPRIG_API int sprig_schema_check_type(const sprig_schema_t *s, const char *node_id,
                                      const char *type, sprig_error_t *err);

#endif
