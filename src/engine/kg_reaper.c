#include "engine/kg_reaper.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

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
    r->fds[r->n++] = fd;
    pthread_cond_signal(&r->wake);
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
