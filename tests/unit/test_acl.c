/* kg_acl: Kafka's decision semantics (implications, deny precedence, literal / prefixed /
 * wildcard names, principal and host wildcards, default deny), the parsers' errors, and the
 * registry over a real store (round trip, audit, config bindings). */
#include "kt.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/kg_config.h"
#include "security/kg_acl.h"
#include "state/kg_store.h"
#include "util/kg_log.h"

__attribute__((constructor)) static void quiet(void)
{
    kg_log_set_level(KG_LOG_ERROR);
}

/* One binding from "PERM PRINCIPAL HOST TYPE PATTERN NAME OP". */
static kg_acl_binding mk(const char *text)
{
    char perm[16], principal[128], host[64], type[32], pattern[16], name[128], op[32];
    kg_acl_binding b;
    memset(&b, 0, sizeof(b));
    if (sscanf(text, "%15s %127s %63s %31s %15s %127s %31s", perm, principal, host, type, pattern,
               name, op) != 7)
        abort();
    snprintf(b.principal, sizeof(b.principal), "%s", principal);
    snprintf(b.host, sizeof(b.host), "%s", host);
    snprintf(b.name, sizeof(b.name), "%s", name);
    b.permission = (kg_acl_permission)kg_acl_parse_permission(perm);
    b.resource = (kg_acl_resource)kg_acl_parse_resource(type);
    b.pattern = (kg_acl_pattern)kg_acl_parse_pattern(pattern);
    b.op = (kg_acl_op)kg_acl_parse_op(op);
    char err[256];
    if (kg_acl_binding_check(&b, err, sizeof(err)) < 0) {
        fprintf(stderr, "bad test binding %s: %s\n", text, err);
        abort();
    }
    return b;
}

static kg_acl_set *mkset(const char *const *lines)
{
    kg_acl_binding b[64];
    int n = 0;
    while (lines[n])
        b[n] = mk(lines[n]), n++;
    return kg_acl_set_new(b, n);
}

static int ok(const kg_acl_set *s, const char *principal, const char *host, kg_acl_resource type,
              const char *name, kg_acl_op op)
{
    return kg_acl_allowed(s, principal, host, type, name, strlen(name), op);
}

KT_TEST(names_parse_case_insensitively)
{
    KT_CHECK_EQ_INT(kg_acl_parse_op("Write"), KG_ACL_WRITE);
    KT_CHECK_EQ_INT(kg_acl_parse_op("WRITE"), KG_ACL_WRITE);
    KT_CHECK_EQ_INT(kg_acl_parse_op("describe_configs"), KG_ACL_DESCRIBE_CONFIGS);
    KT_CHECK_EQ_INT(kg_acl_parse_op("DescribeConfigs"), KG_ACL_DESCRIBE_CONFIGS);
    KT_CHECK_EQ_INT(kg_acl_parse_op("IDEMPOTENT_WRITE"), KG_ACL_IDEMPOTENT_WRITE);
    KT_CHECK_EQ_INT(kg_acl_parse_op("all"), KG_ACL_ALL);
    KT_CHECK_EQ_INT(kg_acl_parse_op("Writ"), -1);
    KT_CHECK_EQ_INT(kg_acl_parse_op(""), -1);
    KT_CHECK_EQ_INT(kg_acl_parse_op(NULL), -1);
    KT_CHECK_EQ_INT(kg_acl_parse_resource("Topic"), KG_ACL_TOPIC);
    KT_CHECK_EQ_INT(kg_acl_parse_resource("transactional-id"), KG_ACL_TRANSACTIONAL_ID);
    KT_CHECK_EQ_INT(kg_acl_parse_resource("TransactionalId"), KG_ACL_TRANSACTIONAL_ID);
    KT_CHECK_EQ_INT(kg_acl_parse_resource("broker"), -1);
    KT_CHECK_EQ_INT(kg_acl_parse_pattern("PREFIXED"), KG_ACL_PREFIXED);
    KT_CHECK_EQ_INT(kg_acl_parse_pattern("match"), -1);
    KT_CHECK_EQ_INT(kg_acl_parse_permission("Deny"), KG_ACL_DENY);
    KT_CHECK_EQ_STR(kg_acl_op_name(KG_ACL_ALTER_CONFIGS), "AlterConfigs");
    KT_CHECK_EQ_STR(kg_acl_resource_name(KG_ACL_TRANSACTIONAL_ID), "transactional_id");
    KT_CHECK_EQ_STR(kg_acl_op_name((kg_acl_op)99), "?");
    char err[256];
    KT_CHECK_EQ_INT(kg_acl_parse_op_list("Write,describe", err, sizeof(err)),
                    KG_ACL_OP_BIT(KG_ACL_WRITE) | KG_ACL_OP_BIT(KG_ACL_DESCRIBE));
    KT_CHECK_EQ_INT(kg_acl_parse_op_list("Write,,Read", err, sizeof(err)), 0);
    KT_CHECK_EQ_INT(kg_acl_parse_op_list("Write,Frobnicate", err, sizeof(err)), 0);
    KT_CHECK(strstr(err, "Frobnicate") != NULL);
    KT_CHECK_EQ_INT(kg_acl_parse_op_list("", err, sizeof(err)), 0);
}

KT_TEST(implications_follow_kafka)
{
    static const char *const lines[] = {
        "allow User:alice * topic literal orders Write",
        "allow User:alice * topic literal configs AlterConfigs",
        "allow User:alice * group literal g1 Read",
        "allow User:alice * topic literal everything All",
        NULL,
    };
    kg_acl_set *s = mkset(lines);
    KT_CHECK(ok(s, "User:alice", "10.0.0.1", KG_ACL_TOPIC, "orders", KG_ACL_WRITE));
    KT_CHECK(ok(s, "User:alice", "10.0.0.1", KG_ACL_TOPIC, "orders", KG_ACL_DESCRIBE));
    KT_CHECK(!ok(s, "User:alice", "10.0.0.1", KG_ACL_TOPIC, "orders", KG_ACL_READ));
    KT_CHECK(!ok(s, "User:alice", "10.0.0.1", KG_ACL_TOPIC, "orders", KG_ACL_DESCRIBE_CONFIGS));
    KT_CHECK(ok(s, "User:alice", NULL, KG_ACL_TOPIC, "configs", KG_ACL_DESCRIBE_CONFIGS));
    KT_CHECK(ok(s, "User:alice", NULL, KG_ACL_TOPIC, "configs", KG_ACL_ALTER_CONFIGS));
    KT_CHECK(!ok(s, "User:alice", NULL, KG_ACL_TOPIC, "configs", KG_ACL_DESCRIBE));
    KT_CHECK(ok(s, "User:alice", NULL, KG_ACL_GROUP, "g1", KG_ACL_DESCRIBE));
    KT_CHECK(!ok(s, "User:alice", NULL, KG_ACL_GROUP, "g1", KG_ACL_DELETE));
    /* The resource type is part of the match: group g1 is not topic g1. */
    KT_CHECK(!ok(s, "User:alice", NULL, KG_ACL_TOPIC, "g1", KG_ACL_READ));
    for (int op = 0; op < KG_ACL_N_OPS; op++)
        KT_CHECK(ok(s, "User:alice", NULL, KG_ACL_TOPIC, "everything", (kg_acl_op)op));
    /* Implications are ALLOW's only: Describe does not imply Read. */
    kg_acl_release(s);
    static const char *const d[] = {"allow User:bob * topic literal t Describe", NULL};
    s = mkset(d);
    KT_CHECK(ok(s, "User:bob", NULL, KG_ACL_TOPIC, "t", KG_ACL_DESCRIBE));
    KT_CHECK(!ok(s, "User:bob", NULL, KG_ACL_TOPIC, "t", KG_ACL_READ));
    kg_acl_release(s);
}

KT_TEST(deny_wins_and_does_not_imply)
{
    static const char *const lines[] = {
        "allow User:* * topic literal * All",
        "deny User:mallory * topic prefixed secret. Read",
        "deny User:* 10.9.9.9 topic literal orders All",
        "allow User:eve * topic literal orders Read",
        "deny User:eve * topic literal orders Read",
        NULL,
    };
    kg_acl_set *s = mkset(lines);
    KT_CHECK(ok(s, "User:alice", "10.0.0.1", KG_ACL_TOPIC, "secret.x", KG_ACL_READ));
    KT_CHECK(!ok(s, "User:mallory", "10.0.0.1", KG_ACL_TOPIC, "secret.x", KG_ACL_READ));
    /* DENY Read leaves Describe (and Write) to the ALLOW All. */
    KT_CHECK(ok(s, "User:mallory", "10.0.0.1", KG_ACL_TOPIC, "secret.x", KG_ACL_DESCRIBE));
    KT_CHECK(ok(s, "User:mallory", "10.0.0.1", KG_ACL_TOPIC, "secret.x", KG_ACL_WRITE));
    /* DENY All from one host denies everything to everyone there, nothing elsewhere. */
    KT_CHECK(!ok(s, "User:alice", "10.9.9.9", KG_ACL_TOPIC, "orders", KG_ACL_DESCRIBE));
    KT_CHECK(ok(s, "User:alice", "10.9.9.8", KG_ACL_TOPIC, "orders", KG_ACL_DESCRIBE));
    /* The same operation allowed and denied: denied. */
    KT_CHECK(!ok(s, "User:eve", "10.0.0.1", KG_ACL_TOPIC, "orders", KG_ACL_READ));
    KT_CHECK(ok(s, "User:eve", "10.0.0.1", KG_ACL_TOPIC, "orders", KG_ACL_WRITE));
    kg_acl_release(s);
}

KT_TEST(literal_prefixed_and_wildcard_names)
{
    static const char *const lines[] = {
        "allow User:alice * topic prefixed orders Write",
        "allow User:alice * topic literal payments Read",
        "allow User:bob * topic literal * Read",
        "allow User:carol * transactional_id prefixed tx- Write",
        "allow User:carol * cluster literal kafka-cluster IdempotentWrite",
        NULL,
    };
    kg_acl_set *s = mkset(lines);
    KT_CHECK(ok(s, "User:alice", NULL, KG_ACL_TOPIC, "orders", KG_ACL_WRITE));
    KT_CHECK(ok(s, "User:alice", NULL, KG_ACL_TOPIC, "orders.eu", KG_ACL_WRITE));
    KT_CHECK(!ok(s, "User:alice", NULL, KG_ACL_TOPIC, "order", KG_ACL_WRITE));
    KT_CHECK(!ok(s, "User:alice", NULL, KG_ACL_TOPIC, "xorders", KG_ACL_WRITE));
    KT_CHECK(ok(s, "User:alice", NULL, KG_ACL_TOPIC, "payments", KG_ACL_READ));
    KT_CHECK(!ok(s, "User:alice", NULL, KG_ACL_TOPIC, "payments2", KG_ACL_READ));
    KT_CHECK(!ok(s, "User:alice", NULL, KG_ACL_TOPIC, "payment", KG_ACL_READ));
    /* A literal "*" matches every name; a topic literally named "*" is not special. */
    KT_CHECK(ok(s, "User:bob", NULL, KG_ACL_TOPIC, "anything", KG_ACL_READ));
    KT_CHECK(ok(s, "User:bob", NULL, KG_ACL_TOPIC, "payments", KG_ACL_DESCRIBE));
    KT_CHECK(!ok(s, "User:bob", NULL, KG_ACL_GROUP, "anything", KG_ACL_READ));
    KT_CHECK(ok(s, "User:carol", NULL, KG_ACL_TRANSACTIONAL_ID, "tx-1", KG_ACL_WRITE));
    KT_CHECK(ok(s, "User:carol", NULL, KG_ACL_TRANSACTIONAL_ID, "tx-1", KG_ACL_DESCRIBE));
    KT_CHECK(!ok(s, "User:carol", NULL, KG_ACL_TRANSACTIONAL_ID, "tx", KG_ACL_WRITE));
    KT_CHECK(
        ok(s, "User:carol", NULL, KG_ACL_CLUSTER, KG_ACL_CLUSTER_NAME, KG_ACL_IDEMPOTENT_WRITE));
    /* Write on a topic is no IdempotentWrite binding (the engine asks kg_acl_allowed_any). */
    KT_CHECK(
        !ok(s, "User:alice", NULL, KG_ACL_CLUSTER, KG_ACL_CLUSTER_NAME, KG_ACL_IDEMPOTENT_WRITE));
    /* Names need no NUL: a prefix of a longer buffer is matched on its length. */
    KT_CHECK(kg_acl_allowed(s, "User:alice", NULL, KG_ACL_TOPIC, "paymentsXYZ", 8, KG_ACL_READ));
    KT_CHECK(!kg_acl_allowed(s, "User:alice", NULL, KG_ACL_TOPIC, "paymentsXYZ", 9, KG_ACL_READ));
    kg_acl_release(s);
}

/* Kafka's authorizeByResourceType: some resource of the type allowed, not covered by a DENY. */
KT_TEST(allowed_on_some_resource_of_a_type)
{
    static const char *const lines[] = {
        "allow User:alice * topic prefixed orders Write",
        "allow User:bob * topic literal payments Write",
        "deny User:bob * topic literal payments Write",
        "allow User:carol * topic literal audit Write",
        "deny User:carol * topic prefixed aud Write",
        "allow User:dave * topic prefixed orders Write",
        "deny User:dave * topic literal orders Write", /* a literal does not cover a prefix */
        "allow User:erin * topic literal * Write",
        "allow User:frank * topic prefixed x Write",
        "deny User:frank * topic literal * Write",
        "allow User:* * topic literal public Read",
        "allow User:gina 10.0.0.1 topic literal t Write",
        NULL,
    };
    kg_acl_set *s = mkset(lines);
    KT_CHECK(kg_acl_allowed_any(s, "User:alice", NULL, KG_ACL_TOPIC, KG_ACL_WRITE));
    KT_CHECK(!kg_acl_allowed_any(s, "User:alice", NULL, KG_ACL_TOPIC, KG_ACL_DELETE));
    KT_CHECK(!kg_acl_allowed_any(s, "User:bob", NULL, KG_ACL_TOPIC, KG_ACL_WRITE));
    KT_CHECK(!kg_acl_allowed_any(s, "User:carol", NULL, KG_ACL_TOPIC, KG_ACL_WRITE));
    KT_CHECK(kg_acl_allowed_any(s, "User:dave", NULL, KG_ACL_TOPIC, KG_ACL_WRITE));
    KT_CHECK(kg_acl_allowed_any(s, "User:erin", NULL, KG_ACL_TOPIC, KG_ACL_WRITE));
    KT_CHECK(!kg_acl_allowed_any(s, "User:frank", NULL, KG_ACL_TOPIC, KG_ACL_WRITE));
    KT_CHECK(kg_acl_allowed_any(s, "User:zed", NULL, KG_ACL_TOPIC, KG_ACL_READ));
    KT_CHECK(!kg_acl_allowed_any(s, "User:zed", NULL, KG_ACL_TOPIC, KG_ACL_WRITE));
    KT_CHECK(!kg_acl_allowed_any(s, "User:alice", NULL, KG_ACL_GROUP, KG_ACL_WRITE));
    KT_CHECK(kg_acl_allowed_any(s, "User:gina", "10.0.0.1", KG_ACL_TOPIC, KG_ACL_WRITE));
    KT_CHECK(!kg_acl_allowed_any(s, "User:gina", "10.0.0.2", KG_ACL_TOPIC, KG_ACL_WRITE));
    KT_CHECK(!kg_acl_allowed_any(NULL, "User:alice", NULL, KG_ACL_TOPIC, KG_ACL_WRITE));
    kg_acl_release(s);
}

KT_TEST(principals_hosts_and_default_deny)
{
    static const char *const lines[] = {
        "allow User:* * topic literal public Read",
        "allow User:alice 10.0.0.5 topic literal private Read",
        "allow User:alice ::1 topic literal local Read",
        NULL,
    };
    kg_acl_set *s = mkset(lines);
    KT_CHECK(ok(s, "User:anyone", NULL, KG_ACL_TOPIC, "public", KG_ACL_READ));
    KT_CHECK(ok(s, "User:ANONYMOUS", "1.2.3.4", KG_ACL_TOPIC, "public", KG_ACL_READ));
    KT_CHECK(!ok(s, "User:anyone", NULL, KG_ACL_TOPIC, "public", KG_ACL_WRITE));
    KT_CHECK(ok(s, "User:alice", "10.0.0.5", KG_ACL_TOPIC, "private", KG_ACL_READ));
    KT_CHECK(!ok(s, "User:alice", "10.0.0.6", KG_ACL_TOPIC, "private", KG_ACL_READ));
    KT_CHECK(!ok(s, "User:alice", NULL, KG_ACL_TOPIC, "private", KG_ACL_READ));
    KT_CHECK(!ok(s, "User:alicia", "10.0.0.5", KG_ACL_TOPIC, "private", KG_ACL_READ));
    KT_CHECK(ok(s, "User:alice", "::1", KG_ACL_TOPIC, "local", KG_ACL_READ));
    /* No binding at all for the resource: denied. */
    KT_CHECK(!ok(s, "User:alice", "10.0.0.5", KG_ACL_TOPIC, "unknown", KG_ACL_DESCRIBE));
    KT_CHECK(!ok(s, "User:alice", "10.0.0.5", KG_ACL_GROUP, "g", KG_ACL_READ));
    KT_CHECK_EQ_INT(kg_acl_set_count(s), 3);
    kg_acl_release(s);
    /* An empty set and no set deny everything. */
    kg_acl_set *empty = kg_acl_set_new(NULL, 0);
    KT_CHECK(!ok(empty, "User:alice", NULL, KG_ACL_TOPIC, "t", KG_ACL_READ));
    KT_CHECK(!ok(NULL, "User:alice", NULL, KG_ACL_TOPIC, "t", KG_ACL_READ));
    kg_acl_release(empty);
}

KT_TEST(many_literals_binary_search)
{
    kg_acl_binding *b = calloc(2000, sizeof(*b));
    for (int i = 0; i < 2000; i++) {
        char line[128];
        snprintf(line, sizeof(line), "allow User:u%d * topic literal topic-%04d Read", i % 7,
                 (i * 7919) % 2000);
        b[i] = mk(line);
    }
    kg_acl_set *s = kg_acl_set_new(b, 2000);
    for (int i = 0; i < 2000; i += 37) {
        char name[32], principal[32];
        snprintf(name, sizeof(name), "topic-%04d", (i * 7919) % 2000);
        snprintf(principal, sizeof(principal), "User:u%d", i % 7);
        KT_CHECK(ok(s, principal, NULL, KG_ACL_TOPIC, name, KG_ACL_READ));
        snprintf(principal, sizeof(principal), "User:u%d", (i + 1) % 7);
        KT_CHECK(!ok(s, principal, NULL, KG_ACL_TOPIC, name, KG_ACL_READ));
    }
    KT_CHECK(!ok(s, "User:u0", NULL, KG_ACL_TOPIC, "topic-2000", KG_ACL_READ));
    KT_CHECK(!ok(s, "User:u0", NULL, KG_ACL_TOPIC, "", KG_ACL_READ));
    kg_acl_release(s);
    free(b);
}

static int from_json(const char *text, kg_acl_binding out[KG_ACL_N_OPS], char *err, size_t n)
{
    json_t *j = json_loads(text, 0, NULL);
    int rc = kg_acl_bindings_from_json(j, out, err, n);
    json_decref(j);
    return rc;
}

KT_TEST(json_bindings_and_their_errors)
{
    kg_acl_binding out[KG_ACL_N_OPS];
    char err[256];
    KT_CHECK_EQ_INT(from_json("{\"principal\": \"User:alice\", \"permission\": \"ALLOW\","
                              " \"resource_type\": \"Topic\", \"resource_name\": \"orders\","
                              " \"pattern_type\": \"prefixed\", \"operations\": [\"write\","
                              " \"Describe\"]}",
                              out, err, sizeof(err)),
                    2);
    KT_CHECK_EQ_INT(out[0].op, KG_ACL_WRITE);
    KT_CHECK_EQ_INT(out[1].op, KG_ACL_DESCRIBE);
    KT_CHECK_EQ_STR(out[0].host, "*");
    KT_CHECK_EQ_INT(out[0].pattern, KG_ACL_PREFIXED);
    json_t *j = kg_acl_binding_to_json(&out[0]);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "operation")), "Write");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "resource_type")), "topic");
    kg_acl_binding back;
    KT_CHECK_EQ_INT(kg_acl_binding_from_row(j, &back, err, sizeof(err)), 0);
    KT_CHECK(kg_acl_binding_equal(&back, &out[0]));
    json_decref(j);
    /* The cluster needs no name; a host is canonicalized; "operation" takes a list too. */
    KT_CHECK_EQ_INT(from_json("{\"principal\": \"User:svc\", \"permission\": \"allow\","
                              " \"resource_type\": \"cluster\", \"host\": \"0:0::1\","
                              " \"operation\": \"IdempotentWrite,Describe\"}",
                              out, err, sizeof(err)),
                    2);
    KT_CHECK_EQ_STR(out[0].name, KG_ACL_CLUSTER_NAME);
    KT_CHECK_EQ_STR(out[0].host, "::1");
    static const struct {
        const char *json, *why;
    } bad[] = {
        {"[]", "object"},
        {"{\"principal\": \"alice\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"resource_name\": \"t\", \"operation\": \"Read\"}",
         "principal"},
        {"{\"principal\": \"User:\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"resource_name\": \"t\", \"operation\": \"Read\"}",
         "principal"},
        {"{\"permission\": \"allow\", \"resource_type\": \"topic\", \"resource_name\": \"t\","
         " \"operation\": \"Read\"}",
         "principal"},
        {"{\"principal\": \"User:a\", \"permission\": \"maybe\", \"resource_type\": \"topic\","
         " \"resource_name\": \"t\", \"operation\": \"Read\"}",
         "permission"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"broker\","
         " \"resource_name\": \"t\", \"operation\": \"Read\"}",
         "resource_type"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"operation\": \"Read\"}",
         "resource_name"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"resource_name\": \"t\", \"operation\": \"Fly\"}",
         "Fly"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"resource_name\": \"t\"}",
         "operation"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"resource_name\": \"t\", \"operation\": \"Read\", \"operations\": [\"Read\"]}",
         "operation"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"group\","
         " \"resource_name\": \"g\", \"operation\": \"Write\"}",
         "does not apply"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"resource_name\": \"t\", \"operation\": \"Read\", \"host\": \"example.com\"}",
         "host"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"resource_name\": \"*\", \"pattern_type\": \"prefixed\", \"operation\": \"Read\"}",
         "literal"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"cluster\","
         " \"resource_name\": \"c\", \"operation\": \"Alter\"}",
         "kafka-cluster"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"resource_name\": \"t\", \"operation\": \"Read\", \"extra\": 1}",
         "extra"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"resource_name\": \"t\\u0001\", \"operation\": \"Read\"}",
         "resource_name"},
        {"{\"principal\": \"User:a\", \"permission\": \"allow\", \"resource_type\": \"topic\","
         " \"resource_name\": 7, \"operation\": \"Read\"}",
         "resource_name"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = from_json(bad[i].json, out, err, sizeof(err));
        if (!kt_count(rc == -1 && strstr(err, bad[i].why)))
            kt_fail(__FILE__, __LINE__, "bad[%zu]: rc %d, err \"%s\", want \"%s\"", i, rc, err,
                    bad[i].why);
    }
}

KT_TEST(hosts_are_canonical_and_config_lists_checked)
{
    char out[KG_ACL_HOST_MAX];
    KT_CHECK_EQ_INT(kg_acl_canonical_host("0:0:0::1", out), 0);
    KT_CHECK_EQ_STR(out, "::1");
    KT_CHECK_EQ_INT(kg_acl_canonical_host("10.0.0.1", out), 0);
    KT_CHECK_EQ_STR(out, "10.0.0.1");
    KT_CHECK_EQ_INT(kg_acl_canonical_host("*", out), 0);
    KT_CHECK_EQ_INT(kg_acl_canonical_host("10.0.0.256", out), -1);
    KT_CHECK_EQ_INT(kg_acl_canonical_host("localhost", out), -1);
    KT_CHECK_EQ_INT(kg_acl_canonical_host(NULL, out), -1);
    char err[256];
    KT_CHECK_EQ_INT(kg_acl_check_config(NULL, err, sizeof(err)), 0);
    json_t *list = json_loads("[{\"principal\": \"User:a\", \"permission\": \"allow\","
                              " \"resource_type\": \"topic\", \"resource_name\": \"t\","
                              " \"operation\": \"Read\"}, {\"principal\": \"User:a\"}]",
                              0, NULL);
    KT_CHECK_EQ_INT(kg_acl_check_config(list, err, sizeof(err)), -1);
    KT_CHECK(strncmp(err, "acls[1]: ", 9) == 0);
    json_array_remove(list, 1);
    KT_CHECK_EQ_INT(kg_acl_check_config(list, err, sizeof(err)), 0);
    json_decref(list);
    list = json_object();
    KT_CHECK_EQ_INT(kg_acl_check_config(list, err, sizeof(err)), -1);
    json_decref(list);
}

/* ---- the registry over a real store ---- */

static kg_store *fresh_store(char *path, size_t len)
{
    snprintf(path, len, "/tmp/kg_test_acl.%d.db", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -f %s %s-wal %s-shm", path, path, path);
    if (system(cmd) != 0) return NULL;
    char err[256];
    return kg_store_open(path, err, sizeof(err));
}

static void remove_store(const char *path)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -f %s %s-wal %s-shm", path, path, path);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", path);
}

static int count_audit(kg_store *st, const char *type)
{
    json_t *all = kg_store_audit_list(st, 0, 1000);
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e) n +=
        strcmp(json_string_value(json_object_get(e, "type")), type) == 0;
    json_decref(all);
    return n;
}

KT_TEST(store_acl_rows_insert_once_delete_once_audited_in_the_same_transaction)
{
    char path[256];
    kg_store *st = fresh_store(path, sizeof(path));
    KT_CHECK(st != NULL);
    json_t *row =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "principal", "User:a", "host", "*",
                  "resource_type", "topic", "pattern_type", "literal", "resource_name", "t",
                  "operation", "Read", "permission", "allow", "source", "config");
    json_t *audit = json_pack("{s:s}", "actor", "test");
    KT_CHECK_EQ_INT(kg_store_put_acl(st, row, "acl.create", audit), 0);
    KT_CHECK_EQ_INT(kg_store_put_acl(st, row, "acl.create", audit), 1);
    json_t *list = kg_store_list_acls(st);
    KT_CHECK_EQ_INT(json_array_size(list), 1);
    json_t *got = json_array_get(list, 0);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(got, "source")), "config");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(got, "resource_name")), "t");
    KT_CHECK(json_string_value(json_object_get(got, "created_ts")) != NULL);
    json_decref(list);
    /* Another operation is another row; a missing key field is refused. */
    json_object_set_new(row, "operation", json_string("Write"));
    KT_CHECK_EQ_INT(kg_store_put_acl(st, row, "acl.create", audit), 0);
    json_t *partial = json_pack("{s:s}", "principal", "User:a");
    KT_CHECK_EQ_INT(kg_store_put_acl(st, partial, "acl.create", audit), -1);
    KT_CHECK_EQ_INT(kg_store_delete_acl(st, partial, "acl.delete", audit), -1);
    json_decref(partial);
    KT_CHECK_EQ_INT(kg_store_delete_acl(st, row, "acl.delete", audit), 0);
    KT_CHECK_EQ_INT(kg_store_delete_acl(st, row, "acl.delete", audit), 1);
    list = kg_store_list_acls(st);
    KT_CHECK_EQ_INT(json_array_size(list), 1);
    json_decref(list);
    KT_CHECK_EQ_INT(count_audit(st, "acl.create"), 2);
    KT_CHECK_EQ_INT(count_audit(st, "acl.delete"), 1);
    json_decref(row);
    json_decref(audit);
    kg_store_close(st);
    remove_store(path);
}

KT_TEST(registry_round_trip_audit_and_snapshots)
{
    char path[256], err[256];
    kg_store *st = fresh_store(path, sizeof(path));
    KT_CHECK(st != NULL);
    kg_acls *a = kg_acl_registry_new(st);
    KT_CHECK(a != NULL);
    kg_acl_set *before = kg_acl_acquire(a);
    KT_CHECK_EQ_INT(kg_acl_set_count(before), 0);
    kg_acl_binding b[KG_ACL_N_OPS];
    KT_CHECK_EQ_INT(from_json("{\"principal\": \"User:alice\", \"permission\": \"allow\","
                              " \"resource_type\": \"topic\", \"resource_name\": \"orders\","
                              " \"pattern_type\": \"prefixed\", \"operation\": \"Write,Describe\"}",
                              b, err, sizeof(err)),
                    2);
    int created = -1;
    KT_CHECK_EQ_INT(kg_acl_add(a, b, 2, "token:abc", &created, err, sizeof(err)), 0);
    KT_CHECK_EQ_INT(created, 2);
    KT_CHECK_EQ_INT(kg_acl_add(a, b, 2, "token:abc", &created, err, sizeof(err)), 0);
    KT_CHECK_EQ_INT(created, 0); /* already there: not audited twice */
    KT_CHECK_EQ_INT(count_audit(st, "acl.create"), 2);
    /* A held snapshot stays as it was; a new one sees the change. */
    KT_CHECK(!ok(before, "User:alice", NULL, KG_ACL_TOPIC, "orders.x", KG_ACL_WRITE));
    kg_acl_release(before);
    kg_acl_set *now = kg_acl_acquire(a);
    KT_CHECK(ok(now, "User:alice", NULL, KG_ACL_TOPIC, "orders.x", KG_ACL_WRITE));
    kg_acl_release(now);
    kg_acl_filter f = KG_ACL_FILTER_ANY;
    f.principal = "User:alice";
    json_t *list = kg_acl_list(a, &f);
    KT_CHECK_EQ_INT(json_array_size(list), 2);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(list, 0), "source")), "api");
    json_decref(list);
    f.principal = "User:bob";
    list = kg_acl_list(a, &f);
    KT_CHECK_EQ_INT(json_array_size(list), 0);
    json_decref(list);

    /* Restart: the bindings come back from the store. */
    kg_acl_registry_free(a);
    kg_store_close(st);
    st = kg_store_open(path, err, sizeof(err));
    a = kg_acl_registry_new(st);
    now = kg_acl_acquire(a);
    KT_CHECK_EQ_INT(kg_acl_set_count(now), 2);
    KT_CHECK(ok(now, "User:alice", NULL, KG_ACL_TOPIC, "orders", KG_ACL_DESCRIBE));
    kg_acl_release(now);

    /* Removal by filter: only Write goes. */
    kg_acl_filter rm = KG_ACL_FILTER_ANY;
    rm.principal = "User:alice";
    rm.ops = KG_ACL_OP_BIT(KG_ACL_WRITE);
    json_t *removed = NULL;
    KT_CHECK_EQ_INT(kg_acl_remove(a, &rm, "token:abc", &removed), 1);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(removed, 0), "operation")),
                    "Write");
    json_decref(removed);
    KT_CHECK_EQ_INT(kg_acl_remove(a, &rm, "token:abc", NULL), 0);
    now = kg_acl_acquire(a);
    KT_CHECK(!ok(now, "User:alice", NULL, KG_ACL_TOPIC, "orders", KG_ACL_WRITE));
    KT_CHECK(ok(now, "User:alice", NULL, KG_ACL_TOPIC, "orders", KG_ACL_DESCRIBE));
    kg_acl_release(now);
    KT_CHECK_EQ_INT(count_audit(st, "acl.delete"), 1);

    /* Config bindings: added as "config", dropped when the file no longer has them, API ones
     * untouched. */
    json_t *cfg = json_loads("[{\"principal\": \"User:svc\", \"permission\": \"allow\","
                             " \"resource_type\": \"group\", \"resource_name\": \"g\","
                             " \"operations\": [\"Read\", \"Describe\"]}]",
                             0, NULL);
    KT_CHECK_EQ_INT(kg_acl_apply_config(a, cfg, err, sizeof(err)), 0);
    KT_CHECK_EQ_INT(kg_acl_apply_config(a, cfg, err, sizeof(err)), 0); /* idempotent */
    json_decref(cfg);
    list = kg_acl_list(a, NULL);
    KT_CHECK_EQ_INT(json_array_size(list), 3);
    json_decref(list);
    KT_CHECK_EQ_INT(count_audit(st, "acl.create"), 4);
    cfg = json_loads("[{\"principal\": \"User:svc\", \"permission\": \"allow\","
                     " \"resource_type\": \"group\", \"resource_name\": \"g\","
                     " \"operation\": \"Read\"}]",
                     0, NULL);
    KT_CHECK_EQ_INT(kg_acl_apply_config(a, cfg, err, sizeof(err)), 0);
    json_decref(cfg);
    f = (kg_acl_filter)KG_ACL_FILTER_ANY;
    f.resource = KG_ACL_GROUP;
    list = kg_acl_list(a, &f);
    KT_CHECK_EQ_INT(json_array_size(list), 1);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(list, 0), "source")),
                    "config");
    json_decref(list);
    /* A bad entry changes nothing and names itself. */
    cfg = json_loads("[{\"principal\": \"User:svc\"}]", 0, NULL);
    KT_CHECK_EQ_INT(kg_acl_apply_config(a, cfg, err, sizeof(err)), -1);
    KT_CHECK(strstr(err, "acls[0]") != NULL);
    json_decref(cfg);
    KT_CHECK_EQ_INT(kg_acl_apply_config(a, NULL, err, sizeof(err)), 0);
    list = kg_acl_list(a, NULL);
    KT_CHECK_EQ_INT(json_array_size(list), 1); /* alice's Describe (api) */
    json_decref(list);
    json_t *report = NULL;
    KT_CHECK_EQ_INT(kg_store_audit_verify(st, &report), 0);
    json_decref(report);
    kg_acl_registry_free(a);
    kg_store_close(st);
    remove_store(path);
}

/* Readers take snapshots and decide while bindings are added and removed: every snapshot is
 * consistent (the one binding they check is either wholly there or not), nothing is freed under a
 * reader (ASan). */
typedef struct race_arg {
    kg_acls *a;
    atomic_int *stop;
    long decisions;
} race_arg;

static void *race_reader(void *p)
{
    race_arg *r = p;
    while (!atomic_load(r->stop)) {
        kg_acl_set *s = kg_acl_acquire(r->a);
        int n = kg_acl_set_count(s);
        int w = ok(s, "User:alice", NULL, KG_ACL_TOPIC, "orders", KG_ACL_WRITE);
        int d = ok(s, "User:alice", NULL, KG_ACL_TOPIC, "orders", KG_ACL_DESCRIBE);
        if (w != (n > 0) || d != w) abort(); /* Write implies Describe, in every snapshot */
        kg_acl_release(s);
        r->decisions++;
    }
    return NULL;
}

KT_TEST(snapshots_swap_under_concurrent_readers)
{
    char path[256], err[256];
    kg_store *st = fresh_store(path, sizeof(path));
    kg_acls *a = kg_acl_registry_new(st);
    atomic_int stop;
    atomic_init(&stop, 0);
    race_arg args[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        args[i] = (race_arg){a, &stop, 0};
        pthread_create(&th[i], NULL, race_reader, &args[i]);
    }
    kg_acl_binding b = mk("allow User:alice * topic literal orders Write");
    kg_acl_filter f = KG_ACL_FILTER_ANY;
    f.principal = "User:alice";
    for (int round = 0; round < 30; round++) {
        KT_CHECK_EQ_INT(kg_acl_add(a, &b, 1, "test", NULL, err, sizeof(err)), 0);
        KT_CHECK_EQ_INT(kg_acl_remove(a, &f, "test", NULL), 1);
    }
    atomic_store(&stop, 1);
    long total = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        total += args[i].decisions;
    }
    KT_CHECK(total > 0);
    kg_acl_registry_free(a);
    kg_store_close(st);
    remove_store(path);
}

/* ---- configuration: vclusters.NAME.acls and the top-level acls: list ---- */

static kg_config *parse(const char *yaml, char **errors)
{
    size_t n;
    FILE *errs = open_memstream(errors, &n);
    int n_errors = 0;
    kg_config *cfg = kg_config_parse("t.yaml", yaml, strlen(yaml), errs, &n_errors);
    fclose(errs);
    return cfg;
}

#define BASE                                                                                       \
    "clusters:\n"                                                                                  \
    "  east: { bootstrap: 127.0.0.1:9092 }\n"                                                      \
    "vclusters:\n"                                                                                 \
    "  default:\n"                                                                                 \
    "    port: 19092\n"                                                                            \
    "    primary: east\n"

KT_TEST(config_acls_mode_and_bindings)
{
    char *errors = NULL;
    kg_config *cfg = parse(BASE, &errors);
    KT_CHECK(cfg != NULL);
    KT_CHECK_EQ_INT(cfg->vclusters[0].acls_enabled, 0);
    KT_CHECK(cfg->acl_bindings == NULL);
    kg_config_free(cfg);
    free(errors);

    cfg = parse(BASE "    acls: enabled\n"
                     "acls:\n"
                     "  - { principal: 'User:alice', permission: allow, resource_type: topic,\n"
                     "      resource_name: orders, pattern_type: prefixed,\n"
                     "      operations: [Write, Describe] }\n"
                     "  - principal: 'User:*'\n"
                     "    permission: deny\n"
                     "    resource_type: group\n"
                     "    resource_name: '*'\n"
                     "    operation: All\n",
                &errors);
    KT_CHECK(cfg != NULL);
    if (!cfg) fprintf(stderr, "%s", errors);
    free(errors);
    if (cfg) {
        KT_CHECK_EQ_INT(cfg->vclusters[0].acls_enabled, 1);
        KT_CHECK_EQ_INT(json_array_size(cfg->acl_bindings), 2);
        KT_CHECK_EQ_INT(cfg->acl_binding_lines[1], 12);
        kg_acl_binding b[KG_ACL_N_OPS];
        char err[256];
        KT_CHECK_EQ_INT(
            kg_acl_bindings_from_json(json_array_get(cfg->acl_bindings, 0), b, err, sizeof(err)),
            2);
        KT_CHECK_EQ_INT(
            kg_acl_bindings_from_json(json_array_get(cfg->acl_bindings, 1), b, err, sizeof(err)),
            1);
        KT_CHECK_EQ_INT(b[0].permission, KG_ACL_DENY);
        kg_config_free(cfg);
    }

    cfg = parse(BASE "    acls: on\n", &errors);
    KT_CHECK(cfg == NULL);
    KT_CHECK(errors && strstr(errors, "vclusters.default.acls: must be enabled or disabled"));
    free(errors);
    cfg = parse(BASE "acls: { principal: x }\n", &errors);
    KT_CHECK(cfg == NULL);
    KT_CHECK(errors && strstr(errors, "acls: expected a list"));
    free(errors);
    cfg = parse(BASE "acls: [ 'User:alice' ]\n", &errors);
    KT_CHECK(cfg == NULL);
    KT_CHECK(errors && strstr(errors, "acls[0]: expected a binding"));
    free(errors);
}

KT_MAIN()
