/* kg_buf — a growable byte buffer with a consumed-head offset, for socket I/O. */
#ifndef KG_BUF_H
#define KG_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct kg_buf {
    uint8_t *data;
    size_t head; /* first unconsumed byte */
    size_t tail; /* one past the last byte */
    size_t cap;
    int lent; /* data is someone else's scratch memory: never freed or reallocated here */
} kg_buf;

static inline size_t kg_buf_len(const kg_buf *b)
{
    return b->tail - b->head;
}

static inline uint8_t *kg_buf_begin(const kg_buf *b)
{
    return b->data + b->head;
}

/* Makes room for at least EXTRA bytes after tail (moving live bytes to the front or
 * growing). Returns 0, or -1 when memory is exhausted. */
int kg_buf_reserve(kg_buf *b, size_t extra);
int kg_buf_append(kg_buf *b, const void *p, size_t n);
void kg_buf_consume(kg_buf *b, size_t n);
/* Gives memory back once a burst is over: an empty buffer above IDLE_CAP is released. */
void kg_buf_trim(kg_buf *b, size_t idle_cap);
void kg_buf_free(kg_buf *b);

/* Scratch lending, so idle connections hold no buffer memory: an empty buffer reads into the
 * worker's scratch; kg_buf_settle() then copies what is left (usually a partial frame, often
 * nothing) into memory of its own. Growing a lent buffer also moves it to its own memory. */
void kg_buf_lend(kg_buf *b, uint8_t *scratch, size_t cap);
int kg_buf_settle(kg_buf *b);

#endif
