/* kg_admin_acls — the admin API routes of ACL bindings (/v1/acls), served by kg_admin on behalf
 * of the ACL registry (security/kg_acl.h), which knows nothing of HTTP. */
#ifndef KG_ADMIN_ACLS_H
#define KG_ADMIN_ACLS_H

#include "admin/kg_admin.h"

typedef struct kg_acls kg_acls;

#define KG_ADMIN_ACLS_N_ROUTES 3

/* Fills OUT with the routes serving A (see kg_admin_chaos_routes). Returns how many. */
int kg_admin_acls_routes(kg_acls *a, kg_admin_route out[KG_ADMIN_ACLS_N_ROUTES]);

#endif
