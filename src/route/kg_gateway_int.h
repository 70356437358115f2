/* kg_gateway_int — what the gateway's own files share (kg_gateway.c: the running gateway;
 * kg_reload.c: what a reload changes in it). Not for other modules: they use kg_gateway.h. */
#ifndef KG_GATEWAY_INT_H
#define KG_GATEWAY_INT_H

#include <stddef.h>

#include <jansson.h>

#include "route/kg_gateway.h"

/* Builds cluster slot INDEX of gw->clusters from CFG (which must outlive the gateway). */
int kg_gw_cluster_init(kg_gateway *gw, int index, const kg_cluster_cfg *cfg);
/* Frees a cluster config kg_reload.c copied (NULL: nothing). */
void kg_gw_cluster_cfg_free(kg_cluster_cfg *cfg);
/* Builds a vcluster from CFG and lists it in gw->all_vclusters (freed at stop). CFG must
 * outlive it, or be OWN: malloc'd, then the vcluster's (freed with it, or here on failure).
 * NULL when it cannot (the log says why; a half-built one is listed, retired). */
kg_vcluster *kg_gw_vcluster_new(kg_gateway *gw, const kg_vcluster_cfg *cfg, kg_vcluster_cfg *own,
                                int index);
/* Makes T the table of vclusters served; the one it replaces stays allocated until stop. */
void kg_gw_publish_vclusters(kg_gateway *gw, kg_vc_table *t);
/* Has the accept thread make the listeners follow the vclusters (kg_gateway.c's
 * gateway_listen_reconcile) and waits. -1 when a port could not be listened on (WHY, may be
 * NULL, says which). */
int kg_gw_listen_sync(kg_gateway *gw, char *why, size_t len);
/* Starts the mirror thread when a vcluster has a mirror and it does not run yet. */
int kg_gw_start_mirror(kg_gateway *gw);
/* Cuts the prober's (and the mirror's) wait short: a new cluster is probed at once. */
void kg_gw_wake_background(kg_gateway *gw);

/* The parts of a reload that kg_gateway.c owns: each 0, or -1 with ERR (and the log). */
int kg_gw_reload_certificates(kg_gateway *gw, char *err, size_t errlen);
int kg_gw_reload_frontend(kg_gateway *gw, char *err, size_t errlen);
int kg_gw_apply_chaos_config(kg_gateway *gw, const kg_config *cfg, char *err, size_t errlen);
int kg_gw_apply_acl_config(kg_gateway *gw, const kg_config *cfg, char *err, size_t errlen);
kg_limits *kg_gw_limits_from(const kg_config *cfg);

#endif
