/* The checks a write must pass against a node type (schema.h): a point's declaration,
 * kind, range, enum value, key form and owner; a node's parent type and required points.
 * Loop thread, or any thread holding a loaded schema (it does not change). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sprig/err.h"
#include "sprig/schema.h"
#include "schema_internal.h"

static bool all_digits(const char *k)
{
    if (*k == '\0' || (k[0] == '0' && k[1] != '\0')) {
        return false;
    }
    for (; *k != '\0'; k++) {
        if (*k < '0' || *k > '9') {
            return false;
        }
    }
    return true;
}

int sprig_schema_check_point(const sprig_schema_type_t *t, const char *node_id,
                             const sprig_point_t *p, sprig_error_t *err)
{
    return sprig_schema_check_point_as(t, node_id, NULL, p, err);
}

int sprig_schema_check_point_as(const sprig_schema_type_t *t, const char *node_id,
                                const char *driver_id, const sprig_point_t *p, sprig_error_t *err)
{
    const sprig_schema_point_t *sp = sprig_schema_point(t, p->type);
    const char *key = p->key != NULL ? p->key : "0";
    const char *text = p->text != NULL ? p->text : "";
    const char *origin = p->origin != NULL ? p->origin : "";
    if (sp == NULL) {
        /* Every type takes a description (text) and disabled (bool) without declaring them. */
        if (strcmp(p->type, "description") == 0 && strcmp(key, "0") == 0) {
            return 0;
        }
        if (strcmp(p->type, "disabled") == 0 && strcmp(key, "0") == 0) {
            if (!p->tombstone && p->value != 0 && p->value != 1) {
                return sprig_error_set(err, -EINVAL,
                                       "node %s: point \"disabled\" = %.17g is not 0 or 1 (%s)",
                                       node_id, p->value, t->name);
            }
            return 0;
        }
        if (t->open) {
            return 0;
        }
        return sprig_error_set(err, -EINVAL, "node %s: point \"%s\" is not declared by type %s",
                               node_id, p->type, t->name);
    }
    if (sp->owner_driver && strcmp(origin, driver_id != NULL ? driver_id : node_id) != 0) {
        return sprig_error_set(err, -EINVAL,
                               "node %s: point \"%s\" is written by its driver only, not by %s%s%s "
                               "(%s)",
                               node_id, p->type, origin[0] != '\0' ? "\"" : "",
                               origin[0] != '\0' ? origin : "a person",
                               origin[0] != '\0' ? "\"" : "", t->name);
    }
    if (sp->keys == SPRIG_KEYS_ONE && strcmp(key, "0") != 0) {
        return sprig_error_set(err, -EINVAL,
                               "node %s: point \"%s\" key \"%s\" is not allowed: it has one value, "
                               "key \"0\" (%s)",
                               node_id, p->type, key, t->name);
    }
    if (sp->keys == SPRIG_KEYS_ARRAY && !all_digits(key)) {
        return sprig_error_set(err, -EINVAL,
                               "node %s: point \"%s\" key \"%s\" is not an array index 0, 1, ... "
                               "(%s)",
                               node_id, p->type, key, t->name);
    }
    if (sp->keys == SPRIG_KEYS_MAP && sp->map_keys != NULL && !schema__in_list(sp->map_keys, key)) {
        return sprig_error_set(err, -EINVAL,
                               "node %s: point \"%s\" key \"%s\" is not one of its "
                               "keys (%s)",
                               node_id, p->type, key, t->name);
    }
    if (p->tombstone) {
        return 0; /* deleting a point needs no valid value */
    }
    double v = p->value;
    switch (sp->kind) {
    case SPRIG_KIND_INTEGER:
        if (v != floor(v)) {
            return sprig_error_set(err, -EINVAL,
                                   "node %s: point \"%s\" = %.17g is not an integer (%s)", node_id,
                                   p->type, v, t->name);
        }
        /* fall through */
    case SPRIG_KIND_NUMBER:
        if (sp->has_min && v < sp->min) {
            return sprig_error_set(err, -EINVAL,
                                   "node %s: point \"%s\" = %.17g is below min %g (%s)", node_id,
                                   p->type, v, sp->min, t->name);
        }
        if (sp->has_max && v > sp->max) {
            return sprig_error_set(err, -EINVAL,
                                   "node %s: point \"%s\" = %.17g is above max %g (%s)", node_id,
                                   p->type, v, sp->max, t->name);
        }
        break;
    case SPRIG_KIND_BOOL:
        if (v != 0 && v != 1) {
            return sprig_error_set(err, -EINVAL, "node %s: point \"%s\" = %.17g is not 0 or 1 (%s)",
                                   node_id, p->type, v, t->name);
        }
        break;
    case SPRIG_KIND_ENUM:
        if (!schema__in_list(sp->values, text)) {
            char list[256] = "";
            size_t used = 0;
            for (const char *const *e = sp->values; *e != NULL && used < sizeof(list) - 70; e++) {
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                         e == sp->values ? "" : ", ", *e);
            }
            return sprig_error_set(err, -EINVAL,
                                   "node %s: point \"%s\" = \"%.64s\" is not one of %s (%s)",
                                   node_id, p->type, text, list, t->name);
        }
        break;
    case SPRIG_KIND_TEXT:
        break;
    }
    return 0;
}

int sprig_schema_check_parent(const sprig_schema_type_t *t, const char *node_id,
                              const char *parent_type, sprig_error_t *err)
{
    if (t->parents != NULL && !schema__in_list(t->parents, parent_type)) {
        char list[256] = "";
        size_t used = 0;
        for (const char *const *e = t->parents; *e != NULL && used < sizeof(list) - 70; e++) {
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                     e == t->parents ? "" : ", ", *e);
        }
        return sprig_error_set(err, -EINVAL,
                               "node %s: a %s may not be placed under a %s (allowed parents: %s)",
                               node_id, t->name, parent_type, list);
    }
    return 0;
}

int sprig_schema_check_create(const sprig_schema_type_t *t, const char *node_id,
                              const char *parent_type, const sprig_point_t *pts, size_t n,
                              sprig_error_t *err)
{
    int rc = sprig_schema_check_parent(t, node_id, parent_type, err);
    return rc != 0 ? rc : sprig_schema_check_required(t, node_id, pts, n, err);
}

int sprig_schema_check_required(const sprig_schema_type_t *t, const char *node_id,
                                const sprig_point_t *pts, size_t n, sprig_error_t *err)
{
    for (size_t i = 0; i < t->npoints; i++) {
        const sprig_schema_point_t *sp = &t->points[i];
        if (!sp->required || sp->has_default) {
            continue;
        }
        bool given = false;
        for (size_t k = 0; k < n && !given; k++) {
            given = strcmp(pts[k].type, sp->name) == 0 && !pts[k].tombstone;
        }
        if (!given) {
            return sprig_error_set(err, -EINVAL, "node %s: required point \"%s\" is missing (%s)",
                                   node_id, sp->name, t->name);
        }
    }
    return 0;
}
