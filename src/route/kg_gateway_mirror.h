/* kg_gateway_mirror — the embedded mirror (kg_mirror) as the gateway runs it: the background
 * passes of every vcluster with a mirror, and the admin API's view of it (the lag now, a pass
 * now), always in the vcluster's current direction (active side -> the other one). */
#ifndef KG_GATEWAY_MIRROR_H
#define KG_GATEWAY_MIRROR_H

#include <jansson.h>

#include "route/kg_gateway.h"

/* The mirror thread's main (kg_gateway_start starts it when a vcluster has a mirror). */
void *kg_gateway_mirror_main(void *arg);

/* GET /v1/vclusters/NAME/mirror[?topics=a,b]: kg_mirror_lag of TOPICS ("a,b"; NULL or "":
 * every mirrored topic), now. PASS (POST .../mirror/pass): a pass first, with checkpoints, and
 * "copied" in the result. Returns an HTTP status; *RESULT is the report, or {"error": why} from
 * 400 on. */
int kg_gateway_mirror(kg_gateway *gw, const char *vcluster, int pass, const char *topics,
                      json_t **result);

/* GET /v1/vclusters/NAME/replication: the lag of the vcluster's replication now, as a planned
 * switch measures it (kg_planned_lag). 200; 404 unknown vcluster; 409 no replication kgate can
 * measure; 503 a side unreadable (or MM2's offset-syncs topic missing). */
int kg_gateway_replication(kg_gateway *gw, const char *vcluster, json_t **result);

#endif
