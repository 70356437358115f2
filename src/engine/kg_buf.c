#include "engine/kg_buf.h"

#include <stdlib.h>
#include <string.h>

int kg_buf_reserve(kg_buf *b, size_t extra)
{
    if (b->cap - b->tail >= extra)
        return 0;
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
    if (!d)
        return -1;
    if (live)
        memcpy(d, b->data + b->head, live);
    free(b->data);
    b->data = d;
    b->head = 0;
    b->tail = live;
    b->cap = cap;
    return 0;
}

int kg_buf_append(kg_buf *b, const void *p, size_t n)
{
    if (kg_buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->tail, p, n);
    b->tail += n;
    return 0;
}

void kg_buf_consume(kg_buf *b, size_t n)
{
    b->head += n;
    if (b->head >= b->tail)
        b->head = b->tail = 0;
}

void kg_buf_trim(kg_buf *b, size_t idle_cap)
{
    if (kg_buf_len(b) == 0 && b->cap > idle_cap) {
        free(b->data);
        b->data = NULL;
        b->head = b->tail = b->cap = 0;
    }
}

void kg_buf_free(kg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->head = b->tail = b->cap = 0;
}
