/* The lookups of a loaded schema, and the checks a write must pass against a node type
 * (schema.h): a type declared (else the closest names), a point's declaration, kind,
 * range, enum value, key form and owner; a node's parent type and required points.
 * Loop thread, or any thread holding a loaded schema (it does not change). */
#include <ctype.h>
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

/* --- lookups and checks ------------------------------------------------------------- */

const sprig_schema_type_t *sprig_schema_type(const sprig_schema_t *s, const char *name)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->types[mid]->t.name, name);
        if (c == 0) {
            return &s->types[mid]->t;
        }
        if (c < 0) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return NULL;
}

const sprig_schema_type_t *sprig_schema_type_at(const sprig_schema_t *s, size_t i)
{
    return i < s->n ? &s->types[i]->t : NULL;
}

const sprig_schema_point_t *sprig_schema_point(const sprig_schema_type_t *t, const char *name)
{
    for (size_t i = 0; i < t->npoints; i++) {
        if (strcmp(t->points[i].name, name) == 0) {
            return &t->points[i];
        }
    }
    return NULL;
}

bool sprig_schema_is_local(const sprig_schema_t *s, const char *node_type, const char *point_type)
{
    const sprig_schema_type_t *t = sprig_schema_type(s, node_type);
    const sprig_schema_point_t *p = t != NULL ? sprig_schema_point(t, point_type) : NULL;
    return p != NULL && p->local;
}

/* --- undeclared types, and the declared names closest to them ------------------------- */

/* The edit distance (insertions, deletions, substitutions and swaps of two neighbours,
 * each 1; case ignored) between a and b, both at most SPRIG_ID_MAX bytes. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d[SPRIG_ID_MAX + 1][SPRIG_ID_MAX + 1]; /* distances stay below 129 */
    for (size_t i = 0; i <= la; i++) {
        d[i][0] = (unsigned char)i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = (unsigned char)j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + (size_t)(ca != cb);
            best = d[i - 1][j] + 1u < best ? d[i - 1][j] + 1u : best;
            best = d[i][j - 1] + 1u < best ? d[i][j - 1] + 1u : best;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1u < best) {
                best = d[i - 2][j - 2] + 1u;
            }
            d[i][j] = (unsigned char)best;
        }
    }
    return d[la][lb];
}

int sprig_schema_check_type(const sprig_schema_t *s, const char *node_id, const char *type,
                            sprig_error_t *err)
{
    if (sprig_schema_type(s, type) != NULL) {
        return 0;
    }
    /* Close: at most one edit per three bytes of what was typed (at least one). */
    size_t len = strlen(type), limit = len / 3 > 1 ? len / 3 : 1;
    const char *best[SPRIG_SCHEMA_SUGGEST_MAX];
    size_t dist[SPRIG_SCHEMA_SUGGEST_MAX], nbest = 0;
    for (size_t i = 0; len <= SPRIG_ID_MAX && i < s->n; i++) {
        const char *name = s->types[i]->t.name;
        if (strlen(name) > SPRIG_ID_MAX) {
            continue;
        }
        size_t dn = edit_distance(type, name);
        if (dn > limit) {
            continue;
        }
        /* Keep the nearest, ties in name order (the types are in name order). */
        size_t at = nbest;
        while (at > 0 && dist[at - 1] > dn) {
            at--;
        }
        if (at == SPRIG_SCHEMA_SUGGEST_MAX) {
            continue;
        }
        size_t last = nbest < SPRIG_SCHEMA_SUGGEST_MAX ? nbest : SPRIG_SCHEMA_SUGGEST_MAX - 1;
        memmove(&best[at + 1], &best[at], (last - at) * sizeof(*best));
        memmove(&dist[at + 1], &dist[at], (last - at) * sizeof(*dist));
        best[at] = name;
        dist[at] = dn;
        nbest = last + 1;
    }
    char hint[3 * SPRIG_ID_MAX + 40] = "";
    size_t used = 0;
    for (size_t i = 0; i < nbest; i++) {
        used += (size_t)snprintf(hint + used, sizeof(hint) - used, "%s%s",
                                 i == 0           ? " (did you mean "
                                 : i + 1 == nbest ? " or "
                                                  : ", ",
                                 best[i]);
    }
    if (nbest > 0) {
        snprintf(hint + used, sizeof(hint) - used, "?)");
    }
    return sprig_error_set(err, -EINVAL, "node %s: type \"%.64s\" is not declared%s", node_id, type,
                           hint);
}
