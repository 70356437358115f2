/* kg_admin_experiments — the admin API routes of experiments (/v1/experiments...), served by
 * kg_admin on behalf of the experiment runner (which knows nothing of HTTP). */
#ifndef KG_ADMIN_EXPERIMENTS_H
#define KG_ADMIN_EXPERIMENTS_H

#include "admin/kg_admin.h"

typedef struct kg_experiments kg_experiments;

#define KG_ADMIN_EXPERIMENTS_N_ROUTES 6

/* Fills OUT with the routes serving XS (listed in kg_admin_experiments.c), for
 * kg_admin_ops.extra_routes (kg_admin_start copies them, so OUT may be temporary; XS must
 * outlive the server). Returns how many it wrote. */
int kg_admin_experiments_routes(kg_experiments *xs,
                                kg_admin_route out[KG_ADMIN_EXPERIMENTS_N_ROUTES]);

#endif
