/* kg_admin_chaos — the admin API routes of chaos rules (/v1/chaos/rules...), served by kg_admin
 * on behalf of the chaos module (which knows nothing of HTTP). */
#ifndef KG_ADMIN_CHAOS_H
#define KG_ADMIN_CHAOS_H

#include "admin/kg_admin.h"

typedef struct kg_chaos kg_chaos;

#define KG_ADMIN_CHAOS_N_ROUTES 4

/* Fills OUT with the routes serving CH (listed in kg_admin_chaos.c), for kg_admin_ops.extra_routes
 * (kg_admin_start copies them, so OUT may be temporary; CH must outlive the server). Returns how
 * many it wrote. */
int kg_admin_chaos_routes(kg_chaos *ch, kg_admin_route out[KG_ADMIN_CHAOS_N_ROUTES]);

#endif
