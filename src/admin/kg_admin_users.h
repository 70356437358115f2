/* kg_admin_users — the admin API routes of the SASL users kgate manages (/v1/users...), served
 * by kg_admin on behalf of the users registry (security/kg_users.h), which knows nothing of
 * HTTP. No reply ever carries a password, salt or key. */
#ifndef KG_ADMIN_USERS_H
#define KG_ADMIN_USERS_H

#include "admin/kg_admin.h"

typedef struct kg_users kg_users;

#define KG_ADMIN_USERS_N_ROUTES 5

/* Fills OUT with the routes serving U (see kg_admin_chaos_routes). Returns how many. */
int kg_admin_users_routes(kg_users *u, kg_admin_route out[KG_ADMIN_USERS_N_ROUTES]);

#endif
