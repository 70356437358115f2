/* kg_admin_drills — the admin API routes of drill results (docs/drills.md, docs/api.md):
 *   POST /v1/drills        a finished drill's result: 201 {"id", "sha256"} | 400 | 409
 *   GET  /v1/drills        {"drills": [summary...]}
 *   GET  /v1/drills/{id}   the result; ?format=md the Markdown report
 * `kgate drill run` measures from the clients' side, then records its result here: the result
 * is kept in the state store and an audit entry carries its summary and its SHA-256, so the
 * report an auditor is shown can be checked against the tamper-evident chain. */
#include "admin/kg_admin_drills.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drill/kg_drill.h"
#include "state/kg_store.h"

#define DOC_KIND "drill"
#define MAX_ID_LEN 64

static int valid_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MAX_ID_LEN) return 0;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *s))
            return 0;
    return 1;
}

static const char *check_result(const json_t *r)
{
    const char *outcome = json_string_value(json_object_get(r, "outcome"));
    if (!valid_id(json_string_value(json_object_get(r, "run"))))
        return "field \"run\" must be the drill's run id ([A-Za-z0-9._-], 1 to 64)";
    if (!json_is_string(json_object_get(r, "name"))) return "field \"name\" must be a text";
    if (!outcome || (strcmp(outcome, "passed") != 0 && strcmp(outcome, "failed") != 0))
        return "field \"outcome\" must be \"passed\" or \"failed\"";
    if (!json_is_string(json_object_get(json_object_get(r, "configuration"), "vcluster")))
        return "field \"configuration.vcluster\" must be a text";
    if (!json_is_array(json_object_get(r, "steps")) ||
        !json_is_array(json_object_get(r, "clients")) ||
        !json_is_object(json_object_get(r, "data")))
        return "fields \"steps\", \"clients\" (lists) and \"data\" (object) are required";
    return NULL;
}

/* The SHA-256 of the canonical JSON (sorted keys, compact) as hex; "" on failure. */
static void digest(const json_t *doc, char hex[65])
{
    hex[0] = '\0';
    char *text = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT);
    unsigned char md[32];
    unsigned int n = 0;
    if (text && EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL) == 1 && n == 32)
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
    free(text);
}

static json_t *summary(const json_t *doc)
{
    const json_t *data = json_object_get(doc, "data");
    json_t *s =
        json_pack("{s:O, s:O, s:O, s:O, s:O}", "id", json_object_get(doc, "run"), "name",
                  json_object_get(doc, "name"), "outcome", json_object_get(doc, "outcome"),
                  "vcluster", json_object_get(json_object_get(doc, "configuration"), "vcluster"),
                  "recorded_at", json_object_get(doc, "recorded_at"));
    json_object_set(s, "lost", json_object_get(data, "lost"));
    json_object_set(s, "duplicates", json_object_get(data, "duplicates"));
    return s;
}

static int handle_record(void *ctx, kg_admin_request *req)
{
    kg_store *store = ctx;
    const char *why =
        json_is_object(req->body) ? check_result(req->body) : "the body must be a drill result";
    if (why) return kg_admin_error(req, 400, "%s", why);
    const char *id = json_string_value(json_object_get(req->body, "run"));
    int found = 0;
    json_t *old = kg_store_get_doc(store, DOC_KIND, id, &found);
    json_decref(old);
    if (found) return kg_admin_error(req, 409, "drill \"%s\" is already recorded", id);
    json_t *doc = json_deep_copy(req->body);
    char when[32], hex[65];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    json_object_set_new(doc, "recorded_at", json_string(when));
    json_object_set_new(doc, "recorded_by", json_string(req->actor));
    digest(doc, hex);
    json_t *details = summary(doc);
    json_object_set_new(details, "sha256", json_string(hex));
    json_object_set_new(details, "actor", json_string(req->actor));
    int rc = kg_store_put_doc(store, DOC_KIND, id, doc);
    if (rc == 0) rc = kg_store_audit_append(store, "drill.recorded", details);
    json_decref(details);
    json_decref(doc);
    if (rc != 0) return kg_admin_error(req, 500, "cannot record the drill in the state store");
    return kg_admin_reply(req, 201, json_pack("{s:s, s:s}", "id", id, "sha256", hex));
}

static int handle_list(void *ctx, kg_admin_request *req)
{
    json_t *docs = kg_store_list_docs(ctx, DOC_KIND);
    if (!docs) return kg_admin_error(req, 500, "cannot read drills from the state store");
    json_t *list = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) json_array_append_new(list, summary(d));
    json_decref(docs);
    return kg_admin_reply(req, 200, json_pack("{s:o}", "drills", list));
}

static int handle_get(void *ctx, kg_admin_request *req)
{
    const char *format = kg_admin_query(req, "format");
    if (format && strcmp(format, "json") != 0 && strcmp(format, "md") != 0)
        return kg_admin_error(req, 400, "query \"format\" must be json or md");
    json_t *doc = kg_store_get_doc(ctx, DOC_KIND, req->params[0], NULL);
    if (!doc) return kg_admin_error(req, 404, "no drill \"%s\"", req->params[0]);
    if (!format || strcmp(format, "json") == 0) return kg_admin_reply(req, 200, doc);
    char *md = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&md, &len);
    if (f) {
        kg_drill_print_md(f, doc);
        fclose(f);
    }
    json_decref(doc);
    return kg_admin_reply_markdown(req, md);
}

static const kg_admin_route drill_routes[KG_ADMIN_DRILLS_N_ROUTES] = {
    {"POST", "/v1/drills", handle_record, NULL, KG_ADMIN_JSON_BODY, KG_ROLE_OPERATOR},
    {"GET", "/v1/drills", handle_list, NULL, 0, KG_ROLE_VIEWER},
    {"GET", "/v1/drills/{}", handle_get, NULL, 0, KG_ROLE_VIEWER},
};

int kg_admin_drills_routes(kg_store *store, kg_admin_route out[KG_ADMIN_DRILLS_N_ROUTES])
{
    return kg_admin_bind_routes(out, drill_routes, KG_ADMIN_DRILLS_N_ROUTES, store);
}
