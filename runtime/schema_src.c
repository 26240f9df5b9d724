/* Where a schema file declares what: the line of a type's attribute, a point or a point's
 * attribute, found in the file's source text (see schema_internal.h).
 *
 * Lua tables have no lines once built, so the loader looks at the text: a small lexer
 * (names, strings short and long, comments short and long, numbers, punctuation) gives
 * each token its line, and a walk over table constructors finds a key in one, skipping
 * each field's value by its brackets and block keywords. It is used only to name a line
 * in an error; what it cannot find, it leaves to the caller's line. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "sprig/alloc.h"
#include "schema_internal.h"

/* Token kinds; punctuation that matters ({ } ( ) [ ] = , ;) is its own character. */
enum { T_NAME = 1, T_STR, T_LSTR, T_OTHER };

typedef struct tok {
    int kind, line;
    const char *s; /* the name, or a string's contents (raw, escapes not decoded) */
    size_t n;
} tok_t;

struct schema_src {
    tok_t *t;
    size_t n, cap;
};

static bool push(schema_src_t *src, int kind, int line, const char *s, size_t n)
{
    if (src->n == src->cap) {
        size_t cap = src->cap != 0 ? src->cap * 2 : 256;
        tok_t *t = sprig_realloc(src->t, cap * sizeof(*t));
        if (t == NULL) {
            return false;
        }
        src->t = t;
        src->cap = cap;
    }
    src->t[src->n++] = (tok_t){.kind = kind, .line = line, .s = s, .n = n};
    return true;
}

/* The level of a long bracket opening at p ("[[" 0, "[=[" 1, ...), or -1. */
static int long_level(const char *p, const char *end)
{
    if (p >= end || *p != '[') {
        return -1;
    }
    int k = 0;
    for (p++; p < end && *p == '='; p++) {
        k++;
    }
    return p < end && *p == '[' ? k : -1;
}

/* Skips a long bracket of level k whose opening starts at p; counts lines. Sets the
 * contents (without a first newline) and returns the end. */
static const char *skip_long(const char *p, const char *end, int k, int *line, const char **s,
                             size_t *n)
{
    p += (size_t)k + 2;
    if (p < end && *p == '\r') {
        p++;
    }
    if (p < end && *p == '\n') {
        (*line)++;
        p++;
    }
    *s = p;
    for (; p < end; p++) {
        if (*p == '\n') {
            (*line)++;
        }
        else if (*p == ']') {
            const char *q = p + 1;
            int e = 0;
            while (q < end && *q == '=') {
                q++, e++;
            }
            if (e == k && q < end && *q == ']') {
                *n = (size_t)(p - *s);
                return q + 1;
            }
        }
    }
    *n = (size_t)(p - *s);
    return end;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

schema_src_t *schema__src_open(const char *text, size_t len)
{
    schema_src_t *src = sprig_calloc(1, sizeof(*src));
    if (src == NULL) {
        return NULL;
    }
    const char *p = text, *end = text + len;
    int line = 1;
    if (p < end && *p == '#') { /* a first line "#!..." is skipped, as Lua does */
        while (p < end && *p != '\n') {
            p++;
        }
    }
    while (p < end) {
        char c = *p;
        const char *s = p;
        size_t n = 0;
        int at = line, k;
        if (c == '\n') {
            line++, p++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            p++;
            continue;
        }
        if (c == '-' && p + 1 < end && p[1] == '-') {
            p += 2;
            if ((k = long_level(p, end)) >= 0) {
                p = skip_long(p, end, k, &line, &s, &n);
            }
            else {
                while (p < end && *p != '\n') {
                    p++;
                }
            }
            continue;
        }
        if ((k = long_level(p, end)) >= 0) {
            p = skip_long(p, end, k, &line, &s, &n);
            if (!push(src, T_LSTR, at, s, n)) {
                goto fail;
            }
            continue;
        }
        if (c == '"' || c == '\'') {
            for (p++, s = p; p < end && *p != c && *p != '\n'; p++) {
                if (*p == '\\' && p + 1 < end) {
                    p++;
                    if (*p == '\n') {
                        line++;
                    }
                    else if (*p == 'z') { /* \z skips the white space after it */
                        while (p + 1 < end &&
                               (p[1] == ' ' || p[1] == '\n' || p[1] == '\t' || p[1] == '\r')) {
                            line += p[1] == '\n';
                            p++;
                        }
                    }
                }
            }
            if (!push(src, T_STR, at, s, (size_t)(p - s))) {
                goto fail;
            }
            p += p < end && *p == c;
            continue;
        }
        if (name_char(c) && !(c >= '0' && c <= '9')) {
            while (p < end && name_char(*p)) {
                p++;
            }
            if (!push(src, T_NAME, at, s, (size_t)(p - s))) {
                goto fail;
            }
            continue;
        }
        if ((c >= '0' && c <= '9') || (c == '.' && p + 1 < end && p[1] >= '0' && p[1] <= '9')) {
            for (p++; p < end && (name_char(*p) || *p == '.' ||
                                  ((*p == '+' || *p == '-') && strchr("eEpP", p[-1]) != NULL));
                 p++) {
            }
            if (!push(src, T_OTHER, at, s, (size_t)(p - s))) {
                goto fail;
            }
            continue;
        }
        /* "==", "~=", "<=", ">=" are not a field's "=". */
        bool two = p + 1 < end && p[1] == '=' && strchr("=~<>", c) != NULL;
        bool own = strchr("{}()[]=,;", c) != NULL && !two;
        p += two ? 2 : 1;
        if (!push(src, own ? c : T_OTHER, at, s, (size_t)(p - s))) {
            goto fail;
        }
    }
    return src;
fail:
    schema__src_free(src);
    return NULL;
}

void schema__src_free(schema_src_t *src)
{
    if (src == NULL) {
        return;
    }
    sprig_free(src->t);
    sprig_free(src);
}

static bool is_word(const tok_t *t, const char *w)
{
    return t->kind == T_NAME && t->n == strlen(w) && memcmp(t->s, w, t->n) == 0;
}

static int hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* True when the string token's value is want: short strings with their escapes decoded
 * (an escape it does not know, \z or \u, is no match). */
static bool str_is(const tok_t *t, const char *want)
{
    if (t->kind == T_LSTR) {
        return t->n == strlen(want) && memcmp(t->s, want, t->n) == 0;
    }
    if (t->kind != T_STR) {
        return false;
    }
    static const char esc[] = "n\nt\tr\ra\ab\bf\fv\v\\\\\"\"''\n\n";
    const char *p = t->s, *end = t->s + t->n;
    while (p < end) {
        int c = (unsigned char)*p++;
        if (c == '\\' && p < end) {
            size_t e = 0;
            while (esc[e] != '\0' && esc[e] != *p) {
                e += 2;
            }
            if (esc[e] != '\0') {
                c = (unsigned char)esc[e + 1];
                p++;
            }
            else if (*p >= '0' && *p <= '9') {
                c = 0;
                for (int i = 0; i < 3 && p < end && *p >= '0' && *p <= '9'; i++) {
                    c = c * 10 + (*p++ - '0');
                }
            }
            else if (*p == 'x' && end - p >= 3 && hex(p[1]) >= 0 && hex(p[2]) >= 0) {
                c = hex(p[1]) * 16 + hex(p[2]);
                p += 3;
            }
            else {
                return false;
            }
        }
        if (*want == '\0' || (unsigned char)*want++ != c) {
            return false;
        }
    }
    return *want == '\0';
}

/* The index of the token that ends the expression starting at i: a ',' or ';' or a closing
 * bracket or block end at its own depth; n when the text ends first. */
static size_t skip_value(const schema_src_t *src, size_t i)
{
    int depth = 0;
    for (; i < src->n; i++) {
        const tok_t *t = &src->t[i];
        if (t->kind == '{' || t->kind == '(' || t->kind == '[' || is_word(t, "function") ||
            is_word(t, "if") || is_word(t, "do") || is_word(t, "repeat")) {
            depth++;
        }
        else if (t->kind == '}' || t->kind == ')' || t->kind == ']' || is_word(t, "end") ||
                 is_word(t, "until")) {
            if (depth == 0) {
                return i;
            }
            depth--;
        }
        else if ((t->kind == ',' || t->kind == ';') && depth == 0) {
            return i;
        }
    }
    return src->n;
}

/* Finds field `key` of the table constructor whose '{' is at open: the index of its key
 * token and of the first token of its value. The last one given wins, as in Lua. */
static bool field(const schema_src_t *src, size_t open, const char *key, size_t *at, size_t *val)
{
    const tok_t *t = src->t;
    bool found = false;
    size_t i = open + 1;
    while (i < src->n && t[i].kind != '}') {
        size_t v = i, k = i;
        bool match = false;
        if (t[i].kind == T_NAME && i + 1 < src->n && t[i + 1].kind == '=') {
            match = is_word(&t[i], key);
            v = i + 2;
        }
        else if (t[i].kind == '[') {
            size_t c = skip_value(src, i + 1);
            if (c + 1 < src->n && t[c].kind == ']' && t[c + 1].kind == '=') {
                match = c == i + 2 && str_is(&t[i + 1], key);
                k = i + 1;
                v = c + 2;
            }
        }
        size_t e = skip_value(src, v);
        if (match) {
            *at = k;
            *val = v;
            found = true;
        }
        if (e >= src->n || (t[e].kind != ',' && t[e].kind != ';')) {
            break;
        }
        i = e + 1;
    }
    return found;
}

/* The index of the '{' of the spec given to `nodetype "name"` whose call is at line: the
 * forms nodetype "a" {, nodetype("a") {, nodetype "a" ({ and nodetype("a")({. */
static size_t spec_open(const schema_src_t *src, int line, const char *name)
{
    const tok_t *t = src->t;
    for (size_t i = 0; i < src->n; i++) {
        if (t[i].line != line || !is_word(&t[i], "nodetype")) {
            continue;
        }
        size_t j = i + 1;
        bool paren = j < src->n && t[j].kind == '(';
        j += paren;
        if (j >= src->n || !str_is(&t[j], name)) {
            continue;
        }
        j++;
        if (paren) {
            if (j >= src->n || t[j].kind != ')') {
                continue;
            }
            j++;
        }
        j += j < src->n && t[j].kind == '(';
        if (j < src->n && t[j].kind == '{') {
            return j;
        }
    }
    return SIZE_MAX;
}

int schema__src_line(const schema_src_t *src, int line, const char *name, const char *const *keys)
{
    if (src == NULL || name == NULL) {
        return line;
    }
    size_t open = spec_open(src, line, name);
    int found = line;
    for (; open != SIZE_MAX && *keys != NULL; keys++) {
        size_t at, val;
        if (!field(src, open, *keys, &at, &val)) {
            break;
        }
        found = src->t[at].line;
        open = val < src->n && src->t[val].kind == '{' ? val : SIZE_MAX;
    }
    return found;
}
