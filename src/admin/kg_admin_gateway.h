/* kg_admin_gateway — the admin API of a running gateway: kg_admin serving the gateway's status,
 * switch, readiness and metrics, plus the routes of the modules it runs (POST /v1/reload, chaos
 * rules, experiments). The gateway does not know admin/: `kgate serve` hands these two
 * functions to kg_gateway_serve as its kg_gateway_frontend. */
#ifndef KG_ADMIN_GATEWAY_H
#define KG_ADMIN_GATEWAY_H

#include "route/kg_gateway.h"

/* Starts the admin API on GW's admin.listen (nothing, and *HANDLE NULL, when it is empty).
 * Returns 0, or -1 with the reason logged. */
int kg_admin_gateway_start(kg_gateway *gw, void **handle);
/* Stops what kg_admin_gateway_start started (HANDLE may be NULL). */
void kg_admin_gateway_stop(void *handle);
/* Reloads the admin API's HTTPS certificate (kg_admin_reload_tls); 0 without TLS. */
int kg_admin_gateway_reload(void *handle, char *err, size_t errlen);
/* A reload added vclusters: the history starts a series for each. */
void kg_admin_gateway_vclusters_changed(void *handle);

#endif
