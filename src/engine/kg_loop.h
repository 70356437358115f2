/* kg_loop — a small epoll event loop, one per thread.
 *
 * File events call a handler with the ready mask; timers fire from a binary min-heap;
 * other threads wake a loop with kg_loop_wake() (an eventfd). Nothing here knows Kafka.
 */
#ifndef KG_LOOP_H
#define KG_LOOP_H

#include <stdint.h>

#define KG_EV_READ 1u
#define KG_EV_WRITE 2u
#define KG_EV_ERROR 4u /* hang-up or socket error; reported together with READ */

typedef struct kg_loop kg_loop;
typedef void kg_io_fn(kg_loop *loop, int fd, unsigned mask, void *arg);
typedef void kg_timer_fn(kg_loop *loop, void *arg);

/* An I/O watcher is owned by the caller (embedded in a connection) so that registering it
 * never allocates. */
typedef struct kg_io {
    int fd;
    unsigned mask; /* KG_EV_READ | KG_EV_WRITE currently requested */
    kg_io_fn *fn;
    void *arg;
} kg_io;

typedef struct kg_timer {
    uint64_t due_us;
    int heap_index; /* -1 when not scheduled */
    kg_timer_fn *fn;
    void *arg;
} kg_timer;

kg_loop *kg_loop_new(void);
void kg_loop_free(kg_loop *loop);

/* Registers or updates interest; a mask of 0 keeps the fd registered but silent. */
int kg_loop_io_set(kg_loop *loop, kg_io *io, unsigned mask);
void kg_loop_io_del(kg_loop *loop, kg_io *io);
/* For an fd about to be closed: close() itself removes it from epoll, so skip the syscall. */
void kg_loop_io_forget(kg_io *io);

void kg_timer_init(kg_timer *t, kg_timer_fn *fn, void *arg);
void kg_loop_timer_at(kg_loop *loop, kg_timer *t, uint64_t due_us);
void kg_loop_timer_in(kg_loop *loop, kg_timer *t, uint64_t delay_us);
void kg_loop_timer_cancel(kg_loop *loop, kg_timer *t);

/* Called in the loop's thread whenever kg_loop_wake() was called from any thread. */
void kg_loop_on_wake(kg_loop *loop, void (*fn)(kg_loop *loop, void *arg), void *arg);
void kg_loop_wake(kg_loop *loop);

/* Called once per iteration after events and timers ran: the place to release objects that
 * handlers of the same batch might still reference (closed connections). */
void kg_loop_after_batch(kg_loop *loop, void (*fn)(kg_loop *loop, void *arg), void *arg);

/* Runs until kg_loop_stop(); returns 0. */
int kg_loop_run(kg_loop *loop);
void kg_loop_stop(kg_loop *loop);

/* Monotonic clock in microseconds; cached per loop iteration by kg_loop_now(). */
uint64_t kg_now_us(void);
uint64_t kg_loop_now(kg_loop *loop);

#endif
