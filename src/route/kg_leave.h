/* kg_leave — kgate leaves the old side's consumer groups on its clients' behalf at a switch
 * (issue 10, item 7a).
 *
 * A switch closes every client connection to the old side, but the old side's coordinators do
 * not know that: the members kgate's clients had there stay registered until their sessions
 * time out. A failback within that time finds the group waiting for those members, and it
 * stalls for the rest of their session (a Java consumer with default settings got no partitions
 * for 22 s). So kgate remembers, per side, the group members its clients have (group id, member
 * id, group instance id, generation: what their SyncGroup and Heartbeat requests carry; a
 * JoinGroup answer lacks the group id), forgets them when they leave (LeaveGroup) or fall behind
 * their group's generation, and at a switch sends LeaveGroup for them to the old side's
 * coordinators, in the background: the switch and its answer never wait for it. The old side
 * may be down: kgate tries again every second for up to KG_LEAVE_RETRY_MS, then gives up (the
 * sessions have timed out by then).
 *
 * Bounded: KG_LEAVE_SLOTS members per virtual cluster (the least recently seen one is replaced),
 * ids longer than KG_LEAVE_ID_MAX bytes are not remembered. Thread-safe.
 */
#ifndef KG_LEAVE_H
#define KG_LEAVE_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/kg_metrics.h"
#include "route/kg_cluster.h"

#define KG_LEAVE_SLOTS 4096
#define KG_LEAVE_ID_MAX 255
#define KG_LEAVE_RETRY_MS (10 * 60 * 1000)

typedef struct kg_leave kg_leave;

/* Counters labelled with VCLUSTER. NULL when out of memory. */
kg_leave *kg_leave_new(kg_metrics *metrics, const char *vcluster);
/* Stops the background work (an attempt in progress ends within its few-second deadline). */
void kg_leave_free(kg_leave *l);

/* A request a client sent to cluster CLUSTER_INDEX (BODY: LEN bytes after the request header):
 * SyncGroup and Heartbeat remember their member, LeaveGroup forgets its members; other APIs and
 * bodies that do not decode are ignored. */
void kg_leave_note(kg_leave *l, int cluster_index, int16_t api_key, int16_t version,
                   const uint8_t *body, size_t len);

/* A switch away from FROM: the members remembered there are forgotten and left in the
 * background. Returns how many members will be left. */
int kg_leave_switch(kg_leave *l, kg_cluster *from);

/* How many members are remembered on cluster CLUSTER_INDEX (tests, status). */
int kg_leave_count(kg_leave *l, int cluster_index);

/* What one background leave did; the last one is kept (kg_leave_last). */
typedef struct kg_leave_result {
    int members, groups;
    int left;    /* the coordinator removed them */
    int unknown; /* no longer members there (left or timed out already) */
    int failed;  /* any other error, or the old side never answered */
    uint64_t duration_us;
} kg_leave_result;
/* 1 with *OUT when a background leave has finished since kgate started, else 0. */
int kg_leave_last(kg_leave *l, kg_leave_result *out);

#endif
