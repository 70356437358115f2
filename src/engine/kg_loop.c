#include "engine/kg_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define KG_LOOP_MAX_EVENTS 256

struct kg_loop {
    int epfd;
    int stop;
    uint64_t now_us;
    kg_timer **heap;
    int heap_len, heap_cap;
    kg_io wake_io;
    void (*wake_fn)(kg_loop *loop, void *arg);
    void *wake_arg;
    void (*after_fn)(kg_loop *loop, void *arg);
    void *after_arg;
};

uint64_t kg_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t kg_loop_now(kg_loop *loop)
{
    return loop->now_us;
}

static void loop_wake_read(kg_loop *loop, int fd, unsigned mask, void *arg)
{
    uint64_t n;
    while (read(fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
        ;
    if (loop->wake_fn) loop->wake_fn(loop, loop->wake_arg);
}

kg_loop *kg_loop_new(void)
{
    kg_loop *loop = calloc(1, sizeof(*loop));
    if (!loop) return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->epfd < 0 || efd < 0) {
        if (loop->epfd >= 0) close(loop->epfd);
        if (efd >= 0) close(efd);
        free(loop);
        return NULL;
    }
    loop->wake_io = (kg_io){.fd = efd, .fn = loop_wake_read};
    kg_loop_io_set(loop, &loop->wake_io, KG_EV_READ);
    loop->now_us = kg_now_us();
    return loop;
}

void kg_loop_free(kg_loop *loop)
{
    if (!loop) return;
    close(loop->wake_io.fd);
    close(loop->epfd);
    free(loop->heap);
    free(loop);
}

int kg_loop_io_set(kg_loop *loop, kg_io *io, unsigned mask)
{
    struct epoll_event ev = {0};
    ev.events = ((mask & KG_EV_READ) ? EPOLLIN : 0) | ((mask & KG_EV_WRITE) ? EPOLLOUT : 0);
    ev.data.ptr = io;
    int registered = io->mask & 0x80000000u;
    if (registered && (io->mask & ~0x80000000u) == mask) return 0;
    if (epoll_ctl(loop->epfd, registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, io->fd, &ev) < 0)
        return -1;
    io->mask = mask | 0x80000000u;
    return 0;
}

void kg_loop_io_del(kg_loop *loop, kg_io *io)
{
    if (io->mask & 0x80000000u) epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->mask = 0;
}

void kg_loop_io_forget(kg_io *io)
{
    io->mask = 0;
}

/* ---- timers: a binary min-heap on due time ---- */

static void heap_swap(kg_loop *loop, int a, int b)
{
    kg_timer *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_index = a;
    loop->heap[b]->heap_index = b;
}

static void heap_up(kg_loop *loop, int i)
{
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (loop->heap[parent]->due_us <= loop->heap[i]->due_us) break;
        heap_swap(loop, i, parent);
        i = parent;
    }
}

static void heap_down(kg_loop *loop, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop->heap_len && loop->heap[l]->due_us < loop->heap[m]->due_us) m = l;
        if (r < loop->heap_len && loop->heap[r]->due_us < loop->heap[m]->due_us) m = r;
        if (m == i) return;
        heap_swap(loop, i, m);
        i = m;
    }
}

void kg_timer_init(kg_timer *t, kg_timer_fn *fn, void *arg)
{
    t->due_us = 0;
    t->heap_index = -1;
    t->fn = fn;
    t->arg = arg;
}

void kg_loop_timer_cancel(kg_loop *loop, kg_timer *t)
{
    int i = t->heap_index;
    if (i < 0) return;
    loop->heap_len--;
    if (i != loop->heap_len) {
        loop->heap[i] = loop->heap[loop->heap_len];
        loop->heap[i]->heap_index = i;
        heap_down(loop, i);
        heap_up(loop, i);
    }
    t->heap_index = -1;
}

void kg_loop_timer_at(kg_loop *loop, kg_timer *t, uint64_t due_us)
{
    kg_loop_timer_cancel(loop, t);
    if (loop->heap_len == loop->heap_cap) {
        int cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        kg_timer **h = realloc(loop->heap, (size_t)cap * sizeof(*h));
        if (!h) abort(); /* timers guard resources; running without one is worse than stopping */
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->due_us = due_us;
    t->heap_index = loop->heap_len;
    loop->heap[loop->heap_len++] = t;
    heap_up(loop, t->heap_index);
}

void kg_loop_timer_in(kg_loop *loop, kg_timer *t, uint64_t delay_us)
{
    kg_loop_timer_at(loop, t, kg_now_us() + delay_us);
}

static void loop_fire_timers(kg_loop *loop)
{
    while (loop->heap_len > 0 && loop->heap[0]->due_us <= loop->now_us) {
        kg_timer *t = loop->heap[0];
        kg_loop_timer_cancel(loop, t);
        t->fn(loop, t->arg);
    }
}

static int loop_timeout_ms(kg_loop *loop)
{
    if (loop->heap_len == 0) return 1000;
    uint64_t due = loop->heap[0]->due_us;
    if (due <= loop->now_us) return 0;
    uint64_t ms = (due - loop->now_us + 999) / 1000;
    return ms > 1000 ? 1000 : (int)ms;
}

void kg_loop_on_wake(kg_loop *loop, void (*fn)(kg_loop *loop, void *arg), void *arg)
{
    loop->wake_fn = fn;
    loop->wake_arg = arg;
}

void kg_loop_wake(kg_loop *loop)
{
    uint64_t one = 1;
    ssize_t n = write(loop->wake_io.fd, &one, sizeof(one));
    (void)n; /* EAGAIN means a wake-up is already pending, which is all we need */
}

void kg_loop_after_batch(kg_loop *loop, void (*fn)(kg_loop *loop, void *arg), void *arg)
{
    loop->after_fn = fn;
    loop->after_arg = arg;
}

void kg_loop_stop(kg_loop *loop)
{
    loop->stop = 1;
}

int kg_loop_run(kg_loop *loop)
{
    struct epoll_event events[KG_LOOP_MAX_EVENTS];
    while (!loop->stop) {
        loop->now_us = kg_now_us();
        int n = epoll_wait(loop->epfd, events, KG_LOOP_MAX_EVENTS, loop_timeout_ms(loop));
        if (n < 0 && errno != EINTR) return -1;
        loop->now_us = kg_now_us();
        for (int i = 0; i < n; i++) {
            kg_io *io = events[i].data.ptr;
            unsigned mask = 0;
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) mask |= KG_EV_READ;
            if (events[i].events & EPOLLOUT) mask |= KG_EV_WRITE;
            if (events[i].events & (EPOLLHUP | EPOLLERR)) mask |= KG_EV_ERROR;
            io->fn(loop, io->fd, mask, io->arg);
        }
        loop_fire_timers(loop);
        if (loop->after_fn) loop->after_fn(loop, loop->after_arg);
    }
    return 0;
}
