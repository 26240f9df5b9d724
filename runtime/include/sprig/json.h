/* JSON forms of points and times shared by the API, the CLI and export/import: a point is
 * {"type","key","time","value","text","tombstone","origin"} with time as RFC 3339 UTC with
 * nine fraction digits, exact both ways (DESIGN.md section 9). Built on cJSON. */
#ifndef SPRIG_JSON_H
#define SPRIG_JSON_H

#include <cJSON.h>

#include "sprig/point.h"

/* Parses RFC 3339 ("2026-11-27T21:05:00.123456789Z", or with a +HH:MM / -HH:MM offset, at
 * most nine fraction digits) into nanoseconds since the Unix epoch. Returns 0 or -EINVAL
 * with err naming the text and what is wrong. */
SPRIG_API int sprig_json_time_parse(const char *s, int64_t *out, sprig_error_t *err);

/* Returns a new JSON object for p (caller frees with cJSON_Delete), or NULL on -ENOMEM.
 * The value is written with 17 significant digits, so it reads back bit for bit. */
SPRIG_API cJSON *sprig_json_from_point(const sprig_point_t *p);

/* Reads a point from a JSON object. Strings in out are borrowed from o (valid while o
 * is). Absent key, time, text, tombstone, origin take the write path's defaults (key "0",
 * time 0 = now, "", 0, NULL). `what` names the point in errors ("point 3"). Returns 0 or
 * -EINVAL with err naming the field, the rule and the value. Values are checked further by
 * the write path. */
SPRIG_API int sprig_json_to_point(const cJSON *o, const char *what, sprig_point_t *out,
                                  sprig_error_t *err);

/* Adds a number that must survive exactly (17 significant digits) to obj. */
SPRIG_API cJSON *sprig_json_add_exact(cJSON *obj, const char *name, double v);

#endif
