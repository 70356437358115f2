/* The authorize stage (kg_authz): Produce names found as the body streams in any split, denied
 * topics renamed in place and named again in the answer with TOPIC_AUTHORIZATION_FAILED,
 * Metadata filtered as a broker does, and the answers kgate gives for denied group,
 * transaction and cluster requests, decoded with the generated codecs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_msgs.h"
#include "kt.h"
#include "security/kg_authz.h"

static kg_acl_binding mk(const char *perm, const char *principal, const char *type,
                         const char *pattern, const char *name, const char *op)
{
    kg_acl_binding b;
    memset(&b, 0, sizeof(b));
    snprintf(b.principal, sizeof(b.principal), "%s", principal);
    snprintf(b.host, sizeof(b.host), "*");
    snprintf(b.name, sizeof(b.name), "%s", name);
    b.permission = (kg_acl_permission)kg_acl_parse_permission(perm);
    b.resource = (kg_acl_resource)kg_acl_parse_resource(type);
    b.pattern = (kg_acl_pattern)kg_acl_parse_pattern(pattern);
    b.op = (kg_acl_op)kg_acl_parse_op(op);
    char err[256];
    if (kg_acl_binding_check(&b, err, sizeof(err)) < 0) abort();
    return b;
}

/* alice may Write and Describe topics "good*", but not "good-secret"; may Read group "g". */
static kg_acl_set *alice_acls(void)
{
    kg_acl_binding b[] = {
        mk("allow", "User:alice", "topic", "prefixed", "good", "Write"),
        mk("allow", "User:alice", "topic", "prefixed", "good", "Describe"),
        mk("deny", "User:alice", "topic", "literal", "good-secret", "Write"),
        mk("allow", "User:alice", "group", "literal", "g", "Read"),
    };
    return kg_acl_set_new(b, (int)(sizeof(b) / sizeof(b[0])));
}

static const uint8_t records[] = "not really a record batch, but bytes to skip";

/* A Produce request body at VERSION with TOPICS, two partitions each. */
static kp_writer produce_body(int16_t version, const char *const *topics, int n)
{
    kp_produce_request m;
    kp_produce_request_init(&m);
    m.transactional_id = kp_str_c(version >= 3 ? "txn-1" : NULL);
    m.acks = -1;
    m.timeout_ms = 1000;
    kp_produce_request_topic_produce_data t[8];
    kp_produce_request_partition_produce_data parts[2];
    memset(t, 0, sizeof(t));
    memset(parts, 0, sizeof(parts));
    for (int j = 0; j < 2; j++) {
        parts[j].index = j;
        parts[j].records = (kp_bytes){records, (int32_t)sizeof(records)};
    }
    for (int i = 0; i < n; i++) {
        t[i].name = kp_str_c(topics[i]);
        t[i].partition_data.count = 2;
        t[i].partition_data.items = parts;
    }
    m.topic_data.count = n;
    m.topic_data.items = t;
    kp_writer w;
    kp_writer_init(&w, 256);
    kp_produce_request_encode(&w, version, &m);
    return w;
}

/* Walks BODY as if it arrived CHUNK bytes at a time; the names it reports go to NAMES. */
static int walk(int16_t version, uint8_t *body, size_t len, size_t chunk, char names[][32],
                int *n_names)
{
    kg_authz_produce_walk w;
    kg_authz_produce_walk_init(&w, version);
    size_t pos = 0, here = chunk < len ? chunk : len;
    *n_names = 0;
    for (int guard = 0; guard < 100000; guard++) {
        size_t n = 0, off = 0;
        int32_t name_len = 0;
        int rc = kg_authz_produce_walk_step(&w, body + pos, here - pos, &n, &off, &name_len);
        if (rc == KG_WALK_BAD) return -1;
        if (rc == KG_WALK_DONE) return pos == len ? 0 : -1;
        if (rc == KG_WALK_NEED) {
            if (here == len) return -1; /* the body ended inside a field */
            here = here + chunk < len ? here + chunk : len;
            continue;
        }
        if (rc == KG_WALK_TOPIC)
            snprintf(names[(*n_names)++], 32, "%.*s", (int)name_len, (char *)body + pos + off);
        pos += n;
    }
    return -1;
}

KT_TEST(produce_walk_finds_every_name_in_any_split)
{
    const char *topics[] = {"orders", "payments", "x"};
    const int16_t versions[] = {0, 2, 3, 7, 8, 9, 10, 12};
    for (size_t v = 0; v < sizeof(versions) / sizeof(versions[0]); v++) {
        kp_writer body = produce_body(versions[v], topics, 3);
        for (size_t chunk = 1; chunk <= body.len; chunk += chunk < 8 ? 1 : 7) {
            char names[8][32];
            int n = 0;
            KT_CHECK_EQ_INT(walk(versions[v], body.buf, body.len, chunk, names, &n), 0);
            KT_CHECK_EQ_INT(n, 3);
            for (int i = 0; i < n && i < 3; i++)
                KT_CHECK(strcmp(names[i], topics[i]) == 0);
        }
        char names[8][32];
        int n;
        KT_CHECK_EQ_INT(walk(versions[v], body.buf, body.len - 1, body.len, names, &n), -1);
        kp_writer_free(&body);
    }
}

/* Decodes a whole Produce request body and returns its topic names (in NAMES). */
static int produce_names(int16_t version, const kp_writer *body, char names[][32])
{
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body->buf, body->len);
    kp_produce_request m;
    kp_produce_request_init(&m);
    int n = kp_produce_request_decode(&r, &a, version, &m) == 0 ? m.topic_data.count : -1;
    for (int i = 0; i < n; i++)
        snprintf(names[i], 32, "%.*s", (int)m.topic_data.items[i].name.len,
                 m.topic_data.items[i].name.ptr);
    kp_arena_free(&a);
    return n;
}

KT_TEST(denied_produce_topics_renamed_then_named_again_with_error_29)
{
    kg_acl_set *acls = alice_acls();
    kg_authz_who who = {acls, "User:alice", "10.0.0.1"};
    const char *topics[] = {"good-1", "bad", "good-secret", "bad2"};
    kp_writer body = produce_body(9, topics, 4);
    kg_authz_patch *patch = NULL;
    /* what the engine does as the names pass */
    kg_authz_produce_walk w;
    size_t pos = 0;
    int denied = 0, rc;
    pos = 0;
    kg_authz_produce_walk_init(&w, 9);
    for (;;) {
        size_t n = 0, off = 0;
        int32_t len = 0;
        rc = kg_authz_produce_walk_step(&w, body.buf + pos, body.len - pos, &n, &off, &len);
        if (rc != KG_WALK_PASS && rc != KG_WALK_TOPIC) break;
        if (rc == KG_WALK_TOPIC)
            denied += kg_authz_topic(&who, body.buf + pos + off, len, KG_ACL_WRITE, &patch);
        pos += n;
    }
    KT_CHECK_EQ_INT(rc, KG_WALK_DONE);
    KT_CHECK_EQ_INT(denied, 3);
    char names[8][32];
    KT_CHECK_EQ_INT(produce_names(9, &body, names), 4);
    KT_CHECK(strcmp(names[0], "good-1") == 0);
    for (int i = 1; i < 4; i++) { /* same length, characters no topic can have, all different */
        KT_CHECK(strlen(names[i]) == strlen(topics[i]) && strcmp(names[i], topics[i]) != 0);
        KT_CHECK(strspn(names[i], "!#$%&()*+,:;<=>?@[]^{|}~") == strlen(names[i]));
    }
    KT_CHECK(strcmp(names[1], names[3]) != 0);

    /* the cluster's answer: the allowed topic written, the stand-ins unknown */
    kp_produce_response resp;
    kp_produce_response_init(&resp);
    kp_produce_response_topic_produce_response t[4];
    kp_produce_response_partition_produce_response p[2];
    memset(t, 0, sizeof(t));
    memset(p, 0, sizeof(p));
    for (int j = 0; j < 2; j++) { /* a broker's "unknown topic" partition answer */
        p[j].index = j;
        p[j].error_code = 3;
        p[j].base_offset = p[j].log_append_time_ms = p[j].log_start_offset = -1;
        p[j].error_message = KP_STR_NULL;
        p[j].current_leader.leader_id = p[j].current_leader.leader_epoch = -1;
    }
    for (int i = 0; i < 4; i++) {
        t[i].name = kp_str_c(names[i]);
        t[i].partition_responses.count = 2;
        t[i].partition_responses.items = p;
    }
    resp.responses.count = 4;
    resp.responses.items = t;
    kp_writer raw, fixed;
    kp_writer_init(&raw, 256);
    kp_writer_init(&fixed, 256);
    kp_produce_response_encode(&raw, 9, &resp);
    KT_CHECK_EQ_INT(kg_authz_response(patch, &who, 0, 9, raw.buf, raw.len, &fixed), 0);
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, fixed.buf, fixed.len);
    kp_produce_response out;
    KT_CHECK_EQ_INT(kp_produce_response_decode(&r, &a, 9, &out), 0);
    KT_CHECK_EQ_INT(out.responses.count, 4);
    for (int i = 0; i < 4 && i < out.responses.count; i++) {
        kp_produce_response_topic_produce_response *o = &out.responses.items[i];
        KT_CHECK((size_t)o->name.len == strlen(topics[i]) &&
                 memcmp(o->name.ptr, topics[i], strlen(topics[i])) == 0);
        for (int j = 0; j < o->partition_responses.count; j++)
            KT_CHECK_EQ_INT(o->partition_responses.items[j].error_code, i == 0 ? 3 : 29);
    }
    kp_arena_free(&a);
    kp_writer_free(&raw);
    kp_writer_free(&fixed);
    kp_writer_free(&body);
    kg_authz_patch_free(patch);
    kg_acl_release(acls);
}

/* Metadata v9 for TOPICS (NULL: every topic), authorized for alice. */
static kg_authz_verdict metadata_request(const kg_authz_who *who, const char *const *topics, int n,
                                         kp_writer *body)
{
    kp_metadata_request m;
    kp_metadata_request_init(&m);
    kp_metadata_request_metadata_request_topic t[4];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < n; i++)
        t[i].name = kp_str_c(topics[i]);
    m.topics.count = topics ? n : -1;
    m.topics.items = t;
    kp_writer_init(body, 128);
    kp_metadata_request_encode(body, 9, &m);
    kg_authz_verdict v;
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(kg_authz_request(who, 3, 9, body->buf, body->len, &v), 0);
    return v;
}

/* The cluster's Metadata answer naming TOPICS; the names kgate's answer keeps, with errors. */
static int metadata_answer(const kg_authz_who *who, const kg_authz_patch *patch,
                           const char *const *topics, int n, char out[][40])
{
    kp_metadata_response m;
    kp_metadata_response_init(&m);
    kp_metadata_response_metadata_response_topic t[4];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < n; i++)
        t[i].name = kp_str_c(topics[i]);
    m.topics.count = n;
    m.topics.items = t;
    kp_writer raw, fixed;
    kp_writer_init(&raw, 128);
    kp_writer_init(&fixed, 128);
    kp_metadata_response_encode(&raw, 9, &m);
    int rc = kg_authz_response(patch, who, 3, 9, raw.buf, raw.len, &fixed);
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, fixed.buf, fixed.len);
    kp_metadata_response got;
    if (rc == 0 && kp_metadata_response_decode(&r, &a, 9, &got) == 0) {
        rc = got.topics.count;
        for (int i = 0; i < rc; i++)
            snprintf(out[i], 40, "%.*s:%d", (int)got.topics.items[i].name.len,
                     got.topics.items[i].name.ptr, got.topics.items[i].error_code);
    }
    kp_arena_free(&a);
    kp_writer_free(&raw);
    kp_writer_free(&fixed);
    return rc;
}

KT_TEST(metadata_hides_or_refuses_topics_as_a_broker_does)
{
    kg_acl_set *acls = alice_acls();
    kg_authz_who who = {acls, "User:alice", NULL};
    kp_writer body;
    char out[4][40];
    /* every topic: the ones alice may not Describe are left out */
    kg_authz_verdict v = metadata_request(&who, NULL, 0, &body);
    KT_CHECK_EQ_INT(v.action, KG_AUTHZ_PATCH);
    const char *all[] = {"good-a", "other", "good-b"};
    KT_CHECK_EQ_INT(metadata_answer(&who, v.patch, all, 3, out), 2);
    KT_CHECK(strcmp(out[0], "good-a:0") == 0 && strcmp(out[1], "good-b:0") == 0);
    kg_authz_patch_free(v.patch);
    kg_authz_verdict_free(&v);
    kp_writer_free(&body);
    /* named topics: the forbidden one is renamed (no auto-creation) and refused by name */
    const char *named[] = {"good-a", "other"};
    v = metadata_request(&who, named, 2, &body);
    KT_CHECK(memmem(body.buf, body.len, "other", 5) == NULL);
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body.buf, body.len);
    kp_metadata_request sent;
    KT_CHECK_EQ_INT(kp_metadata_request_decode(&r, &a, 9, &sent), 0);
    KT_CHECK(!sent.allow_auto_topic_creation); /* a lenient broker must not create a stand-in */
    char stand_in[8];
    snprintf(stand_in, sizeof(stand_in), "%.*s", (int)sent.topics.items[1].name.len,
             sent.topics.items[1].name.ptr);
    const char *answered[] = {"good-a", stand_in};
    KT_CHECK_EQ_INT(metadata_answer(&who, v.patch, answered, 2, out), 2);
    KT_CHECK(strcmp(out[0], "good-a:0") == 0 && strcmp(out[1], "other:29") == 0);
    kp_arena_free(&a);
    kg_authz_patch_free(v.patch);
    kg_authz_verdict_free(&v);
    kp_writer_free(&body);
    kg_acl_release(acls);
}

/* The answer kgate gives to API/VERSION with BODY from WHO, decoded: its top-level error. */
static int16_t answered_error(const kg_authz_who *who, int16_t api, int16_t version,
                              kp_writer *body, int *action)
{
    kg_authz_verdict v;
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(kg_authz_request(who, api, version, body->buf, body->len, &v), 0);
    *action = v.action;
    int16_t code = 0;
    if (v.action == KG_AUTHZ_ANSWER) {
        const kp_msg_codec *c = kp_api_get(api)->response;
        kp_arena a;
        kp_arena_init(&a);
        kp_reader r;
        kp_reader_init(&r, v.answer.buf, v.answer.len);
        void *m = kp_arena_calloc(&a, 1, c->size);
        KT_CHECK(c->decode(&r, &a, version, m) == 0 && !r.err && r.p == r.end);
        if (c->error_code_offset >= 0) memcpy(&code, (char *)m + c->error_code_offset, 2);
        kp_arena_free(&a);
    }
    kg_authz_verdict_free(&v);
    kp_writer_free(body);
    return code;
}

KT_TEST(denied_group_transaction_and_cluster_requests_get_kafkas_errors)
{
    kg_acl_set *acls = alice_acls();
    kg_authz_who who = {acls, "User:alice", NULL};
    int action;
    kp_writer body;

    kp_join_group_request join;
    kp_join_group_request_init(&join);
    join.group_id = kp_str_c("other-group");
    join.protocol_type = kp_str_c("consumer");
    kp_writer_init(&body, 64);
    kp_join_group_request_encode(&body, 5, &join);
    KT_CHECK_EQ_INT(answered_error(&who, 11, 5, &body, &action), 30);
    KT_CHECK_EQ_INT(action, KG_AUTHZ_ANSWER);
    join.group_id = kp_str_c("g");
    kp_writer_init(&body, 64);
    kp_join_group_request_encode(&body, 9, &join); /* flexible */
    answered_error(&who, 11, 9, &body, &action);
    KT_CHECK_EQ_INT(action, KG_AUTHZ_PASS);

    kp_init_producer_id_request init;
    kp_init_producer_id_request_init(&init);
    init.transactional_id = KP_STR_NULL; /* idempotent: Write on a topic implies it */
    kp_writer_init(&body, 64);
    kp_init_producer_id_request_encode(&body, 4, &init);
    answered_error(&who, 22, 4, &body, &action);
    KT_CHECK_EQ_INT(action, KG_AUTHZ_PASS);
    kg_authz_who reader = {acls, "User:bob", NULL}; /* no Write anywhere, no IdempotentWrite */
    kp_writer_init(&body, 64);
    kp_init_producer_id_request_encode(&body, 4, &init);
    KT_CHECK_EQ_INT(answered_error(&reader, 22, 4, &body, &action), 31);
    init.transactional_id = kp_str_c("txn-1");
    kp_writer_init(&body, 64);
    kp_init_producer_id_request_encode(&body, 4, &init);
    KT_CHECK_EQ_INT(answered_error(&who, 22, 4, &body, &action), 53);

    kp_describe_cluster_request dc;
    kp_describe_cluster_request_init(&dc);
    kp_writer_init(&body, 64);
    kp_describe_cluster_request_encode(&body, 0, &dc);
    KT_CHECK_EQ_INT(answered_error(&who, 60, 0, &body, &action), 31);
    KT_CHECK_EQ_INT(action, KG_AUTHZ_ANSWER);
    kg_acl_release(acls);
}

KT_TEST(topic_ids_are_refused_where_names_decide)
{
    kg_acl_set *acls = alice_acls();
    kg_authz_who who = {acls, "User:alice", NULL};
    kp_fetch_request f;
    kp_fetch_request_init(&f);
    kp_writer body;
    kp_writer_init(&body, 64);
    kp_fetch_request_encode(&body, 13, &f);
    kg_authz_verdict v;
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(kg_authz_request(&who, 1, 13, body.buf, body.len, &v), 0);
    KT_CHECK_EQ_INT(v.action, KG_AUTHZ_CLOSE);
    kg_authz_verdict_free(&v);
    kp_writer_free(&body);

    kp_delete_topics_request d;
    kp_delete_topics_request_init(&d);
    kp_delete_topics_request_delete_topic_state t = {.name = KP_STR_NULL};
    d.topics.count = 1;
    d.topics.items = &t;
    kp_writer_init(&body, 64);
    kp_delete_topics_request_encode(&body, 6, &d);
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(kg_authz_request(&who, 20, 6, body.buf, body.len, &v), 0);
    KT_CHECK_EQ_INT(v.action, KG_AUTHZ_CLOSE);
    kg_authz_verdict_free(&v);
    kp_writer_free(&body);
    kg_acl_release(acls);
}

KT_MAIN()

/* 1 when S is a stand-in kgate made of a denied name (punctuation only). */
static int is_stand_in(kp_str s)
{
    return s.len > 0 && strspn(s.ptr, "!#$%&()*+,:;<=>?@[]^{|}~") >= (size_t)s.len;
}

KT_TEST(several_groups_denied_ones_renamed_and_answered_with_30)
{
    kg_acl_set *acls = alice_acls();
    kg_authz_who who = {acls, "User:alice", NULL};
    kp_describe_groups_request m;
    kp_describe_groups_request_init(&m);
    kp_str groups[] = {kp_str_c("g"), kp_str_c("other-group")};
    m.groups.count = 2;
    m.groups.items = groups;
    kp_writer body;
    kp_writer_init(&body, 64);
    kp_describe_groups_request_encode(&body, 5, &m);
    kg_authz_verdict v;
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(kg_authz_request(&who, KP_KEY_DESCRIBE_GROUPS, 5, body.buf, body.len, &v), 0);
    KT_CHECK_EQ_INT(v.action, KG_AUTHZ_PATCH);
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body.buf, body.len);
    kp_describe_groups_request sent;
    KT_CHECK_EQ_INT(kp_describe_groups_request_decode(&r, &a, 5, &sent), 0);
    KT_CHECK(!is_stand_in(sent.groups.items[0]) && is_stand_in(sent.groups.items[1]));
    /* the cluster's answer: "g" described, the stand-in unknown (a dead group) */
    kp_describe_groups_response ans;
    kp_describe_groups_response_init(&ans);
    kp_describe_groups_response_described_group dg[2];
    memset(dg, 0, sizeof(dg));
    dg[0].group_id = sent.groups.items[0];
    dg[0].group_state = kp_str_c("Stable");
    dg[1].group_id = sent.groups.items[1];
    dg[1].group_state = kp_str_c("Dead");
    ans.groups.count = 2;
    ans.groups.items = dg;
    kp_writer raw, fixed;
    kp_writer_init(&raw, 128);
    kp_writer_init(&fixed, 128);
    kp_describe_groups_response_encode(&raw, 5, &ans);
    KT_CHECK_EQ_INT(
        kg_authz_response(v.patch, &who, KP_KEY_DESCRIBE_GROUPS, 5, raw.buf, raw.len, &fixed), 0);
    kp_reader_init(&r, fixed.buf, fixed.len);
    kp_describe_groups_response got;
    KT_CHECK_EQ_INT(kp_describe_groups_response_decode(&r, &a, 5, &got), 0);
    KT_CHECK_EQ_INT(got.groups.count, 2);
    KT_CHECK_EQ_INT(got.groups.items[0].error_code, 0);
    KT_CHECK(got.groups.items[1].group_id.len == 11 &&
             memcmp(got.groups.items[1].group_id.ptr, "other-group", 11) == 0);
    KT_CHECK_EQ_INT(got.groups.items[1].error_code, 30);
    kp_arena_free(&a);
    kp_writer_free(&raw);
    kp_writer_free(&fixed);
    kp_writer_free(&body);
    kg_authz_patch_free(v.patch);
    kg_authz_verdict_free(&v);
    kg_acl_release(acls);
}

KT_TEST(config_resources_checked_per_type_with_their_own_codes)
{
    kg_acl_set *acls = alice_acls(); /* no DescribeConfigs anywhere */
    kg_authz_who who = {acls, "User:alice", NULL};
    kp_describe_configs_request m;
    kp_describe_configs_request_init(&m);
    kp_describe_configs_request_describe_configs_resource res[2];
    memset(res, 0, sizeof(res));
    res[0].resource_type = 2; /* topic */
    res[0].resource_name = kp_str_c("good-a");
    res[0].configuration_keys.count = -1;
    res[1].resource_type = 4; /* broker */
    res[1].resource_name = kp_str_c("1");
    res[1].configuration_keys.count = -1;
    m.resources.count = 2;
    m.resources.items = res;
    kp_writer body;
    kp_writer_init(&body, 64);
    kp_describe_configs_request_encode(&body, 4, &m);
    kg_authz_verdict v;
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(kg_authz_request(&who, KP_KEY_DESCRIBE_CONFIGS, 4, body.buf, body.len, &v), 0);
    KT_CHECK_EQ_INT(v.action, KG_AUTHZ_PATCH);
    KT_CHECK(memmem(body.buf, body.len, "good-a", 6) == NULL);
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body.buf, body.len);
    kp_describe_configs_request sent;
    KT_CHECK_EQ_INT(kp_describe_configs_request_decode(&r, &a, 4, &sent), 0);
    kp_describe_configs_response ans;
    kp_describe_configs_response_init(&ans);
    kp_describe_configs_response_describe_configs_result out[2];
    memset(out, 0, sizeof(out));
    for (int i = 0; i < 2; i++) {
        out[i].error_code = i == 0 ? 3 : 42; /* what a cluster says to the stand-ins */
        out[i].resource_type = sent.resources.items[i].resource_type;
        out[i].resource_name = sent.resources.items[i].resource_name;
    }
    ans.results.count = 2;
    ans.results.items = out;
    kp_writer raw, fixed;
    kp_writer_init(&raw, 128);
    kp_writer_init(&fixed, 128);
    kp_describe_configs_response_encode(&raw, 4, &ans);
    KT_CHECK_EQ_INT(
        kg_authz_response(v.patch, &who, KP_KEY_DESCRIBE_CONFIGS, 4, raw.buf, raw.len, &fixed), 0);
    kp_reader_init(&r, fixed.buf, fixed.len);
    kp_describe_configs_response got;
    KT_CHECK_EQ_INT(kp_describe_configs_response_decode(&r, &a, 4, &got), 0);
    KT_CHECK_EQ_INT(got.results.items[0].error_code, 29);
    KT_CHECK(got.results.items[0].resource_name.len == 6 &&
             memcmp(got.results.items[0].resource_name.ptr, "good-a", 6) == 0);
    KT_CHECK_EQ_INT(got.results.items[1].error_code, 31);
    KT_CHECK(got.results.items[1].resource_name.len == 1 &&
             got.results.items[1].resource_name.ptr[0] == '1');
    kg_authz_patch_free(v.patch);
    kg_authz_verdict_free(&v);
    kp_writer_free(&raw);
    kp_writer_free(&fixed);
    kp_writer_free(&body);
    /* the cluster-wide broker defaults have an empty name: nothing to rename, so it closes */
    res[1].resource_name = kp_str_c("");
    m.resources.count = 2;
    kp_writer_init(&body, 64);
    kp_describe_configs_request_encode(&body, 4, &m);
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(kg_authz_request(&who, KP_KEY_DESCRIBE_CONFIGS, 4, body.buf, body.len, &v), 0);
    KT_CHECK_EQ_INT(v.action, KG_AUTHZ_CLOSE);
    KT_CHECK(v.patch == NULL);
    kg_authz_verdict_free(&v);
    kp_writer_free(&body);
    kp_arena_free(&a);
    kg_acl_release(acls);
}

KT_TEST(transactions_and_leader_epochs_checked_on_their_resources)
{
    kg_acl_set *acls = alice_acls(); /* no transactional id allowed */
    kg_authz_who who = {acls, "User:alice", NULL};
    kp_add_partitions_to_txn_request m;
    kp_add_partitions_to_txn_request_init(&m);
    int32_t parts[] = {0, 3};
    kp_add_partitions_to_txn_request_add_partitions_to_txn_topic t = {.name = kp_str_c("good-a"),
                                                                      .partitions = {2, parts}};
    m.v3_and_below_transactional_id = kp_str_c("txn-1");
    m.v3_and_below_topics.count = 1;
    m.v3_and_below_topics.items = &t;
    kp_writer body;
    kp_writer_init(&body, 64);
    kp_add_partitions_to_txn_request_encode(&body, 3, &m);
    kg_authz_verdict v;
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(kg_authz_request(&who, KP_KEY_ADD_PARTITIONS_TO_TXN, 3, body.buf, body.len, &v),
                    0);
    KT_CHECK_EQ_INT(v.action, KG_AUTHZ_ANSWER);
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, v.answer.buf, v.answer.len);
    kp_add_partitions_to_txn_response got;
    KT_CHECK_EQ_INT(kp_add_partitions_to_txn_response_decode(&r, &a, 3, &got), 0);
    KT_CHECK_EQ_INT(got.results_by_topic_v3_and_below.count, 1);
    KT_CHECK_EQ_INT(got.results_by_topic_v3_and_below.items[0].results_by_partition.count, 2);
    KT_CHECK_EQ_INT(
        got.results_by_topic_v3_and_below.items[0].results_by_partition.items[1].partition_index,
        3);
    KT_CHECK_EQ_INT(got.results_by_topic_v3_and_below.items[0]
                        .results_by_partition.items[1]
                        .partition_error_code,
                    53);
    kg_authz_verdict_free(&v);
    kp_writer_free(&body);

    /* a consumer validating its position (KIP-320): Describe on the topic, not the cluster */
    kp_offset_for_leader_epoch_request e;
    kp_offset_for_leader_epoch_request_init(&e);
    kp_offset_for_leader_epoch_request_offset_for_leader_topic et[2];
    memset(et, 0, sizeof(et));
    et[0].topic = kp_str_c("good-a");
    et[1].topic = kp_str_c("other");
    e.replica_id = -1;
    e.topics.count = 1;
    e.topics.items = et;
    kp_writer_init(&body, 64);
    kp_offset_for_leader_epoch_request_encode(&body, 4, &e);
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(
        kg_authz_request(&who, KP_KEY_OFFSET_FOR_LEADER_EPOCH, 4, body.buf, body.len, &v), 0);
    KT_CHECK_EQ_INT(v.action, KG_AUTHZ_PASS);
    kg_authz_verdict_free(&v);
    kp_writer_free(&body);
    e.topics.count = 2;
    kp_writer_init(&body, 64);
    kp_offset_for_leader_epoch_request_encode(&body, 4, &e);
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(
        kg_authz_request(&who, KP_KEY_OFFSET_FOR_LEADER_EPOCH, 4, body.buf, body.len, &v), 0);
    KT_CHECK_EQ_INT(v.action, KG_AUTHZ_PATCH);
    KT_CHECK(memmem(body.buf, body.len, "other", 5) == NULL);
    kg_authz_patch_free(v.patch);
    kg_authz_verdict_free(&v);
    kp_writer_free(&body);
    e.replica_id = 2; /* a follower's: ClusterAction, which alice has not */
    kp_writer_init(&body, 64);
    kp_offset_for_leader_epoch_request_encode(&body, 4, &e);
    kg_authz_verdict_init(&v);
    KT_CHECK_EQ_INT(
        kg_authz_request(&who, KP_KEY_OFFSET_FOR_LEADER_EPOCH, 4, body.buf, body.len, &v), 0);
    KT_CHECK_EQ_INT(v.action, KG_AUTHZ_CLOSE);
    kg_authz_verdict_free(&v);
    kp_writer_free(&body);
    kp_arena_free(&a);
    kg_acl_release(acls);
}
