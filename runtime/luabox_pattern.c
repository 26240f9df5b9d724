/* The sandbox's pattern matching: string.find, match, gmatch and gsub as the Lua 5.4 manual
 * describes them (sections 6.4 and 6.4.1), with Lua 5.4.4's results and error messages, but
 * counting their work against the running call's budget (luabox_internal.h). Lua's own
 * matcher backtracks inside one C call, where the count hook never runs:
 * string.find(string.rep("a", 5000), ".-.-.-.-.-.-b") would stall the loop thread for
 * hours. Here every step is counted and charged every few hundred units, so such a call
 * ends with "NAME:LINE: pattern too complex (over budget)".
 *
 * The matcher is a backtracking interpreter over the pattern text, as Lua's is, and it
 * follows the same order of work where that order shows: a malformed piece of a pattern is
 * an error only once the matcher reaches it (string.find("abc", "x[") is nil, not an
 * error), and the nesting that ends in "pattern too complex" at depth 200 grows at the
 * same places (a capture, a quantified item that matched). A plain find uses glibc's
 * memmem, which is linear, where Lua's own search is O(n*m). Where it does not show, it
 * takes shortcuts: positions where a pattern's first item cannot match are skipped with
 * one scan (memchr for a literal byte) instead of a full attempt at each. The classes are
 * those of the C locale, which sprig never changes (Lua's follow setlocale).
 *
 * Nothing here holds memory of its own across a charge, which may not return: the state of
 * a match lives on the C stack (find, match, gsub) or in a userdata (gmatch), and gsub
 * builds its result in a luaL_Buffer. */
#define _GNU_SOURCE /* memmem */
#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "luabox_internal.h"

#define MAX_CAPTURES 32 /* Lua's LUA_MAXCAPTURES */
#define MAX_DEPTH 200   /* nested matcher calls, Lua's MAXCCALLS */
#define CAP_OPEN (-1)   /* a capture whose ')' is not reached yet */
#define CAP_POSITION (-2)

/* Work is counted in sixteenths of a unit: one matcher call (an attempt at a position, a
 * backtrack) or one item tried outside a loop is a unit; a byte tested in a tight loop a
 * quarter; a byte scanned by memchr or memcmp, or copied, a sixteenth. It is charged
 * every CHARGE_EVERY sixteenths and when a function returns. */
#define STEP 16
#define BYTE_LOOP 4
#define CHARGE_EVERY (256 * 16)
#define WHAT "pattern too complex"
#define NAIVE_MAX 4096 /* byte comparisons a plain search may do the simple way */

/* The character classes of the C locale (Lua's ctype), one bit each. */
enum {
    K_ALPHA = 1 << 0,
    K_CNTRL = 1 << 1,
    K_DIGIT = 1 << 2,
    K_GRAPH = 1 << 3,
    K_LOWER = 1 << 4,
    K_PUNCT = 1 << 5,
    K_SPACE = 1 << 6,
    K_UPPER = 1 << 7,
    K_ALNUM = 1 << 8,
    K_XDIGIT = 1 << 9,
    K_ZERO = 1 << 10, /* %z, '\0': gone from the 5.4 manual, still in 5.4.4 */
};

#define IN(c, lo, hi) ((c) >= (lo) && (c) <= (hi))
#define IS_ALNUM(c) (IN(c, 'a', 'z') || IN(c, 'A', 'Z') || IN(c, '0', '9'))
#define KBITS(c)                                                                                   \
    ((IN(c, 'a', 'z') ? K_LOWER | K_ALPHA | K_ALNUM : 0) |                                         \
     (IN(c, 'A', 'Z') ? K_UPPER | K_ALPHA | K_ALNUM : 0) |                                         \
     (IN(c, '0', '9') ? K_DIGIT | K_ALNUM | K_XDIGIT : 0) |                                        \
     (IN(c, 'a', 'f') || IN(c, 'A', 'F') ? K_XDIGIT : 0) |                                         \
     (IN(c, 9, 13) || (c) == ' ' ? K_SPACE : 0) | (IN(c, 0, 31) || (c) == 127 ? K_CNTRL : 0) |     \
     (IN(c, 33, 126) ? K_GRAPH : 0) | (IN(c, 33, 126) && !IS_ALNUM(c) ? K_PUNCT : 0) |             \
     ((c) == 0 ? K_ZERO : 0))
#define K4(c) KBITS(c), KBITS((c) + 1), KBITS((c) + 2), KBITS((c) + 3)
#define K16(c) K4(c), K4((c) + 4), K4((c) + 8), K4((c) + 12)
#define K64(c) K16(c), K16((c) + 16), K16((c) + 32), K16((c) + 48)

static const uint16_t kbits[256] = {K64(0), K64(64), K64(128), K64(192)};

/* The class a letter after '%' names (either case), or 0: not a class letter. */
static const uint16_t kclass[256] = {
    ['a'] = K_ALPHA, ['A'] = K_ALPHA, ['c'] = K_CNTRL, ['C'] = K_CNTRL,  ['d'] = K_DIGIT,
    ['D'] = K_DIGIT, ['g'] = K_GRAPH, ['G'] = K_GRAPH, ['l'] = K_LOWER,  ['L'] = K_LOWER,
    ['p'] = K_PUNCT, ['P'] = K_PUNCT, ['s'] = K_SPACE, ['S'] = K_SPACE,  ['u'] = K_UPPER,
    ['U'] = K_UPPER, ['w'] = K_ALNUM, ['W'] = K_ALNUM, ['x'] = K_XDIGIT, ['X'] = K_XDIGIT,
    ['z'] = K_ZERO,  ['Z'] = K_ZERO,
};

typedef struct capture {
    const char *at;
    ptrdiff_t len; /* bytes, CAP_OPEN or CAP_POSITION */
} capture_t;

/* One match in progress. The pattern and the subject are Lua strings, so the byte at
 * pat_end and at src_end is a '\0' that may be read. */
typedef struct matcher {
    lua_State *L;
    const char *src, *src_end; /* the subject */
    const char *pat_end;
    int depth;   /* nested match() calls */
    int level;   /* captures opened */
    size_t work; /* sixteenths of a unit not charged yet */
    capture_t cap[MAX_CAPTURES];
} matcher_t;

/* The first item of a pattern, when every match must begin with one byte that item
 * matches: the attempts at positions where it does not are skipped. */
typedef struct lead {
    const char *p, *ep; /* the item; p NULL: none, every position is tried */
    int c;              /* the byte when the item is a literal one, else -1 */
} lead_t;

static void charge(matcher_t *m)
{
    size_t units = m->work >> 4;
    m->work &= 15;
    luabox__charge(m->L, units, WHAT);
}

/* Adds w sixteenths of a unit; may raise when the budget is spent. */
static inline void count(matcher_t *m, size_t w)
{
    m->work += w;
    if (m->work >= CHARGE_EVERY) {
        charge(m);
    }
}

/* Charges what is left; called before a function returns. */
static void settle(matcher_t *m)
{
    m->work += 15;
    charge(m);
}

static void matcher_init(matcher_t *m, lua_State *L, const char *s, size_t ls, const char *p,
                         size_t lp)
{
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->depth = 0;
    m->level = 0;
    m->work = 0;
}

static inline bool class_has(unsigned c, unsigned letter)
{
    unsigned k = kclass[letter];
    if (k == 0) {
        return c == letter; /* %x with x no class letter: x itself */
    }
    bool in = (kbits[c] & k) != 0;
    return IN(letter, 'a', 'z') ? in : !in;
}

/* Whether c is in the set from p ('[') to ep (just after its ']'). Inside, "%x" is a class
 * or an escaped byte, "a-z" a range unless the '-' is last, and the first byte (after a
 * '^') is a member even when it is ']'. */
static bool set_has(unsigned c, const char *p, const char *ep)
{
    const char *end = ep - 1;
    bool in = true;
    p++;
    if (*p == '^') {
        in = false;
        p++;
    }
    while (p < end) {
        unsigned char b = (unsigned char)*p;
        if (b == '%') {
            if (class_has(c, (unsigned char)p[1])) {
                return in;
            }
            p += 2;
        }
        else if (p[1] == '-' && p + 2 < end) {
            if (b <= c && c <= (unsigned char)p[2]) {
                return in;
            }
            p += 3;
        }
        else {
            if (b == c) {
                return in;
            }
            p++;
        }
    }
    return !in;
}

/* Whether byte c matches the single-character item from p to ep. */
static inline bool item_has(unsigned c, const char *p, const char *ep)
{
    switch (*p) {
    case '.':
        return true;
    case '%':
        return class_has(c, (unsigned char)p[1]);
    case '[':
        return set_has(c, p, ep);
    default:
        return (unsigned char)*p == c;
    }
}

/* Sixteenths of a unit one byte tested against an item costs in a loop. */
static inline size_t item_cost(const char *p, const char *ep)
{
    return *p == '[' ? BYTE_LOOP + 2 * (size_t)(ep - p) : BYTE_LOOP;
}

/* The end of the single-character item at p: a byte, '.', "%x" or a set. Raises for a
 * '%' that ends the pattern or a set with no ']'. */
static const char *item_end(matcher_t *m, const char *p)
{
    if (*p == '%') {
        if (p + 1 >= m->pat_end) {
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        }
        return p + 2;
    }
    if (*p != '[') {
        return p + 1;
    }
    const char *q = p + 1;
    if (*q == '^') {
        q++;
    }
    do { /* the first member is taken before looking for ']' */
        if (q >= m->pat_end) {
            luaL_error(m->L, "malformed pattern (missing ']')");
        }
        q += *q == '%' && q + 1 < m->pat_end ? 2 : 1;
    } while (*q != ']');
    return q + 1;
}

static const char *match(matcher_t *m, const char *s, const char *p);

/* Item p..ep, quantified by '*' (or '+' with its first byte taken): as many bytes as it
 * matches, then fewer, one at a time, until the rest of the pattern matches. */
static const char *expand_max(matcher_t *m, const char *s, const char *p, const char *ep)
{
    const char *e = s;
    while (e < m->src_end && item_has((unsigned char)*e, p, ep)) {
        e++;
    }
    count(m, (size_t)(e - s + 1) * item_cost(p, ep));
    for (;;) {
        const char *r = match(m, e, ep + 1);
        if (r != NULL) {
            return r;
        }
        if (e == s) {
            return NULL;
        }
        e--;
    }
}

/* Item p..ep, quantified by '-': the rest of the pattern first, then one byte more. */
static const char *expand_min(matcher_t *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r != NULL) {
            return r;
        }
        if (s >= m->src_end || !item_has((unsigned char)*s, p, ep)) {
            return NULL;
        }
        s++;
    }
}

/* "%bxy" at s, p pointing at x: from an x to the y that balances it. */
static const char *balance(matcher_t *m, const char *s, const char *p)
{
    if (p + 1 >= m->pat_end) {
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    }
    if (s >= m->src_end || *s != p[0]) {
        return NULL;
    }
    char open = p[0], close = p[1];
    size_t open_count = 1;
    const char *t = s + 1;
    for (; t < m->src_end; t++) {
        if (*t == close) {
            if (--open_count == 0) {
                count(m, (size_t)(t - s) * BYTE_LOOP);
                return t + 1;
            }
        }
        else if (*t == open) {
            open_count++;
        }
    }
    count(m, (size_t)(t - s) * BYTE_LOOP);
    return NULL;
}

/* "%1".."%9" (and "%0", an error) at s: the text of an earlier closed capture again. */
static const char *backref(matcher_t *m, const char *s, int digit)
{
    int i = digit - '1';
    if (i < 0 || i >= m->level || m->cap[i].len == CAP_OPEN) {
        luaL_error(m->L, "invalid capture index %%%d", i + 1);
        return NULL;
    }
    if (m->cap[i].len == CAP_POSITION) {
        return NULL; /* a position is no text, and matches none */
    }
    size_t len = (size_t)m->cap[i].len;
    if ((size_t)(m->src_end - s) < len) {
        return NULL;
    }
    count(m, len);
    return memcmp(m->cap[i].at, s, len) == 0 ? s + len : NULL;
}

/* '(' at p: opens a capture (a position capture for "()") and matches the rest. */
static const char *open_capture(matcher_t *m, const char *s, const char *p)
{
    if (m->level >= MAX_CAPTURES) {
        luaL_error(m->L, "too many captures");
        return NULL;
    }
    bool position = p[1] == ')';
    m->cap[m->level].at = s;
    m->cap[m->level].len = position ? CAP_POSITION : CAP_OPEN;
    m->level++;
    const char *r = match(m, s, p + (position ? 2 : 1));
    if (r == NULL) {
        m->level--;
    }
    return r;
}

/* ')' before p: closes the innermost open capture and matches the rest. */
static const char *close_capture(matcher_t *m, const char *s, const char *p)
{
    int i = m->level - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN) {
        i--;
    }
    if (i < 0) {
        luaL_error(m->L, "invalid pattern capture");
        return NULL;
    }
    m->cap[i].len = s - m->cap[i].at;
    const char *r = match(m, s, p);
    if (r == NULL) {
        m->cap[i].len = CAP_OPEN;
    }
    return r;
}

/* Matches pattern p (to pat_end) at s: the end of the match, or NULL. The items that end
 * a pattern's variants (no quantifier, a '*' or '-' that matched nothing, %b, %f, a
 * back-reference) go on in this loop; captures and quantified items that matched call
 * match() for the rest, one level deeper. */
static const char *match(matcher_t *m, const char *s, const char *p)
{
    if (++m->depth > MAX_DEPTH) {
        luaL_error(m->L, "pattern too complex");
    }
    count(m, STEP);
    while (p != m->pat_end) {
        switch (*p) {
        case '(':
            s = open_capture(m, s, p);
            goto out;
        case ')':
            s = close_capture(m, s, p + 1);
            goto out;
        case '$':
            if (p + 1 == m->pat_end) {
                s = s == m->src_end ? s : NULL;
                goto out;
            }
            break; /* a '$' elsewhere is itself */
        case '%':
            if (p[1] == 'b') {
                s = balance(m, s, p + 2);
                if (s == NULL) {
                    goto out;
                }
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (*p != '[') {
                    luaL_error(m->L, "missing '[' after '%%f' in pattern");
                }
                const char *ep = item_end(m, p);
                unsigned before = s == m->src ? 0 : (unsigned char)s[-1];
                count(m, item_cost(p, ep) * 2);
                if (set_has(before, p, ep) || !set_has((unsigned char)*s, p, ep)) {
                    s = NULL;
                    goto out;
                }
                p = ep;
                continue;
            }
            if (IN(p[1], '0', '9')) {
                s = backref(m, s, p[1]);
                if (s == NULL) {
                    goto out;
                }
                p += 2;
                continue;
            }
            break;
        default:
            break;
        }
        const char *ep = item_end(m, p);
        if (s >= m->src_end || !item_has((unsigned char)*s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') {
                p = ep + 1; /* none of it */
                continue;
            }
            s = NULL;
            goto out;
        }
        switch (*ep) {
        case '?': {
            const char *r = match(m, s + 1, ep + 1);
            if (r != NULL) {
                s = r;
                goto out;
            }
            p = ep + 1;
            continue;
        }
        case '+':
            s = expand_max(m, s + 1, p, ep);
            goto out;
        case '*':
            s = expand_max(m, s, p, ep);
            goto out;
        case '-':
            s = expand_min(m, s, p, ep);
            goto out;
        default:
            s++;
            p = ep;
            continue;
        }
    }
out:
    m->depth--;
    return s;
}

/* Tries pattern p at s from a fresh state: the end of the match, or NULL. */
static const char *attempt(matcher_t *m, const char *s, const char *p)
{
    m->level = 0;
    m->depth = 0;
    return match(m, s, p);
}

/* Finds pattern p's lead item (see lead_t), also behind opening parentheses. Call it only
 * where Lua's matcher tries the pattern at least once: it raises what that first try would
 * raise for a malformed lead item. */
static void lead_of(matcher_t *m, const char *p, lead_t *ld)
{
    ld->p = NULL;
    /* Opening a capture consumes nothing; no error can come before the item while at most
     * MAX_CAPTURES of them open. */
    for (int opened = 0; p < m->pat_end && *p == '(' && opened < MAX_CAPTURES; opened++) {
        p += p[1] == ')' ? 2 : 1;
    }
    if (p == m->pat_end) {
        return;
    }
    switch (*p) {
    case '(':
    case ')':
    case '.':
        return;
    case '$':
        if (p + 1 == m->pat_end) {
            return;
        }
        break;
    case '%':
        if (p[1] == 'b' || p[1] == 'f' || IN(p[1], '0', '9')) {
            return;
        }
        break;
    default:
        break;
    }
    const char *ep = item_end(m, p);
    if (*ep == '*' || *ep == '?' || *ep == '-') {
        return;
    }
    ld->p = p;
    ld->ep = ep;
    ld->c = *p == '%' || *p == '[' ? -1 : (unsigned char)*p;
}

/* What find, match, gmatch and gsub do before matching: a leading '^' anchors the pattern
 * (*p moves past it), the matcher is set up, and unless anchored (or want_lead is false)
 * the pattern's first item is noted so positions where it cannot match are skipped.
 * Returns whether the pattern is anchored. */
static bool matcher_start(matcher_t *m, lua_State *L, const char *s, size_t ls, const char **p,
                          size_t lp, bool want_lead, lead_t *ld)
{
    bool anchor = **p == '^';
    if (anchor) {
        (*p)++;
        lp--;
    }
    matcher_init(m, L, s, ls, *p, lp);
    *ld = (lead_t){NULL, NULL, -1};
    if (!anchor && want_lead) {
        lead_of(m, *p, ld);
    }
    return anchor;
}

/* The first position from s where the lead item matches a byte, or NULL: no match can
 * start anywhere from s on. */
static const char *skip_to(matcher_t *m, const lead_t *ld, const char *s)
{
    if (ld->c >= 0) {
        const char *hit = memchr(s, ld->c, (size_t)(m->src_end - s));
        count(m, (size_t)((hit != NULL ? hit : m->src_end) - s) + 1);
        return hit;
    }
    const char *t = s;
    while (t < m->src_end && !item_has((unsigned char)*t, ld->p, ld->ep)) {
        t++;
    }
    count(m, (size_t)(t - s + 1) * item_cost(ld->p, ld->ep));
    return t < m->src_end ? t : NULL;
}

/* Pushes capture i of a match from s to e; capture 0 of a pattern without captures is the
 * whole match (s NULL: none). */
static void push_capture(matcher_t *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0 || s == NULL) {
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        }
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    const capture_t *c = &m->cap[i];
    if (c->len == CAP_OPEN) {
        luaL_error(m->L, "unfinished capture");
    }
    if (c->len == CAP_POSITION) {
        lua_pushinteger(m->L, (lua_Integer)(c->at - m->src) + 1);
    }
    else {
        lua_pushlstring(m->L, c->at, (size_t)c->len);
    }
}

/* Pushes every capture of a match from s to e (the whole match when the pattern has none
 * and s is not NULL); returns how many. */
static int push_captures(matcher_t *m, const char *s, const char *e)
{
    int n = m->level == 0 && s != NULL ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++) {
        push_capture(m, i, s, e);
    }
    return n;
}

/* A 1-based position argument as a 0-based offset: negative counts from the end, 0 and
 * anything before the start is the start; it may lie beyond the end. */
static size_t start_offset(lua_Integer pos, size_t len)
{
    if (pos > 0) {
        return (size_t)pos - 1;
    }
    if (pos == 0 || pos < -(lua_Integer)len) {
        return 0;
    }
    return len - (size_t)(-pos);
}

/* The first place of needle nd (m bytes) in haystack h (n bytes), or NULL. glibc's memmem
 * is linear, but sets up a table first; when even the quadratic worst case of memchr and
 * memcmp is small, as it is for most searches in a line or a message, those do. */
static const char *search(const char *h, size_t n, const char *nd, size_t m)
{
    if (m == 0) {
        return h;
    }
    if (m > n) {
        return NULL;
    }
    if (n > NAIVE_MAX / m) {
        return memmem(h, n, nd, m);
    }
    const char *last = h + (n - m);
    for (; (h = memchr(h, nd[0], (size_t)(last - h) + 1)) != NULL; h++) {
        if (memcmp(h + 1, nd + 1, m - 1) == 0) {
            return h;
        }
        if (h == last) {
            break;
        }
    }
    return NULL;
}

/* Whether a pattern has none of the bytes that make it more than plain text. */
static bool is_plain(const char *p, size_t lp)
{
    static const char special[] = "^$*+?.([%-";
    for (size_t i = 0; i < lp; i++) {
        if (memchr(special, p[i], sizeof(special) - 1) != NULL) {
            return false;
        }
    }
    return true;
}

/* string.find(s, pattern [, init [, plain]]) and string.match(s, pattern [, init]).
 * [-(2|3|4), +?, e] */
static int find_or_match(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || is_plain(p, lp))) {
        /* glibc's memmem is linear in both lengths (two-way for long needles): about
         * 0.1-0.5 ns a byte on text, but up to 8 ns on a binary haystack with a periodic
         * needle; a unit per 4 bytes is in between. */
        luabox__charge(L, (ls - init + lp) / 4 + 1, WHAT);
        const char *hit = search(s + init, ls - init, p, lp);
        if (hit == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
        lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
        return 2;
    }
    matcher_t m;
    lead_t ld;
    bool anchor = matcher_start(&m, L, s, ls, &p, lp, true, &ld);
    const char *at = s + init;
    for (;;) {
        if (ld.p != NULL && (at = skip_to(&m, &ld, at)) == NULL) {
            break;
        }
        const char *e = attempt(&m, at, p);
        if (e != NULL) {
            settle(&m);
            if (!find) {
                return push_captures(&m, at, e);
            }
            lua_pushinteger(L, (lua_Integer)(at - s) + 1);
            lua_pushinteger(L, (lua_Integer)(e - s));
            return push_captures(&m, NULL, NULL) + 2;
        }
        if (anchor || at >= m.src_end) {
            break;
        }
        at++;
    }
    settle(&m);
    luaL_pushfail(L);
    return 1;
}

static int pattern_find(lua_State *L)
{
    return find_or_match(L, true);
}

static int pattern_match(lua_State *L)
{
    return find_or_match(L, false);
}

/* What gmatch's iterator keeps between calls (a userdata, upvalue 3; the subject and the
 * pattern are upvalues 1 and 2, which keep these pointers valid). */
typedef struct gmatch_state {
    matcher_t m;
    const char *next; /* where the next search starts */
    const char *p;    /* the pattern */
    const char *last; /* the end of the last match, NULL before the first */
} gmatch_state_t;

/* The iterator: the captures of the next match, nothing once there is none. An empty
 * match where the last match ended is skipped. [-0, +?, e] */
static int gmatch_next(lua_State *L)
{
    gmatch_state_t *g = lua_touserdata(L, lua_upvalueindex(3));
    matcher_t *m = &g->m;
    m->L = L;
    if (g->next > m->src_end) {
        return 0;
    }
    lead_t ld;
    lead_of(m, g->p, &ld);
    for (const char *at = g->next; at <= m->src_end; at++) {
        if (ld.p != NULL && (at = skip_to(m, &ld, at)) == NULL) {
            break;
        }
        const char *e = attempt(m, at, g->p);
        if (e != NULL && e != g->last) {
            g->next = g->last = e;
            settle(m);
            return push_captures(m, at, e);
        }
    }
    g->next = m->src_end + 1; /* no match from here on, ever: the next call returns at once */
    settle(m);
    return 0;
}

/* string.gmatch(s, pattern [, init]): an iterator over the matches; '^' is no anchor
 * here. [-(2|3), +1, e] */
static int pattern_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        init = ls + 1; /* past the end: no match, and no overflow */
    }
    lua_settop(L, 2);
    gmatch_state_t *g = lua_newuserdatauv(L, sizeof(*g), 0);
    matcher_init(&g->m, L, s, ls, p, lp);
    g->next = s + init;
    g->p = p;
    g->last = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* Adds the replacement string r (argument 3) for a match from s to e: "%0" is the match,
 * "%1".."%9" a capture, "%%" a '%'. */
static void add_template(matcher_t *m, luaL_Buffer *b, const char *s, const char *e)
{
    size_t lr;
    const char *r = lua_tolstring(m->L, 3, &lr);
    const char *end = r + lr;
    count(m, lr + STEP);
    for (;;) {
        const char *pc = memchr(r, '%', (size_t)(end - r));
        if (pc == NULL) {
            luaL_addlstring(b, r, (size_t)(end - r));
            return;
        }
        luaL_addlstring(b, r, (size_t)(pc - r));
        char d = pc[1]; /* the '\0' after the string when '%' ends it */
        if (d == '%') {
            luaL_addchar(b, '%');
        }
        else if (d == '0') {
            count(m, (size_t)(e - s));
            luaL_addlstring(b, s, (size_t)(e - s));
        }
        else if (IN(d, '1', '9')) {
            int i = d - '1';
            if (i >= m->level) {
                if (i != 0) {
                    luaL_error(m->L, "invalid capture index %%%d", i + 1);
                }
                count(m, (size_t)(e - s));
                luaL_addlstring(b, s, (size_t)(e - s));
            }
            else if (m->cap[i].len == CAP_OPEN) {
                luaL_error(m->L, "unfinished capture");
            }
            else if (m->cap[i].len == CAP_POSITION) {
                lua_pushinteger(m->L, (lua_Integer)(m->cap[i].at - m->src) + 1);
                luaL_addvalue(b);
            }
            else {
                count(m, (size_t)m->cap[i].len);
                luaL_addlstring(b, m->cap[i].at, (size_t)m->cap[i].len);
            }
        }
        else {
            luaL_error(m->L, "invalid use of '%%' in replacement string");
        }
        r = pc + 2;
    }
}

/* Adds to b the subject from *done to s, then the replacement for the match from s to e
 * (argument 3 of type tr); true if the text changed. A function or table that gives false
 * or nil keeps the match: *done is then left at s, so the match is copied with what
 * follows. */
static bool add_replacement(matcher_t *m, luaL_Buffer *b, const char **done, const char *s,
                            const char *e, int tr)
{
    lua_State *L = m->L;
    count(m, (size_t)(s - *done));
    luaL_addlstring(b, *done, (size_t)(s - *done));
    *done = s;
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    }
    else if (tr == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    }
    else {
        add_template(m, b, s, e);
        *done = e;
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    }
    luaL_addvalue(b);
    *done = e;
    return true;
}

/* string.gsub(s, pattern, repl [, n]): the subject with its first n matches (all by
 * default) replaced, and the number of matches. [-(3|4), +2, e] */
static int pattern_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(
        L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
        "string/function/table");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    matcher_t m;
    lead_t ld;
    bool anchor = matcher_start(&m, L, s, ls, &p, lp, max > 0, &ld);
    const char *at = s, *last = NULL, *done = s;
    lua_Integer n = 0;
    bool changed = false;
    while (n < max) {
        if (ld.p != NULL && (at = skip_to(&m, &ld, at)) == NULL) {
            break;
        }
        const char *e = attempt(&m, at, p);
        if (e != NULL && e != last) {
            n++;
            changed = add_replacement(&m, &b, &done, at, e, tr) || changed;
            at = last = e;
        }
        else if (at < m.src_end) {
            at++;
        }
        else {
            break;
        }
        if (anchor) {
            break;
        }
    }
    if (!changed) {
        settle(&m);
        lua_pushvalue(L, 1);
    }
    else {
        count(&m, (size_t)(m.src_end - done));
        settle(&m);
        luaL_addlstring(&b, done, (size_t)(m.src_end - done));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void luabox__open_patterns(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"find", pattern_find},
        {"match", pattern_match},
        {"gmatch", pattern_gmatch},
        {"gsub", pattern_gsub},
        {NULL, NULL},
    };
    if (lua_getglobal(L, LUA_STRLIBNAME) == LUA_TTABLE) {
        luaL_setfuncs(L, fns, 0);
    }
    lua_pop(L, 1);
}
