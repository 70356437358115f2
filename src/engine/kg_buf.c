#include "engine/kg_buf.h"

#include <stdlib.h>
#include <string.h>

int kg_buf_reserve(kg_buf *b, size_t extra)
{
    if (b->cap - b->tail >= extra) return 0;
    size_t live = kg_buf_len(b);
    if (b->head > 0 && b->cap - live >= extra) {
        memmove(b->data, b->data + b->head, live);
        b->head = 0;
        b->tail = live;
        return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - live < extra)
        cap *= 2;
    uint8_t *d = malloc(cap);
    if (!d) return -1;
    if (live) memcpy(d, b->data + b->head, live);
    if (!b->lent) free(b->data);
    b->lent = 0;
    b->data = d;
    b->head = 0;
    b->tail = live;
    b->cap = cap;
    return 0;
}

int kg_buf_append(kg_buf *b, const void *p, size_t n)
{
    if (kg_buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->tail, p, n);
    b->tail += n;
    return 0;
}

void kg_buf_consume(kg_buf *b, size_t n)
{
    b->head += n;
    if (b->head >= b->tail) b->head = b->tail = 0;
}

void kg_buf_trim(kg_buf *b, size_t idle_cap)
{
    if (kg_buf_len(b) == 0 && b->cap > idle_cap) kg_buf_free(b);
}

void kg_buf_free(kg_buf *b)
{
    if (!b->lent) free(b->data);
    b->data = NULL;
    b->head = b->tail = b->cap = 0;
    b->lent = 0;
}

void kg_buf_lend(kg_buf *b, uint8_t *scratch, size_t cap)
{
    kg_buf_free(b);
    b->data = scratch;
    b->cap = cap;
    b->lent = 1;
}

int kg_buf_settle(kg_buf *b)
{
    if (!b->lent) return 0;
    size_t live = kg_buf_len(b);
    if (live == 0) {
        kg_buf_free(b);
        return 0;
    }
    uint8_t *d = malloc(live);
    if (!d) return -1;
    memcpy(d, b->data + b->head, live);
    b->data = d;
    b->head = 0;
    b->tail = b->cap = live;
    b->lent = 0;
    return 0;
}
