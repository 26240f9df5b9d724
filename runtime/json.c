/* JSON forms of points and times: see json.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sprig/err.h"
#include "sprig/json.h"
#include "sprig/util.h"

/* Reads exactly n digits at *s; -1 when they are not digits. */
static int digits(const char **s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*s)[i];
        if (ch < '0' || ch > '9') {
            return -1;
        }
        v = v * 10 + (ch - '0');
    }
    *s += n;
    return v;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

int sprig_json_time_parse(const char *text, int64_t *out, sprig_error_t *err)
{
    const char *s = text;
    int y = digits(&s, 4), mo, d, h, mi, sec;
    if (y < 0 || *s++ != '-' || (mo = digits(&s, 2)) < 0 || *s++ != '-' ||
        (d = digits(&s, 2)) < 0 || (*s != 'T' && *s != 't') || (s++, (h = digits(&s, 2)) < 0) ||
        *s++ != ':' || (mi = digits(&s, 2)) < 0 || *s++ != ':' || (sec = digits(&s, 2)) < 0) {
        return sprig_error_set(
            err, -EINVAL, "time \"%.64s\" is not RFC 3339 (2026-11-27T21:05:00.123456789Z)", text);
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59) {
        return sprig_error_set(err, -EINVAL,
                               "time \"%.64s\" names a date or time that does not "
                               "exist",
                               text);
    }
    int64_t frac = 0;
    if (*s == '.') {
        s++;
        int n = 0;
        while (*s >= '0' && *s <= '9') {
            if (++n > 9) {
                return sprig_error_set(err, -EINVAL,
                                       "time \"%.64s\" has more than 9 fraction digits", text);
            }
            frac = frac * 10 + (*s++ - '0');
        }
        if (n == 0) {
            return sprig_error_set(err, -EINVAL, "time \"%.64s\" has an empty fraction", text);
        }
        for (; n < 9; n++) {
            frac *= 10;
        }
    }
    int offset = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    }
    else if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1, oh, om;
        if ((oh = digits(&s, 2)) < 0 || *s++ != ':' || (om = digits(&s, 2)) < 0 || oh > 23 ||
            om > 59) {
            return sprig_error_set(err, -EINVAL, "time \"%.64s\" has a bad UTC offset", text);
        }
        offset = sign * (oh * 3600 + om * 60);
    }
    else {
        return sprig_error_set(err, -EINVAL,
                               "time \"%.64s\" needs a zone: Z or an offset such as +01:00", text);
    }
    if (*s != '\0') {
        return sprig_error_set(err, -EINVAL, "time \"%.64s\" has extra text after the zone", text);
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    int64_t secs = (int64_t)timegm(&tm) - offset;
    /* The last time an int64 of ns holds is 2262-04-11T23:47:16.854775807Z. */
    if (secs < 0 || secs > INT64_MAX / 1000000000LL ||
        (secs == INT64_MAX / 1000000000LL && frac > INT64_MAX % 1000000000LL)) {
        return sprig_error_set(err, -EINVAL, "time \"%.64s\" is before 1970 or after "
                               "2262-04-11T23:47:16.854775807Z",
                               text);
    }
    *out = secs * 1000000000LL + frac;
    return 0;
}

cJSON *sprig_json_add_exact(cJSON *obj, const char *name, double v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%.17g", v);
    return cJSON_AddRawToObject(obj, name, buf);
}

cJSON *sprig_json_from_point(const sprig_point_t *p)
{
    char t[40];
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    if (cJSON_AddStringToObject(o, "type", p->type) == NULL ||
        cJSON_AddStringToObject(o, "key", p->key != NULL ? p->key : "0") == NULL ||
        cJSON_AddStringToObject(o, "time", sprig_time_format(p->time, t, sizeof(t))) == NULL ||
        sprig_json_add_exact(o, "value", p->value) == NULL ||
        cJSON_AddStringToObject(o, "text", p->text != NULL ? p->text : "") == NULL ||
        cJSON_AddNumberToObject(o, "tombstone", p->tombstone) == NULL ||
        cJSON_AddStringToObject(o, "origin", p->origin != NULL ? p->origin : "") == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* j as JSON text for an error message, cut to about 40 bytes, into buf (n bytes). */
static const char *shown(const cJSON *j, char *buf, size_t n)
{
    char *t = cJSON_PrintUnformatted(j);
    snprintf(buf, n, "%.40s%s", t != NULL ? t : "?", t != NULL && strlen(t) > 40 ? "..." : "");
    cJSON_free(t);
    return buf;
}

/* Field `name` of o as a string, or dflt when absent; -EINVAL when of another type. */
static int get_string(const cJSON *o, const char *what, const char *name, const char *dflt,
                      const char **out, sprig_error_t *err)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (f == NULL || cJSON_IsNull(f)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsString(f)) {
        char v[48];
        return sprig_error_set(err, -EINVAL, "%s: \"%s\" must be a string, not %s", what, name,
                               shown(f, v, sizeof(v)));
    }
    *out = f->valuestring;
    return 0;
}

int sprig_json_to_point(const cJSON *o, const char *what, sprig_point_t *out, sprig_error_t *err)
{
    const char *time = NULL;
    int rc;
    char shown_buf[48];
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(o)) {
        return sprig_error_set(err, -EINVAL, "%s must be a JSON object, not %s", what,
                               shown(o, shown_buf, sizeof(shown_buf)));
    }
    if ((rc = get_string(o, what, "type", NULL, &out->type, err)) != 0 ||
        (rc = get_string(o, what, "key", NULL, &out->key, err)) != 0 ||
        (rc = get_string(o, what, "text", NULL, &out->text, err)) != 0 ||
        (rc = get_string(o, what, "origin", NULL, &out->origin, err)) != 0 ||
        (rc = get_string(o, what, "time", NULL, &time, err)) != 0) {
        return rc;
    }
    if (out->type == NULL) {
        return sprig_error_set(err, -EINVAL, "%s: \"type\" is missing", what);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v)) {
            return sprig_error_set(err, -EINVAL, "%s: \"value\" must be a number, not %s", what,
                                   shown(v, shown_buf, sizeof(shown_buf)));
        }
        out->value = v->valuedouble;
    }
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(o, "tombstone");
    if (tb != NULL && !cJSON_IsNull(tb)) {
        if (cJSON_IsBool(tb)) {
            out->tombstone = cJSON_IsTrue(tb);
        }
        else if (cJSON_IsNumber(tb) && (tb->valuedouble == 0 || tb->valuedouble == 1)) {
            out->tombstone = (int)tb->valuedouble;
        }
        else {
            return sprig_error_set(err, -EINVAL, "%s: \"tombstone\" must be 0 or 1, not %s", what,
                                   shown(tb, shown_buf, sizeof(shown_buf)));
        }
    }
    if (time != NULL) {
        sprig_error_t e;
        if (sprig_json_time_parse(time, &out->time, &e) != 0) {
            return sprig_error_set(err, -EINVAL, "%s: %s", what, e.msg);
        }
        if (out->time <= 0) {
            /* 0 would mean "now" to the write path: a given time must be after it. */
            return sprig_error_set(err, -EINVAL, "%s: time \"%.64s\" is not after the Unix epoch",
                                   what, time);
        }
    }
    return 0;
}
