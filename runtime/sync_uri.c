/* The brokers of a sync link: its uri (a sync node's point, or --sync-broker) is one broker
 * URI or a comma-separated list of them, each mqtt://host[:port] or mqtts://host[:port]. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/err.h"
#include "sync_internal.h"

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Parses one element (e, n bytes, already trimmed) into b; 0, or -EINVAL with err naming
 * the list, the element (its position from 1, when the list has several) and the rule. */
static int parse_one(const char *list, int pos, bool several, const char *e, size_t n,
                     sync_broker_t *b, sprig_error_t *err)
{
    char where[400];
    if (several) {
        snprintf(where, sizeof(where), "uri \"%.200s\" element %d \"%.*s\"", list, pos,
                 (int)(n < 120 ? n : 120), e);
    }
    else {
        snprintf(where, sizeof(where), "uri \"%.*s\"", (int)(n < 300 ? n : 300), e);
    }
    if (n == 0 && !several) {
        return sprig_error_set(err, -EINVAL, "sync: uri is empty (mqtt://host:port)");
    }
    if (n == 0) {
        return sprig_error_set(err, -EINVAL, "sync: uri \"%.200s\" element %d is empty", list, pos);
    }
    if (n >= sizeof(b->uri)) {
        return sprig_error_set(err, -EINVAL, "sync: %s is longer than %zu characters", where,
                               sizeof(b->uri) - 1);
    }
    memset(b, 0, sizeof(*b));
    memcpy(b->uri, e, n);
    const char *end = e + n, *rest;
    if (n >= 7 && strncmp(e, "mqtt://", 7) == 0) {
        rest = e + 7;
        b->port = 1883;
    }
    else if (n >= 8 && strncmp(e, "mqtts://", 8) == 0) {
        rest = e + 8;
        b->port = 8883;
        b->tls = true;
    }
    else {
        return sprig_error_set(err, -EINVAL, "sync: %s must start with mqtt:// or mqtts://", where);
    }
    /* host[:port], then an optional path, which is not used; an IPv6 host in brackets. */
    const char *slash = memchr(rest, '/', (size_t)(end - rest));
    const char *auth_end = slash != NULL ? slash : end;
    const char *host = rest, *host_end, *colon = NULL;
    if (rest < auth_end && *rest == '[') {
        const char *close = memchr(rest, ']', (size_t)(auth_end - rest));
        if (close == NULL || (close + 1 < auth_end && close[1] != ':')) {
            return sprig_error_set(err, -EINVAL, "sync: %s: an IPv6 host is [address]:port", where);
        }
        host = rest + 1;
        host_end = close;
        colon = close + 1 < auth_end ? close + 1 : NULL;
    }
    else {
        for (const char *c = rest; c < auth_end; c++) {
            colon = *c == ':' ? c : colon;
        }
        host_end = colon != NULL ? colon : auth_end;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0) {
        return sprig_error_set(err, -EINVAL, "sync: %s has no host", where);
    }
    if (hl >= sizeof(b->host)) {
        return sprig_error_set(err, -EINVAL, "sync: %s: the host is longer than %zu characters",
                               where, sizeof(b->host) - 1);
    }
    memcpy(b->host, host, hl);
    b->host[hl] = '\0';
    if (colon != NULL) {
        long p = 0;
        const char *d = colon + 1;
        for (; d < auth_end && *d >= '0' && *d <= '9' && p <= 65535; d++) {
            p = p * 10 + (*d - '0');
        }
        if (d == colon + 1 || d != auth_end || p < 1 || p > 65535) {
            return sprig_error_set(err, -EINVAL, "sync: %s: the port must be 1-65535", where);
        }
        b->port = (int)p;
    }
    return 0;
}

int sync__parse_uris(const char *list, sync_broker_t *out, size_t max, size_t *count,
                     sprig_error_t *err)
{
    *count = 0;
    if (list == NULL) {
        return sprig_error_set(err, -EINVAL, "sync: uri is missing (mqtt://host:port)");
    }
    bool several = strchr(list, ',') != NULL;
    const char *p = list;
    for (int pos = 1;; pos++) {
        const char *comma = strchr(p, ',');
        const char *e = p, *end = comma != NULL ? comma : p + strlen(p);
        while (e < end && blank(*e)) {
            e++;
        }
        while (end > e && blank(end[-1])) {
            end--;
        }
        if (*count == max) {
            *count = 0;
            return sprig_error_set(err, -EINVAL, "sync: uri \"%.200s\" lists more than %zu brokers",
                                   list, max);
        }
        int rc = parse_one(list, pos, several, e, (size_t)(end - e), &out[*count], err);
        if (rc != 0) {
            *count = 0;
            return rc;
        }
        (*count)++;
        if (comma == NULL) {
            return 0;
        }
        p = comma + 1;
    }
}
