/* kg_shape — how many bytes one direction of a connection may send now, and when it may send
 * again: a token bucket for bandwidth limits and a pacer for sliced writes (chaos TCP faults).
 * Pure arithmetic on a clock passed in, so it is easy to test. */
#ifndef KG_SHAPE_H
#define KG_SHAPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct kg_shape {
    uint64_t bytes_per_s; /* 0 = no bandwidth limit */
    uint32_t slice_bytes; /* 0 = no slicing */
    uint64_t slice_gap_us;
    double tokens;
    uint64_t refilled_us;
    uint64_t next_slice_us;
} kg_shape;

void kg_shape_init(kg_shape *s, uint64_t bytes_per_s, uint32_t slice_bytes, uint64_t slice_gap_us,
                   uint64_t now_us);
/* Bytes that may be written now out of WANT. */
size_t kg_shape_allowance(kg_shape *s, size_t want, uint64_t now_us);
/* Records that N bytes were written at NOW_US. */
void kg_shape_spent(kg_shape *s, size_t n, uint64_t now_us);
/* When to try again with WANT bytes still queued. */
uint64_t kg_shape_next_us(const kg_shape *s, size_t want, uint64_t now_us);

#endif
