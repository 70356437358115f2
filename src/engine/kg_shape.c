#include "engine/kg_shape.h"

/* A bucket holds at most a quarter second of traffic: bursts stay short. */
#define KG_SHAPE_BURST_DIVISOR 4

void kg_shape_init(kg_shape *s, uint64_t bytes_per_s, uint32_t slice_bytes, uint64_t slice_gap_us,
                   uint64_t now_us)
{
    s->bytes_per_s = bytes_per_s;
    s->slice_bytes = slice_bytes;
    s->slice_gap_us = slice_gap_us;
    s->tokens = 0;
    s->refilled_us = now_us;
    s->next_slice_us = now_us;
}

static double shape_burst(const kg_shape *s)
{
    double burst = (double)s->bytes_per_s / KG_SHAPE_BURST_DIVISOR;
    return burst < 1024 ? 1024 : burst;
}

static void shape_refill(kg_shape *s, uint64_t now_us)
{
    if (!s->bytes_per_s || now_us <= s->refilled_us) return;
    s->tokens += (double)(now_us - s->refilled_us) * (double)s->bytes_per_s / 1e6;
    if (s->tokens > shape_burst(s)) s->tokens = shape_burst(s);
    s->refilled_us = now_us;
}

size_t kg_shape_allowance(kg_shape *s, size_t want, uint64_t now_us)
{
    size_t n = want;
    if (s->slice_bytes) {
        if (now_us < s->next_slice_us) return 0;
        if (n > s->slice_bytes) n = s->slice_bytes;
    }
    if (s->bytes_per_s) {
        shape_refill(s, now_us);
        if ((double)n > s->tokens) n = s->tokens > 0 ? (size_t)s->tokens : 0;
    }
    return n;
}

void kg_shape_spent(kg_shape *s, size_t n, uint64_t now_us)
{
    if (s->bytes_per_s) s->tokens -= (double)n;
    if (s->slice_bytes && n > 0) s->next_slice_us = now_us + s->slice_gap_us;
}

uint64_t kg_shape_next_us(const kg_shape *s, size_t want, uint64_t now_us)
{
    uint64_t at = now_us + 1000; /* at least 1 ms: a full socket buffer needs a moment too */
    if (s->slice_bytes && s->next_slice_us > at) at = s->next_slice_us;
    if (s->bytes_per_s) {
        double need = (double)want;
        if (need > shape_burst(s)) need = shape_burst(s);
        if (s->slice_bytes && need > s->slice_bytes) need = s->slice_bytes;
        double missing = need - s->tokens;
        if (missing > 0) {
            uint64_t t = now_us + (uint64_t)(missing * 1e6 / (double)s->bytes_per_s) + 1;
            if (t > at) at = t;
        }
    }
    return at;
}
