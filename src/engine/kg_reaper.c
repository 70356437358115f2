#include "engine/kg_reaper.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/kg_log.h"

/* A backlog this long is closed by the caller itself: the reaper runs at the lowest priority
 * and must never hold an unbounded number of descriptors on a machine that is busy for long. */
#define REAPER_MAX_QUEUED 65536

struct kg_reaper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int *fds;
    int n, cap;
    int stopping;
};

static void *reaper_main(void *arg)
{
    kg_reaper *r = arg;
    /* At a switch every worker closes thousands of client sockets, on every instance of a fleet
     * that shares the machine: those closes are what clients wait for. The backend sockets
     * handed here can wait for a free moment, so this thread gets the CPU last (nice 19: it
     * still runs, slowly, on a machine that is never idle). */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) != 0)
        kg_debug("reaper: cannot lower its priority; closing at normal priority");
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (r->n == 0 && !r->stopping)
            pthread_cond_wait(&r->wake, &r->lock);
        if (r->n == 0 && r->stopping) break;
        /* Take the whole batch and close it without holding the lock. */
        int *batch = r->fds, n = r->n;
        r->fds = NULL;
        r->n = r->cap = 0;
        pthread_mutex_unlock(&r->lock);
        for (int i = 0; i < n; i++)
            close(batch[i]);
        free(batch);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

kg_reaper *kg_reaper_start(void)
{
    kg_reaper *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    if (pthread_create(&r->thread, NULL, reaper_main, r) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void kg_reaper_close(kg_reaper *r, int fd)
{
    pthread_mutex_lock(&r->lock);
    if (r->n >= REAPER_MAX_QUEUED) {
        pthread_mutex_unlock(&r->lock);
        close(fd);
        return;
    }
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 256;
        int *grown = realloc(r->fds, (size_t)cap * sizeof(*grown));
        if (!grown) {
            pthread_mutex_unlock(&r->lock);
            close(fd);
            return;
        }
        r->fds = grown;
        r->cap = cap;
    }
    /* Only the first of a batch wakes the thread: a switch queues thousands in a row. */
    if (r->n++ == 0) pthread_cond_signal(&r->wake);
    r->fds[r->n - 1] = fd;
    pthread_mutex_unlock(&r->lock);
}

void kg_reaper_stop(kg_reaper *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    free(r->fds);
    free(r);
}
