/* Merkle hash functions: see hash.h. The canonical encoding is built in a stack buffer
 * and hashed in one XXH3 call; long texts go through the streaming API instead. */
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "sprig/hash.h"

static size_t put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(v >> (8 * i));
    }
    return 8;
}

static size_t put_u32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        b[i] = (unsigned char)(v >> (8 * i));
    }
    return 4;
}

uint64_t sprig_hash_point(const sprig_point_t *p)
{
    const char *key = p->key != NULL ? p->key : "0";
    const char *text = p->text != NULL ? p->text : "";
    const char *origin = p->origin != NULL ? p->origin : "";
    size_t lt = strlen(p->type), lk = strlen(key), lx = strlen(text), lo = strlen(origin);
    uint64_t vbits;
    memcpy(&vbits, &p->value, sizeof(vbits));

    size_t need = 4 + lt + 4 + lk + 8 + 8 + 4 + lx + 1 + 4 + lo;
    unsigned char stack[512];
    if (need <= sizeof(stack)) {
        unsigned char *b = stack;
        size_t n = 0;
        n += put_u32(b + n, (uint32_t)lt);
        memcpy(b + n, p->type, lt), n += lt;
        n += put_u32(b + n, (uint32_t)lk);
        memcpy(b + n, key, lk), n += lk;
        n += put_u64(b + n, (uint64_t)p->time);
        n += put_u64(b + n, vbits);
        n += put_u32(b + n, (uint32_t)lx);
        memcpy(b + n, text, lx), n += lx;
        b[n++] = (unsigned char)(p->tombstone != 0);
        n += put_u32(b + n, (uint32_t)lo);
        memcpy(b + n, origin, lo), n += lo;
        return XXH3_64bits(b, n);
    }
    /* Same bytes, streamed: a long text must not need a large buffer. */
    XXH3_state_t st;
    unsigned char b[16];
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, b, put_u32(b, (uint32_t)lt));
    XXH3_64bits_update(&st, p->type, lt);
    XXH3_64bits_update(&st, b, put_u32(b, (uint32_t)lk));
    XXH3_64bits_update(&st, key, lk);
    XXH3_64bits_update(&st, b, put_u64(b, (uint64_t)p->time));
    XXH3_64bits_update(&st, b, put_u64(b, vbits));
    XXH3_64bits_update(&st, b, put_u32(b, (uint32_t)lx));
    XXH3_64bits_update(&st, text, lx);
    b[0] = (unsigned char)(p->tombstone != 0);
    XXH3_64bits_update(&st, b, 1);
    XXH3_64bits_update(&st, b, put_u32(b, (uint32_t)lo));
    XXH3_64bits_update(&st, origin, lo);
    return XXH3_64bits_digest(&st);
}

uint64_t sprig_hash_contrib(const char *child_id, uint64_t child_sub, uint64_t edge_xor)
{
    unsigned char b[4 + SPRIG_ID_MAX + 16];
    size_t li = strlen(child_id);
    if (li > SPRIG_ID_MAX) {
        li = SPRIG_ID_MAX; /* ids are checked at the write path; never longer */
    }
    size_t n = put_u32(b, (uint32_t)li);
    memcpy(b + n, child_id, li), n += li;
    n += put_u64(b + n, child_sub);
    n += put_u64(b + n, edge_xor);
    return XXH3_64bits(b, n);
}
