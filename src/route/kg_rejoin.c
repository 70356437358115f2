/* kg_rejoin — group members that have not rejoined since a switch (kg_rejoin.h). */
#include "route/kg_rejoin.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REJOIN_SLOTS 1024 /* clients remembered per virtual cluster */
#define REJOIN_KEY 320    /* client id (up to 255 bytes kept) + host */

typedef struct rejoin_slot {
    char key[REJOIN_KEY]; /* "" = free */
    uint64_t route;
    uint64_t hinted;  /* the route its first Fetch there was answered NOT_LEADER_OR_FOLLOWER on */
    uint64_t joining; /* the route it last sent JoinGroup on while pending there */
    uint64_t joining_us; /* when */
    uint64_t used;       /* when it was last synced (a counter): the oldest is replaced */
} rejoin_slot;

struct kg_rejoin {
    pthread_mutex_t lock;
    uint64_t clock;
    rejoin_slot slots[REJOIN_SLOTS];
};

kg_rejoin *kg_rejoin_new(void)
{
    kg_rejoin *r = calloc(1, sizeof(*r));
    if (r && pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void kg_rejoin_free(kg_rejoin *r)
{
    if (!r) return;
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void rejoin_key(char out[REJOIN_KEY], const char *client_id, size_t len, const char *host)
{
    if (len > 255) len = 255;
    memcpy(out, client_id, len);
    out[len] = '\n'; /* cannot occur in a host */
    size_t h = strlen(host);
    if (h > REJOIN_KEY - len - 2) h = REJOIN_KEY - len - 2;
    memcpy(out + len + 1, host, h);
    out[len + 1 + h] = '\0';
}

#define REJOIN_PROBES 16 /* a client lives in one of the 16 slots after its key's hash */

static uint32_t rejoin_hash(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *key; key++)
        h = (h ^ (uint8_t)*key) * 16777619u;
    return h;
}

static rejoin_slot *rejoin_find(kg_rejoin *r, const char *key)
{
    uint32_t h = rejoin_hash(key);
    for (uint32_t i = 0; i < REJOIN_PROBES; i++) {
        rejoin_slot *s = &r->slots[(h + i) % REJOIN_SLOTS];
        if (s->key[0] && strcmp(s->key, key) == 0) return s;
    }
    return NULL;
}

/* A free slot of KEY's probes, else the one synced longest ago. */
static rejoin_slot *rejoin_place(kg_rejoin *r, const char *key)
{
    uint32_t h = rejoin_hash(key);
    rejoin_slot *oldest = &r->slots[h % REJOIN_SLOTS];
    for (uint32_t i = 0; i < REJOIN_PROBES; i++) {
        rejoin_slot *s = &r->slots[(h + i) % REJOIN_SLOTS];
        if (!s->key[0]) return s;
        if (s->used < oldest->used) oldest = s;
    }
    return oldest;
}

void kg_rejoin_synced(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                      uint64_t route)
{
    char key[REJOIN_KEY];
    rejoin_key(key, client_id, len, host);
    pthread_mutex_lock(&r->lock);
    rejoin_slot *s = rejoin_find(r, key);
    if (!s) {
        s = rejoin_place(r, key);
        memcpy(s->key, key, sizeof(key));
    }
    s->route = route;
    s->used = ++r->clock;
    pthread_mutex_unlock(&r->lock);
}

enum { ASK_MEMBER, ASK_PENDING, ASK_FIRST, ASK_JOINING, ASK_IN_JOIN };

/* One question about a client, answered under the lock: is it a member kgate knows, one that
 * has not synced on ROUTE, one whose first Fetch on ROUTE this is (noted as asked), one that
 * sends JoinGroup there (noted, at NOW_US), one whose JoinGroup there is recent? */
static int rejoin_ask(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                      uint64_t route, int ask, uint64_t now_us)
{
    char key[REJOIN_KEY];
    rejoin_key(key, client_id, len, host);
    pthread_mutex_lock(&r->lock);
    rejoin_slot *s = rejoin_find(r, key);
    int yes = s != NULL;
    if (yes && ask != ASK_MEMBER) yes = s->route != route;
    if (yes && ask == ASK_FIRST) {
        yes = s->hinted != route;
        s->hinted = route;
    } else if (yes && ask == ASK_JOINING) {
        s->joining = route;
        s->joining_us = now_us;
    } else if (yes && ask == ASK_IN_JOIN) {
        yes = s->joining == route && now_us - s->joining_us < KG_REJOIN_JOIN_WINDOW_MS * 1000ull;
    }
    pthread_mutex_unlock(&r->lock);
    return yes;
}

int kg_rejoin_pending(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                      uint64_t route)
{
    return rejoin_ask(r, client_id, len, host, route, ASK_PENDING, 0);
}

int kg_rejoin_member(kg_rejoin *r, const char *client_id, size_t len, const char *host)
{
    return rejoin_ask(r, client_id, len, host, 0, ASK_MEMBER, 0);
}

int kg_rejoin_first(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                    uint64_t route)
{
    return rejoin_ask(r, client_id, len, host, route, ASK_FIRST, 0);
}

void kg_rejoin_joining(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                       uint64_t route, uint64_t now_us)
{
    rejoin_ask(r, client_id, len, host, route, ASK_JOINING, now_us);
}

int kg_rejoin_in_join(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                      uint64_t route, uint64_t now_us)
{
    return rejoin_ask(r, client_id, len, host, route, ASK_IN_JOIN, now_us);
}

int kg_rejoin_heartbeat_ok(int16_t version, kp_writer *out)
{
    if (!kp_api_supported(KP_KEY_HEARTBEAT, version)) return -1;
    kp_heartbeat_response m;
    kp_heartbeat_response_init(&m);
    m.error_code = 0;
    kp_heartbeat_response_encode(out, version, &m);
    return out->err ? -1 : 0;
}

int kg_rejoin_sync_error(int16_t version, const uint8_t *body, size_t len)
{
    size_t at = version >= 1 ? 4 : 0; /* throttle_time_ms */
    if (len < at + 2) return -1;
    return (int16_t)((body[at] << 8) | body[at + 1]);
}
