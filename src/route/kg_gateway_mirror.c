#include "route/kg_gateway_mirror.h"

#include <stdlib.h>
#include <string.h>

#include "config/kg_config.h"
#include "route/kg_mirror.h"
#include "route/kg_offsets.h"

#define API_TIMEOUT_MS 10000 /* a pass or a lag measure asked for over the API */
#define PASS_TIMEOUT_MS 10000

static int other_side(const kg_vcluster *vc)
{
    int active = KG_ROUTE_ACTIVE(atomic_load(&vc->route));
    return active == vc->cfg->primary ? vc->cfg->secondary : vc->cfg->primary;
}

/* One pass of VC's mirror in its current direction, bounded by TIMEOUT_MS; the records copied
 * or -1. */
static int mirror_pass(kg_gateway *gw, kg_vcluster *vc, int timeout_ms)
{
    kg_cluster *from = &gw->clusters[KG_ROUTE_ACTIVE(atomic_load(&vc->route))];
    kg_cluster *to = &gw->clusters[other_side(vc)];
    json_t *groups = vc->offsets ? kg_offsets_seen(vc->offsets, from->index) : NULL;
    int rc = kg_mirror_pass(vc->mirror, from, to, timeout_ms, groups,
                            vc->cfg->offsets_alias[from->index == vc->cfg->primary ? 0 : 1]);
    json_decref(groups);
    return rc;
}

/* A pass per virtual cluster with a mirror, from its active cluster to the other one, when the
 * active one is up (with the other down it only updates the lag). The direction follows the
 * switches. */
void *kg_gateway_mirror_main(void *arg)
{
    kg_gateway *gw = arg;
    while (!atomic_load(&gw->stopping)) {
        int interval = 60000;
        const kg_vc_table *t = kg_gateway_vclusters(gw);
        for (int i = 0; i < t->n && !atomic_load(&gw->stopping); i++) {
            kg_vcluster *vc = t->v[i];
            if (!vc->mirror) continue;
            if (vc->cfg->mirror_interval_ms < interval) interval = vc->cfg->mirror_interval_ms;
            int active = KG_ROUTE_ACTIVE(atomic_load(&vc->route));
            if (atomic_load(&gw->clusters[active].up)) mirror_pass(gw, vc, PASS_TIMEOUT_MS);
        }
        kg_gateway_background_sleep(gw, interval);
    }
    return NULL;
}

/* "a,b,c" into T (names point into COPY, which the caller frees); NULL or "": every topic. */
static int split_topics(const char *csv, char **copy, const char ***names, kg_cluster_topics *t)
{
    *t = (kg_cluster_topics){-1, NULL};
    *copy = NULL;
    *names = NULL;
    if (!csv || !*csv) return 0;
    size_t n = 1;
    for (const char *c = csv; *c; c++)
        n += *c == ',';
    if (!(*copy = strdup(csv)) || !(*names = calloc(n, sizeof(**names)))) return -1;
    int count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(*copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        (*names)[count++] = tok;
    *t = (kg_cluster_topics){count, *names};
    return 0;
}

int kg_gateway_mirror(kg_gateway *gw, const char *vcluster, int pass, const char *topics,
                      json_t **result)
{
    kg_vcluster *vc = kg_gateway_vcluster(gw, vcluster);
    const char *why = !vc           ? "unknown vcluster"
                      : !vc->mirror ? "the vcluster has no mirror (mirror.topics)"
                      : !gw->mirror_started
                          ? "the mirror does not run on this instance (see the log at start)"
                          : NULL;
    if (why) {
        *result = json_pack("{s:s}", "error", why);
        return vc ? 409 : 404;
    }
    int copied = pass ? mirror_pass(gw, vc, API_TIMEOUT_MS) : 0;
    kg_cluster *from = &gw->clusters[KG_ROUTE_ACTIVE(atomic_load(&vc->route))];
    kg_cluster *to = &gw->clusters[other_side(vc)];
    char err[512] = "out of memory", *copy = NULL;
    const char **names = NULL;
    kg_cluster_topics t;
    *result = NULL;
    if (copied >= 0 && split_topics(topics, &copy, &names, &t) == 0)
        *result = kg_mirror_lag(vc->mirror, from, to, &t, API_TIMEOUT_MS, err, sizeof(err));
    free(copy);
    free(names);
    if (!*result) {
        *result = json_pack("{s:s}", "error",
                            copied < 0 ? "the pass stopped on an error (see the log and "
                                         "kgate_mirror_errors_total); nothing was skipped"
                                       : err);
        return 503;
    }
    json_object_set_new(*result, "vcluster", json_string(vc->cfg->name));
    if (pass) json_object_set_new(*result, "copied", json_integer(copied));
    return 200;
}
