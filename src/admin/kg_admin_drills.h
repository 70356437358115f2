/* kg_admin_drills — the admin API routes that record and serve drill results (/v1/drills...). */
#ifndef KG_ADMIN_DRILLS_H
#define KG_ADMIN_DRILLS_H

#include "admin/kg_admin.h"

typedef struct kg_store kg_store;

#define KG_ADMIN_DRILLS_N_ROUTES 3

/* Fills OUT with the routes keeping drills in STORE (which must outlive the server), for
 * kg_admin_ops.extra_routes. Returns how many it wrote. */
int kg_admin_drills_routes(kg_store *store, kg_admin_route out[KG_ADMIN_DRILLS_N_ROUTES]);

#endif
