/* kg_fleet_planned — see kg_fleet_planned.h. */
#include "fleet/kg_fleet_planned.h"

#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "config/kg_config.h"
#include "engine/kg_loop.h"
#include "fleet/kg_pq.h"
#include "route/kg_gateway.h"
#include "route/kg_planned.h"
#include "util/kg_log.h"

#define FP_CHANNEL "kgate_planned"
#define FP_ACK_CHANNEL "kgate_planned_ack"
#define FP_MAX_HOLDS 64       /* vclusters followed at once */
#define FP_IDLE_MS 250        /* the rows are read this often without a notification */
#define FP_QUIET_MS 2         /* a hold not reached yet (requests in flight) is looked at again */
#define FP_BEHIND_MS 20       /* a hold from an epoch this instance has not applied yet */
#define FP_MIN_MARGIN_MS 2000 /* a hold undecided this long past its deadline is aborted */

/* Begins a hold unless one of the vcluster is holding; returns the new id. */
static const char SQL_BEGIN[] =
    "WITH h AS (INSERT INTO planned_holds AS p (vcluster, hold_id, from_cluster, to_cluster, "
    "from_epoch, coordinator, coordinator_token, state, deadline, reason, updated_at) VALUES ($1, "
    "nextval('planned_hold_ids'), $2, $3, $4::bigint, $5, $6, 'holding', clock_timestamp() + "
    "$7::bigint * interval '1 millisecond', '', now()) ON CONFLICT (vcluster) DO UPDATE SET "
    "hold_id = EXCLUDED.hold_id, from_cluster = EXCLUDED.from_cluster, to_cluster = "
    "EXCLUDED.to_cluster, from_epoch = EXCLUDED.from_epoch, coordinator = EXCLUDED.coordinator, "
    "coordinator_token = EXCLUDED.coordinator_token, state = 'holding', deadline = "
    "EXCLUDED.deadline, acks_closed_at = NULL, reason = '', updated_at = now() WHERE p.state <> "
    "'holding' RETURNING hold_id) SELECT hold_id, pg_notify('" FP_CHANNEL "', $1) FROM h";

static const char SQL_HOLDER[] =
    "SELECT coordinator, from_cluster, to_cluster FROM planned_holds WHERE vcluster = $1";

static const char SQL_HOLDS[] =
    "SELECT vcluster, hold_id, state, from_cluster, to_cluster, from_epoch, coordinator, "
    "coordinator_token, (extract(epoch FROM clock_timestamp() - deadline) * 1000)::bigint "
    "FROM planned_holds";

/* An ack counts only while the hold is holding. */
static const char SQL_ACK[] =
    "WITH a AS (INSERT INTO planned_acks (vcluster, hold_id, instance, acked_at, held, "
    "held_bytes) SELECT $1, $2::bigint, $3, clock_timestamp(), $4::bigint, $5::bigint WHERE "
    "EXISTS (SELECT 1 FROM planned_holds WHERE vcluster = $1 AND hold_id = $2::bigint AND state "
    "= 'holding') ON CONFLICT DO NOTHING RETURNING 1) SELECT pg_notify('" FP_ACK_CHANNEL
    "', $1) FROM a";

/* Closes the acks now and names the live instances without one (empty: none); no row when the
 * hold is no longer holding. */
static const char SQL_CLOSE_ACKS[] =
    "UPDATE planned_holds p SET acks_closed_at = clock_timestamp() WHERE vcluster = $1 AND "
    "hold_id = $2::bigint AND state = 'holding' RETURNING COALESCE((SELECT string_agg(i.name, "
    "', ' ORDER BY i.name) FROM kg_instances i WHERE i.lease_until > now() AND NOT EXISTS "
    "(SELECT 1 FROM planned_acks a WHERE a.vcluster = $1 AND a.hold_id = $2::bigint AND "
    "a.instance = i.name)), '')";

static const char SQL_ABORT[] =
    "WITH u AS (UPDATE planned_holds SET state = 'aborted', reason = $3, updated_at = now() "
    "WHERE vcluster = $1 AND hold_id = $2::bigint AND state = 'holding' RETURNING 1) SELECT "
    "pg_notify('" FP_CHANNEL "', $1) FROM u";

static const char SQL_STATE[] =
    "SELECT state, reason FROM planned_holds WHERE vcluster = $1 AND hold_id = $2::bigint";

static const char SQL_RELEASED[] =
    "WITH u AS (INSERT INTO planned_acks AS a (vcluster, hold_id, instance, acked_at, held, "
    "held_bytes, released_to) VALUES ($1, $2::bigint, $3, clock_timestamp(), $4::bigint, "
    "$5::bigint, $6) ON CONFLICT (vcluster, hold_id, instance) DO UPDATE SET held = "
    "EXCLUDED.held, held_bytes = EXCLUDED.held_bytes, released_to = EXCLUDED.released_to "
    "RETURNING 1) SELECT pg_notify('" FP_ACK_CHANNEL "', $1) FROM u";

static const char SQL_REPORTS[] =
    "SELECT instance, held, held_bytes, COALESCE(released_to, ''), (SELECT count(*) FROM "
    "planned_acks b WHERE b.vcluster = $1 AND b.hold_id = $2::bigint AND b.released_to IS NULL) "
    "FROM planned_acks a WHERE vcluster = $1 AND hold_id = $2::bigint ORDER BY instance";

/* What this instance does for a vcluster's hold. */
enum {
    LOCAL_NONE = 0,
    LOCAL_HOLDING, /* holding for another instance's hold, not acknowledged yet */
    LOCAL_ACKED,   /* holding and acknowledged: follows the row's decision */
    LOCAL_COORD,   /* this instance coordinates it (the admin thread) */
    LOCAL_DONE,    /* over, or not for this instance */
};

typedef struct local_hold {
    char vcluster[KG_NAME_MAX];
    int64_t id;
    int phase;
    int from, to;
    uint64_t from_epoch;
} local_hold;

struct kg_fleet_planned {
    kg_gateway *gw;
    char *conninfo;
    char token[40]; /* this process: a restarted coordinator is a participant of its old hold */
    int margin_ms;

    pthread_t thread;
    int started;
    int wake_fd;
    atomic_int stopping;
    PGconn *conn; /* the thread's */
    int logged_error;

    pthread_mutex_t lock; /* the local holds */
    local_hold holds[FP_MAX_HOLDS];
    int n_holds;
};

struct kg_fleet_hold {
    kg_fleet_planned *fp;
    PGconn *conn; /* its own: holds of several vclusters at once do not wait for each other */
    kg_vcluster *vc;
    char vcluster[KG_NAME_MAX];
    char id_text[24];
    int64_t id;
};

/* ---------------------------------------------------------------- local holds */

/* The entry of VCLUSTER (created; NULL when the table is full). Under fp->lock. */
static local_hold *local_of(kg_fleet_planned *fp, const char *vcluster)
{
    for (int i = 0; i < fp->n_holds; i++)
        if (strcmp(fp->holds[i].vcluster, vcluster) == 0) return &fp->holds[i];
    if (fp->n_holds == FP_MAX_HOLDS) return NULL;
    local_hold *h = &fp->holds[fp->n_holds++];
    memset(h, 0, sizeof(*h));
    snprintf(h->vcluster, sizeof(h->vcluster), "%s", vcluster);
    return h;
}

static void local_set(kg_fleet_planned *fp, const char *vcluster, int64_t id, int phase)
{
    pthread_mutex_lock(&fp->lock);
    local_hold *h = local_of(fp, vcluster);
    if (h) {
        h->id = id;
        h->phase = phase;
    }
    pthread_mutex_unlock(&fp->lock);
}

/* ---------------------------------------------------------------- the coordinator */

static int hold_connect(kg_fleet_hold *h, uint64_t deadline_us, char *err, size_t len)
{
    if (h->conn) return 0;
    h->conn = kg_pq_connect(h->fp->conninfo, deadline_us, err, len);
    if (!h->conn) return -1;
    PGresult *r = kg_pq_run(&h->conn, "LISTEN " FP_ACK_CHANNEL, 0, NULL, deadline_us, err, len);
    if (!r) return -1;
    PQclear(r);
    return 0;
}

static void hold_free(kg_fleet_hold *h)
{
    if (h->conn) PQfinish(h->conn);
    free(h);
}

/* SQL on the hold's connection, connecting when needed (again after it broke). */
static PGresult *hold_run(kg_fleet_hold *h, const char *sql, int n, const char *const *params,
                          uint64_t deadline_us, char *err, size_t len)
{
    if (hold_connect(h, deadline_us, err, len) < 0) return NULL;
    return kg_pq_run(&h->conn, sql, n, params, deadline_us, err, len);
}

int kg_fleet_hold_begin(kg_fleet_planned *fp, kg_vcluster *vc, int from, int to,
                        uint64_t from_epoch, uint64_t hold_max_ms, const char *actor,
                        kg_fleet_hold **hold, json_t **result)
{
    if (!fp) {
        *result = json_pack("{s:s, s:s}", "error",
                            "the fleet's planned switch thread did not start (see the log)",
                            "vcluster", vc->cfg->name);
        return 503;
    }
    kg_gateway *gw = fp->gw;
    char epoch[24], max[24], err[512];
    snprintf(epoch, sizeof(epoch), "%" PRIu64, from_epoch);
    snprintf(max, sizeof(max), "%" PRIu64, hold_max_ms);
    const char *params[7] = {vc->cfg->name,
                             gw->clusters[from].cfg->name,
                             gw->clusters[to].cfg->name,
                             epoch,
                             gw->cfg->instance_name,
                             fp->token,
                             max};
    kg_fleet_hold *h = calloc(1, sizeof(*h));
    if (!h) {
        *result = json_pack("{s:s}", "error", "out of memory");
        return 503;
    }
    h->fp = fp;
    uint64_t deadline = kg_now_us() + 3000000u;
    PGresult *r = hold_run(h, SQL_BEGIN, 7, params, deadline, err, sizeof(err));
    if (r && PQntuples(r) == 0) { /* another hold is holding: whose */
        PQclear(r);
        r = hold_run(h, SQL_HOLDER, 1, params, deadline, err, sizeof(err));
        if (r) {
            char why[512];
            snprintf(why, sizeof(why),
                     "another switch is in progress: planned switch of '%s' from %s to %s "
                     "(coordinated by instance %s)",
                     vc->cfg->name, PQntuples(r) ? PQgetvalue(r, 0, 1) : "?",
                     PQntuples(r) ? PQgetvalue(r, 0, 2) : "?",
                     PQntuples(r) ? PQgetvalue(r, 0, 0) : "?");
            PQclear(r);
            hold_free(h);
            *result = json_pack("{s:s, s:s}", "error", why, "vcluster", vc->cfg->name);
            return 409;
        }
    }
    if (r) {
        h->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    if (!r) {
        hold_free(h);
        char why[640];
        snprintf(why, sizeof(why), "cannot write the hold in the state store: %s", err);
        *result = json_pack("{s:s, s:s}", "error", why, "vcluster", vc->cfg->name);
        return 503;
    }
    h->vc = vc;
    snprintf(h->vcluster, sizeof(h->vcluster), "%s", vc->cfg->name);
    snprintf(h->id_text, sizeof(h->id_text), "%" PRId64, h->id);
    pthread_mutex_lock(&fp->lock);
    local_hold *l = local_of(fp, h->vcluster);
    if (l)
        *l = (local_hold){
            .id = h->id, .phase = LOCAL_COORD, .from = from, .to = to, .from_epoch = from_epoch};
    if (l) snprintf(l->vcluster, sizeof(l->vcluster), "%s", h->vcluster);
    pthread_mutex_unlock(&fp->lock);
    kg_info("vcluster %s: planned switch %s -> %s by %s: hold %" PRId64
            " written, every live instance holds",
            h->vcluster, gw->clusters[from].cfg->name, gw->clusters[to].cfg->name,
            actor ? actor : "unknown", h->id);
    *hold = h;
    return 0;
}

int64_t kg_fleet_hold_id(const kg_fleet_hold *h)
{
    return h ? h->id : 0;
}

/* Writes an ack of hold ID_TEXT of VCLUSTER for this instance on *CONN. */
static int write_ack(kg_fleet_planned *fp, PGconn **conn, const char *vcluster, const char *id_text,
                     uint64_t held, uint64_t held_bytes, uint64_t deadline, char *err, size_t len)
{
    char n[24], b[24];
    snprintf(n, sizeof(n), "%" PRIu64, held);
    snprintf(b, sizeof(b), "%" PRIu64, held_bytes);
    const char *params[5] = {vcluster, id_text, fp->gw->cfg->instance_name, n, b};
    PGresult *r = kg_pq_run(conn, SQL_ACK, 5, params, deadline, err, len);
    if (!r) return -1;
    PQclear(r);
    return 0;
}

int kg_fleet_hold_acks(kg_fleet_hold *h, uint64_t held, uint64_t held_bytes, uint64_t deadline_us,
                       char *why, size_t len)
{
    kg_fleet_planned *fp = h->fp;
    char err[512] = "", missing[512] = "";
    const char *params[2] = {h->vcluster, h->id_text};
    int rc = -1;
    if (hold_connect(h, deadline_us, err, sizeof(err)) == 0 &&
        write_ack(fp, &h->conn, h->vcluster, h->id_text, held, held_bytes, deadline_us, err,
                  sizeof(err)) == 0) {
        for (;;) {
            if (kg_pq_drain_notifies(h->conn) < 0) break;
            PGresult *r =
                kg_pq_run(&h->conn, SQL_CLOSE_ACKS, 2, params, deadline_us, err, sizeof(err));
            if (!r) break;
            if (PQntuples(r) == 0) { /* decided meanwhile: by an instance that gave up */
                snprintf(err, sizeof(err), "the hold is no longer holding (an instance gave up)");
                PQclear(r);
                break;
            }
            snprintf(missing, sizeof(missing), "%s", PQgetvalue(r, 0, 0));
            PQclear(r);
            if (!missing[0]) {
                rc = 0;
                break;
            }
            if (kg_now_us() >= deadline_us) break;
            uint64_t until = kg_now_us() + 50000u; /* the notification, else a look again */
            if (h->conn &&
                kg_pq_wait_fd(PQsocket(h->conn), 0, until < deadline_us ? until : deadline_us) < 0)
                break;
        }
    }
    if (rc == 0) return 0;
    if (missing[0])
        snprintf(why, len,
                 "instance(s) %s did not acknowledge the hold within the hold bound (an instance "
                 "acknowledges once it holds and nothing of the vcluster is in flight to the old "
                 "side)",
                 missing);
    else
        snprintf(why, len, "acknowledging the hold: %s", err[0] ? err : "no answer");
    return -1;
}

int kg_fleet_hold_abort(kg_fleet_hold *h, const char *why)
{
    kg_fleet_planned *fp = h->fp;
    const char *params[3] = {h->vcluster, h->id_text, why};
    char err[512];
    int decided = -1;
    /* The row decides: a few tries, the database may be briefly away. */
    for (int attempt = 0; attempt < 3 && decided < 0; attempt++) {
        uint64_t deadline = kg_now_us() + 2000000u;
        PGresult *r = hold_run(h, SQL_ABORT, 3, params, deadline, err, sizeof(err));
        if (r) {
            PQclear(r);
            r = kg_pq_run(&h->conn, SQL_STATE, 2, params, deadline, err, sizeof(err));
        }
        /* Another hold replaced it: it was over, and not by this switch, which did not
         * commit (else this would not be an abort). */
        if (r && PQntuples(r) == 0) decided = 0;
        if (r && PQntuples(r) == 1)
            decided = strcmp(PQgetvalue(r, 0, 0), "switched") == 0  ? 1
                      : strcmp(PQgetvalue(r, 0, 0), "aborted") == 0 ? 0
                                                                    : -1;
        PQclear(r);
    }
    if (decided < 0) {
        kg_error("vcluster %s: planned switch hold %s: the decision cannot be read (%s); this "
                 "instance keeps holding until it can",
                 h->vcluster, h->id_text, err);
        /* The planned thread follows the row from now on and lifts the hold then. */
        pthread_mutex_lock(&fp->lock);
        local_hold *l = local_of(fp, h->vcluster);
        if (l) l->phase = LOCAL_ACKED;
        pthread_mutex_unlock(&fp->lock);
        hold_free(h);
    }
    return decided;
}

json_t *kg_fleet_hold_end(kg_fleet_hold *h, const char *went_to, uint64_t held, uint64_t held_bytes,
                          int wait_ms)
{
    kg_fleet_planned *fp = h->fp;
    local_set(fp, h->vcluster, h->id, LOCAL_DONE);
    char n[24], b[24], err[512];
    snprintf(n, sizeof(n), "%" PRIu64, held);
    snprintf(b, sizeof(b), "%" PRIu64, held_bytes);
    const char *params[6] = {h->vcluster, h->id_text, fp->gw->cfg->instance_name, n, b, went_to};
    json_t *out = json_object();
    uint64_t deadline = kg_now_us() + (uint64_t)wait_ms * 1000u + 1000000u;
    PGresult *r = hold_run(h, SQL_RELEASED, 6, params, deadline, err, sizeof(err));
    PQclear(r);
    /* The other instances report theirs as they lift their holds. */
    while (r) {
        if (kg_pq_drain_notifies(h->conn) < 0) break;
        r = kg_pq_run(&h->conn, SQL_REPORTS, 2, params, deadline, err, sizeof(err));
        if (!r) break;
        json_object_clear(out);
        for (int i = 0; i < PQntuples(r); i++)
            json_object_set_new(
                out, PQgetvalue(r, i, 0),
                json_pack("{s:I, s:I, s:s?}", "held",
                          (json_int_t)strtoll(PQgetvalue(r, i, 1), NULL, 10), "held_bytes",
                          (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10), "released_to",
                          *PQgetvalue(r, i, 3) ? PQgetvalue(r, i, 3) : NULL));
        int pending = PQntuples(r) > 0 && strcmp(PQgetvalue(r, 0, 4), "0") != 0;
        PQclear(r);
        uint64_t until = kg_now_us() + 50000u, end = deadline - 1000000u;
        if (!pending || kg_now_us() >= end || !h->conn ||
            kg_pq_wait_fd(PQsocket(h->conn), 0, until < end ? until : end) < 0)
            break;
    }
    hold_free(h);
    return out;
}

/* ---------------------------------------------------------------- every instance */

static void thread_error(kg_fleet_planned *fp, const char *what, const char *err)
{
    if (!fp->logged_error) kg_warn("fleet: planned switch: %s: %s", what, err);
    fp->logged_error = 1;
}

/* One row as this instance reads it. */
typedef struct hold_row {
    const char *vcluster, *state, *from, *to, *coordinator, *token;
    char id_text[24];
    int64_t id;
    uint64_t from_epoch;
    int64_t past_deadline_ms;
} hold_row;

/* Marks a hold nobody decided aborted (only while still 'holding'). */
static void give_up(kg_fleet_planned *fp, const hold_row *row)
{
    char why[KG_NAME_MAX * 2 + 160], err[512];
    snprintf(why, sizeof(why),
             "no decision %lld ms after the hold's deadline (coordinator %s gone?): instance "
             "%s aborted it",
             (long long)row->past_deadline_ms, row->coordinator, fp->gw->cfg->instance_name);
    const char *params[3] = {row->vcluster, row->id_text, why};
    PGresult *r =
        kg_pq_run(&fp->conn, SQL_ABORT, 3, params, kg_now_us() + 2000000u, err, sizeof(err));
    if (!r) {
        thread_error(fp, "aborting an undecided hold", err);
        return;
    }
    if (PQntuples(r) == 1)
        kg_warn("vcluster %s: planned switch hold %s: %s", row->vcluster, row->id_text, why);
    PQclear(r);
}

/* Ends this instance's hold of VC as the row decided; 0 done, 1 try again shortly (the new
 * route cannot be applied yet). */
static int follow(kg_fleet_planned *fp, kg_vcluster *vc, local_hold *l, int switched)
{
    kg_gateway *gw = fp->gw;
    if (switched) {
        /* The new route first: the held requests must find it when they go on. */
        int rc = kg_gateway_apply_route(gw, vc, l->to, l->from_epoch + 1);
        if (rc == KG_ROUTE_BUSY) return 1;
    }
    uint64_t held = 0, bytes = 0;
    kg_planned_fleet_end(vc->planned, switched, &held, &bytes);
    l->phase = LOCAL_DONE;
    kg_info("vcluster %s: planned switch hold %" PRId64 " ended (%s): %" PRIu64
            " held Produce request(s) go to the %s side",
            vc->cfg->name, l->id, switched ? "switched" : "aborted", held,
            switched ? "new" : "old");
    char id[24], n[24], b[24], err[512];
    snprintf(id, sizeof(id), "%" PRId64, l->id);
    snprintf(n, sizeof(n), "%" PRIu64, held);
    snprintf(b, sizeof(b), "%" PRIu64, bytes);
    const char *params[6] = {
        vc->cfg->name, id, gw->cfg->instance_name, n, b, switched ? "new side" : "old side"};
    PGresult *r =
        kg_pq_run(&fp->conn, SQL_RELEASED, 6, params, kg_now_us() + 2000000u, err, sizeof(err));
    if (!r) thread_error(fp, "reporting a hold's end", err);
    PQclear(r);
    return 0;
}

/* Starts holding for ROW when this instance routes VC on the hold's starting epoch. 0 holding
 * (or not for this instance), else in how many ms to try again. */
static int join(kg_fleet_planned *fp, kg_vcluster *vc, local_hold *l, const hold_row *row)
{
    kg_gateway *gw = fp->gw;
    uint64_t word = atomic_load(&vc->route);
    int from = kg_gateway_cluster_index(gw, row->from), to = kg_gateway_cluster_index(gw, row->to);
    /* Behind: the fleet thread applies the newer epoch on its notification (or renewal). */
    if (KG_ROUTE_EPOCH(word) < row->from_epoch) return FP_BEHIND_MS;
    l->id = row->id;
    l->from = from;
    l->to = to;
    l->from_epoch = row->from_epoch;
    if (from < 0 || to < 0 || KG_ROUTE_EPOCH(word) != row->from_epoch ||
        KG_ROUTE_ACTIVE(word) != from) {
        kg_warn("vcluster %s: planned switch hold %s (%s -> %s at epoch %" PRIu64
                ") does not match this instance's route (epoch %" PRIu64 "): not holding; the "
                "coordinator aborts it",
                vc->cfg->name, row->id_text, row->from, row->to, row->from_epoch,
                (uint64_t)KG_ROUTE_EPOCH(word));
        l->phase = LOCAL_DONE;
        return 0;
    }
    if (kg_planned_fleet_hold(vc->planned, gw, vc, from, to, row->from_epoch, row->coordinator) <
        0) {
        l->id = 0; /* a switch of VC in progress here: it ends soon */
        return FP_QUIET_MS;
    }
    l->phase = LOCAL_HOLDING;
    kg_info("vcluster %s: holding Produce requests for planned switch hold %s (%s -> %s, "
            "coordinated by instance %s)",
            vc->cfg->name, row->id_text, row->from, row->to, row->coordinator);
    return 0;
}

/* What this instance does about one row; returns how soon to look again (ms). */
static int handle_row(kg_fleet_planned *fp, const hold_row *row)
{
    kg_vcluster *vc = kg_gateway_vcluster(fp->gw, row->vcluster);
    if (!vc || !vc->planned) return FP_IDLE_MS;
    int holding = strcmp(row->state, "holding") == 0;
    int again = FP_IDLE_MS;
    if (holding && row->past_deadline_ms > fp->margin_ms) {
        give_up(fp, row);
        return 0;
    }
    if (holding && row->past_deadline_ms < 0) {
        int64_t left = -row->past_deadline_ms + fp->margin_ms + 1;
        if (left < again) again = (int)left;
    } else if (holding) {
        again = (int)(fp->margin_ms - row->past_deadline_ms + 1);
    }
    pthread_mutex_lock(&fp->lock);
    local_hold *l = local_of(fp, row->vcluster);
    if (!l) {
        pthread_mutex_unlock(&fp->lock);
        return again;
    }
    int mine = strcmp(row->token, fp->token) == 0;
    int rc = 0;
    if ((l->phase == LOCAL_HOLDING || l->phase == LOCAL_ACKED) && l->id != row->id) {
        /* A newer hold replaced the one this instance holds for: that one was decided; it
         * switched when the newer one starts from a later epoch. */
        rc = follow(fp, vc, l, row->from_epoch > l->from_epoch);
    } else if (l->id != row->id) {
        if (holding && !mine)
            rc = join(fp, vc, l, row);
        else
            *l = (local_hold){.id = row->id, .phase = LOCAL_DONE};
        if (!holding || mine) snprintf(l->vcluster, sizeof(l->vcluster), "%s", row->vcluster);
    } else if (!holding && (l->phase == LOCAL_HOLDING || l->phase == LOCAL_ACKED)) {
        rc = follow(fp, vc, l, strcmp(row->state, "switched") == 0);
    }
    if (rc == 0 && l->id == row->id && l->phase == LOCAL_HOLDING && holding) {
        if (kg_planned_inflight(vc->planned) > 0) {
            rc = FP_QUIET_MS;
        } else {
            char err[512];
            uint64_t held = 0, bytes = 0;
            /* Counts so far; the final ones come with the end. */
            kg_planned_held(vc->planned, &held, &bytes);
            if (write_ack(fp, &fp->conn, row->vcluster, row->id_text, held, bytes,
                          kg_now_us() + 2000000u, err, sizeof(err)) < 0)
                thread_error(fp, "acknowledging a hold", err);
            else
                l->phase = LOCAL_ACKED;
        }
    }
    pthread_mutex_unlock(&fp->lock);
    return rc && rc < again ? rc : again;
}

/* Reads every hold row and acts on each; returns how soon to look again (ms). */
static int planned_round(kg_fleet_planned *fp)
{
    char err[512];
    PGresult *r =
        kg_pq_run(&fp->conn, SQL_HOLDS, 0, NULL, kg_now_us() + 2000000u, err, sizeof(err));
    if (!r) {
        thread_error(fp, "reading the holds", err);
        return FP_IDLE_MS;
    }
    fp->logged_error = 0;
    int again = FP_IDLE_MS;
    for (int i = 0; i < PQntuples(r); i++) {
        hold_row row = {.vcluster = PQgetvalue(r, i, 0),
                        .state = PQgetvalue(r, i, 2),
                        .from = PQgetvalue(r, i, 3),
                        .to = PQgetvalue(r, i, 4),
                        .coordinator = PQgetvalue(r, i, 6),
                        .token = PQgetvalue(r, i, 7),
                        .id = strtoll(PQgetvalue(r, i, 1), NULL, 10),
                        .from_epoch = strtoull(PQgetvalue(r, i, 5), NULL, 10),
                        .past_deadline_ms = strtoll(PQgetvalue(r, i, 8), NULL, 10)};
        snprintf(row.id_text, sizeof(row.id_text), "%s", PQgetvalue(r, i, 1));
        int a = handle_row(fp, &row);
        if (a < again) again = a;
        if (!fp->conn) break;
    }
    PQclear(r);
    return again;
}

static int thread_connect(kg_fleet_planned *fp)
{
    char err[512];
    uint64_t deadline = kg_now_us() + 3000000u;
    fp->conn = kg_pq_connect(fp->conninfo, deadline, err, sizeof(err));
    PGresult *r =
        fp->conn ? kg_pq_run(&fp->conn, "LISTEN " FP_CHANNEL, 0, NULL, deadline, err, sizeof(err))
                 : NULL;
    PQclear(r);
    /* A switch's notification: the hold's decision came with it. */
    if (r) r = kg_pq_run(&fp->conn, "LISTEN kgate_switch", 0, NULL, deadline, err, sizeof(err));
    if (!r) {
        thread_error(fp, "connecting to the state store", err);
        if (fp->conn) PQfinish(fp->conn);
        fp->conn = NULL;
        return -1;
    }
    PQclear(r);
    return 0;
}

/* Waits MS, for a notification or the stop. */
static void thread_wait(kg_fleet_planned *fp, int ms)
{
    if (ms <= 0) return;
    struct pollfd p[2] = {{.fd = fp->wake_fd, .events = POLLIN},
                          {.fd = fp->conn ? PQsocket(fp->conn) : -1, .events = POLLIN}};
    if (poll(p, 2, ms) <= 0) return;
    if (p[0].revents) {
        uint64_t v;
        if (read(fp->wake_fd, &v, sizeof(v)) < 0) { /* it only wakes us */
        }
    }
    if (fp->conn && p[1].revents && kg_pq_drain_notifies(fp->conn) < 0) {
        thread_error(fp, "listening", "the connection to the state store broke");
        PQfinish(fp->conn);
        fp->conn = NULL;
    }
}

static void *planned_main(void *arg)
{
    kg_fleet_planned *fp = arg;
    while (!atomic_load(&fp->stopping)) {
        if (!fp->conn && thread_connect(fp) < 0) {
            thread_wait(fp, 500);
            continue;
        }
        int again = planned_round(fp);
        /* A notification that came in with the answer is buffered already. */
        if (fp->conn && kg_pq_drain_notifies(fp->conn) > 0) continue;
        thread_wait(fp, again);
    }
    return NULL;
}

kg_fleet_planned *kg_fleet_planned_start(kg_gateway *gw, const char *conninfo)
{
    kg_fleet_planned *fp = calloc(1, sizeof(*fp));
    if (!fp) return NULL;
    fp->gw = gw;
    fp->conninfo = strdup(conninfo);
    fp->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    fp->margin_ms = gw->cfg->lease_ms > FP_MIN_MARGIN_MS ? gw->cfg->lease_ms : FP_MIN_MARGIN_MS;
    snprintf(fp->token, sizeof(fp->token), "%d-%" PRIu64, (int)getpid(), kg_now_us());
    pthread_mutex_init(&fp->lock, NULL);
    if (!fp->conninfo || fp->wake_fd < 0 ||
        pthread_create(&fp->thread, NULL, planned_main, fp) != 0) {
        kg_fleet_planned_stop(fp);
        return NULL;
    }
    fp->started = 1;
    return fp;
}

void kg_fleet_planned_stop(kg_fleet_planned *fp)
{
    if (!fp) return;
    atomic_store(&fp->stopping, 1);
    uint64_t one = 1;
    if (fp->wake_fd >= 0 && write(fp->wake_fd, &one, sizeof(one)) < 0) { /* wakes at its wait */
    }
    if (fp->started) pthread_join(fp->thread, NULL);
    if (fp->conn) PQfinish(fp->conn);
    if (fp->wake_fd >= 0) close(fp->wake_fd);
    pthread_mutex_destroy(&fp->lock);
    if (fp->conninfo) explicit_bzero(fp->conninfo, strlen(fp->conninfo));
    free(fp->conninfo);
    free(fp);
}
