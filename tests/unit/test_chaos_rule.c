/* Chaos rules from JSON: what is accepted and how it is normalized, and every refusal naming
 * the field that is wrong. */
#include "util/kg_duration.h"
#include "kt.h"

#include <jansson.h>

#include <signal.h>
#include <unistd.h>

#include "chaos/kg_chaos_internal.h"

static kg_chaos_rule *parse(const char *text, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j) {
        fprintf(stderr, "bad test JSON %s: %s\n", text, jerr.text);
        abort();
    }
    kg_chaos_rule *r = kg_chaos_rule_parse(j, false, 1000000, err, errlen);
    json_decref(j);
    return r;
}

/* The rule is refused and the message contains WANT (usually the quoted field name). */
static void check_refused(const char *text, const char *want)
{
    char err[512] = "";
    kg_chaos_rule *r = parse(text, err, sizeof(err));
    if (!kt_count(r == NULL && strstr(err, want) != NULL))
        kt_fail(__FILE__, __LINE__, "rule %s: expected refusal mentioning %s, got %s", text, want,
                r ? "(accepted)" : err);
    kg_chaos_rule_unref(r);
}

KT_TEST(broken_brokers_rule_parses_scope_and_errors)
{
    char err[256];
    kg_chaos_rule *r =
        parse("{\"type\": \"broken-brokers\", \"vcluster\": \"payments\", \"topic\": \"orders.*\","
              " \"rate\": 10, \"for\": \"15m\", \"errors\": {\"produce\": \"NOT_ENOUGH_REPLICAS\","
              " \"fetch\": \"NOT_LEADER_OR_FOLLOWER\"}}",
              err, sizeof(err));
    KT_CHECK(r != NULL);
    if (!r) return;
    KT_CHECK_EQ_INT(r->type, KG_CHAOS_BROKEN_BROKERS);
    KT_CHECK_EQ_STR(r->vcluster, "payments");
    KT_CHECK_EQ_INT(r->rate_ppm, 100000);
    KT_CHECK_EQ_INT(r->expires_ms, 1000000 + 15 * 60 * 1000);
    KT_CHECK_EQ_INT(r->produce_error, 19);
    KT_CHECK_EQ_INT(r->fetch_error, 6);
    KT_CHECK(!r->lost_ack);
    KT_CHECK(kg_api_bits_has(&r->apis, 0));
    KT_CHECK(kg_api_bits_has(&r->apis, 1));
    KT_CHECK(!kg_api_bits_has(&r->apis, 2));
    /* Anchored: the whole topic name must match. */
    KT_CHECK(kg_chaos_match_topic(r, kp_str_c("orders.eu")));
    KT_CHECK(kg_chaos_match_topic(r, kp_str_c("orders")));
    KT_CHECK(!kg_chaos_match_topic(r, kp_str_c("old-orders")));
    KT_CHECK(!kg_chaos_match_topic(r, KP_STR_NULL));

    kg_chaos_rule_finish(r, "r-00000001", false);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(r->json, "id")), "r-00000001");
    KT_CHECK(json_object_get(r->json, "for") == NULL);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(r->json, "expires_at")),
                    "1970-01-01T00:31:40.000Z");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(r->json, "source")), "api");
    kg_chaos_rule_unref(r);
}

KT_TEST(api_field_narrows_and_defaults_apply)
{
    char err[256];
    kg_chaos_rule *r =
        parse("{\"type\": \"broken-brokers\", \"api\": [\"produce\"]}", err, sizeof(err));
    KT_CHECK(r != NULL);
    if (r) {
        KT_CHECK(kg_api_bits_has(&r->apis, 0));
        KT_CHECK(!kg_api_bits_has(&r->apis, 1));
        KT_CHECK_EQ_INT(r->rate_ppm, 1000000);
        KT_CHECK_EQ_INT(r->expires_ms, 0);
    }
    kg_chaos_rule_unref(r);

    r = parse("{\"type\": \"leader-election\", \"api\": [2, \"OffsetForLeaderEpoch\"], \"rate\": "
              "0.5}",
              err, sizeof(err));
    KT_CHECK(r != NULL);
    if (r) {
        KT_CHECK(kg_api_bits_has(&r->apis, 2));
        KT_CHECK(kg_api_bits_has(&r->apis, 23));
        KT_CHECK(!kg_api_bits_has(&r->apis, 0));
        KT_CHECK_EQ_INT(r->n_errors, 3);
        KT_CHECK_EQ_INT(r->rate_ppm, 5000);
    }
    kg_chaos_rule_unref(r);

    r = parse("{\"type\": \"corrupt-records\"}", err, sizeof(err));
    KT_CHECK(r != NULL);
    if (r) {
        KT_CHECK(r->on_response); /* fetch */
        KT_CHECK(kg_api_bits_has(&r->apis, 1));
        KT_CHECK(!kg_api_bits_has(&r->apis, 0));
        KT_CHECK_EQ_INT(r->bytes, 8);
        KT_CHECK(r->crc_valid);
        KT_CHECK(!r->overwrite);
    }
    kg_chaos_rule_unref(r);

    r = parse("{\"type\": \"latency\", \"delay_ms\": 250}", err, sizeof(err));
    KT_CHECK(r != NULL);
    if (r) {
        KT_CHECK_EQ_INT(r->min_us, 250000);
        KT_CHECK(!r->on_response);
        KT_CHECK(kg_api_bits_has(&r->apis, 18)); /* every API, ApiVersions included */
    }
    kg_chaos_rule_unref(r);
}

KT_TEST(every_type_with_its_parameters_is_accepted)
{
    const char *ok[] = {
        "{\"type\": \"broken-brokers\", \"mode\": \"lost-ack\", \"errors\": {\"produce\": "
        "\"REQUEST_TIMED_OUT\"}}",
        "{\"type\": \"leader-election\", \"errors\": [\"LEADER_NOT_AVAILABLE\"], \"topic\": \"t\"}",
        "{\"type\": \"latency\", \"delay_ms\": 5, \"on\": \"response\", \"client_id\": \"app-.*\"}",
        "{\"type\": \"slow-broker\", \"broker\": 2, \"min_ms\": 10, \"max_ms\": 50}",
        "{\"type\": \"slow-clients\", \"min_ms\": 1, \"max_ms\": 2, \"apis\": [\"fetch\"]}",
        "{\"type\": \"corrupt-records\", \"on\": \"produce\", \"bytes\": 3, \"how\": "
        "\"overwrite\", \"crc\": \"invalid\"}",
        "{\"type\": \"duplicate-records\", \"on\": \"produce\", \"group\": \"billing\"}",
        "{\"type\": \"invalid-schema-id\", \"schema_id\": 12345}",
        "{\"type\": \"auth-failure\", \"principal\": \"User:alice\"}",
        "{\"type\": \"down\", \"vcluster\": \"payments\"}",
        "{\"type\": \"reset\", \"after_ms\": 100}",
        "{\"type\": \"timeout\", \"direction\": \"upstream\"}",
        "{\"type\": \"bandwidth\", \"kib_per_s\": 64, \"direction\": \"downstream\"}",
        "{\"type\": \"slicer\", \"bytes\": 16, \"delay_us\": 500}",
        "{\"type\": \"limit-data\", \"bytes\": 4096}",
        "{\"type\": \"latency\", \"delay_ms\": 1, \"expires_at\": \"2999-01-01T00:00:00Z\","
        " \"description\": \"demo\", \"id\": \"my-rule\"}",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char err[512] = "";
        kg_chaos_rule *r = parse(ok[i], err, sizeof(err));
        if (!kt_count(r != NULL)) kt_fail(__FILE__, __LINE__, "refused %s: %s", ok[i], err);
        kg_chaos_rule_unref(r);
    }
}

KT_TEST(tcp_rules_carry_their_fault_and_direction)
{
    char err[256];
    kg_chaos_rule *r = parse("{\"type\": \"bandwidth\", \"kib_per_s\": 64, \"direction\": "
                             "\"downstream\"}",
                             err, sizeof(err));
    KT_CHECK(r && r->tcp.faults == KG_CHAOS_TCP_BANDWIDTH);
    KT_CHECK(r && r->tcp.directions == KG_CHAOS_DOWNSTREAM && r->tcp.bandwidth_kib == 64);
    KT_CHECK(r && !kg_api_bits_any(&r->apis));
    kg_chaos_rule_unref(r);
    r = parse("{\"type\": \"slicer\"}", err, sizeof(err));
    KT_CHECK(r && r->tcp.faults == KG_CHAOS_TCP_SLICER && r->tcp.slice_bytes == 64);
    KT_CHECK(r && r->tcp.directions == (KG_CHAOS_UPSTREAM | KG_CHAOS_DOWNSTREAM));
    kg_chaos_rule_unref(r);
}

KT_TEST(each_refusal_names_the_field)
{
    check_refused("[]", "JSON object");
    check_refused("{}", "\"type\" is required");
    check_refused("{\"type\": \"meteor-strike\"}", "unknown fault type \"meteor-strike\"");
    check_refused("{\"type\": 7}", "field \"type\"");
    check_refused("{\"type\": \"latency\", \"delay_ms\": 5, \"colour\": 1}",
                  "unknown field \"colour\"");
    check_refused("{\"type\": \"latency\", \"delay_ms\": 5, \"errors\": {}}",
                  "unknown field \"errors\" for type latency");
    check_refused("{\"type\": \"latency\", \"delay_ms\": 5, \"created_at\": \"x\"}",
                  "unknown field \"created_at\"");
    check_refused("{\"type\": \"latency\"}", "\"delay_ms\" is required");
    check_refused("{\"type\": \"latency\", \"delay_ms\": -1}", "\"delay_ms\"");
    check_refused("{\"type\": \"latency\", \"delay_ms\": \"5\"}", "\"delay_ms\"");
    check_refused("{\"type\": \"latency\", \"delay_ms\": 5, \"on\": \"sideways\"}", "\"on\"");
    /* rates */
    check_refused("{\"type\": \"down\", \"rate\": 101}", "\"rate\"");
    check_refused("{\"type\": \"down\", \"rate\": -0.1}", "\"rate\"");
    check_refused("{\"type\": \"down\", \"rate\": \"10%\"}", "\"rate\"");
    /* regexes */
    check_refused("{\"type\": \"broken-brokers\", \"topic\": \"orders[\"}",
                  "field \"topic\" is not a valid regular expression");
    check_refused("{\"type\": \"latency\", \"delay_ms\": 1, \"client_id\": \"(a\"}",
                  "field \"client_id\" is not a valid regular expression");
    check_refused("{\"type\": \"down\", \"vcluster\": \"\"}", "\"vcluster\"");
    check_refused("{\"type\": \"down\", \"group\": 5}", "\"group\"");
    /* durations and times */
    check_refused("{\"type\": \"down\", \"for\": \"15 minutes\"}", "field \"for\"");
    check_refused("{\"type\": \"down\", \"for\": \"0s\"}", "field \"for\"");
    check_refused("{\"type\": \"down\", \"for\": 15}", "field \"for\"");
    check_refused("{\"type\": \"down\", \"for\": \"m\"}", "field \"for\"");
    check_refused("{\"type\": \"down\", \"expires_at\": \"tomorrow\"}", "field \"expires_at\"");
    check_refused("{\"type\": \"down\", \"expires_at\": \"1969-01-01T00:00:00Z\"}",
                  "\"expires_at\" is in the past");
    check_refused("{\"type\": \"down\", \"for\": \"1m\", \"expires_at\": \"2999-01-01T00:00:00Z\"}",
                  "\"for\"");
    /* errors an API cannot return */
    check_refused(
        "{\"type\": \"broken-brokers\", \"errors\": {\"produce\": \"OFFSET_OUT_OF_RANGE\"}}",
        "field \"errors.produce\": Produce cannot return OFFSET_OUT_OF_RANGE");
    check_refused(
        "{\"type\": \"broken-brokers\", \"errors\": {\"fetch\": \"NOT_ENOUGH_REPLICAS\"}}",
        "field \"errors.fetch\": Fetch cannot return NOT_ENOUGH_REPLICAS");
    check_refused("{\"type\": \"broken-brokers\", \"errors\": {\"fetch\": \"NO_SUCH_THING\"}}",
                  "field \"errors.fetch\": unknown Kafka error \"NO_SUCH_THING\"");
    check_refused("{\"type\": \"broken-brokers\", \"errors\": {\"metadata\": \"NONE\"}}",
                  "field \"errors.metadata\"");
    check_refused("{\"type\": \"broken-brokers\", \"errors\": {\"produce\": \"NONE\"}}",
                  "\"errors.produce\"");
    check_refused("{\"type\": \"broken-brokers\", \"errors\": [\"NOT_LEADER_OR_FOLLOWER\"]}",
                  "field \"errors\" must be an object");
    check_refused("{\"type\": \"broken-brokers\", \"mode\": \"lost-ack\", \"errors\": {\"fetch\": "
                  "\"NOT_LEADER_OR_FOLLOWER\"}}",
                  "field \"mode\"");
    check_refused("{\"type\": \"broken-brokers\", \"mode\": \"maybe\"}", "field \"mode\"");
    check_refused("{\"type\": \"leader-election\", \"errors\": [\"NOT_ENOUGH_REPLICAS\"]}",
                  "field \"errors[0]\": NOT_ENOUGH_REPLICAS is not a leadership error");
    check_refused("{\"type\": \"leader-election\", \"errors\": []}", "field \"errors\"");
    /* scope */
    check_refused("{\"type\": \"broken-brokers\", \"api\": [\"Metadata\"]}",
                  "field \"api\": broken-brokers does not act on any of these APIs");
    check_refused("{\"type\": \"latency\", \"delay_ms\": 1, \"api\": [\"Frobnicate\"]}",
                  "field \"api\": unknown API \"Frobnicate\"");
    check_refused("{\"type\": \"latency\", \"delay_ms\": 1, \"api\": []}", "field \"api\"");
    check_refused("{\"type\": \"down\", \"broker\": -2}", "field \"broker\"");
    check_refused("{\"type\": \"down\", \"topic\": \"x\"}", "field \"topic\": down acts on whole "
                                                            "connections");
    check_refused("{\"type\": \"slow-broker\", \"min_ms\": 1, \"max_ms\": 2}", "field \"broker\"");
    check_refused("{\"type\": \"slow-broker\", \"broker\": 1, \"min_ms\": 5, \"max_ms\": 2}",
                  "field \"min_ms\"");
    check_refused("{\"type\": \"slow-clients\", \"max_ms\": 2, \"apis\": [\"metadata\"]}",
                  "field \"apis[0]\"");
    check_refused("{\"type\": \"corrupt-records\", \"how\": \"gently\"}", "field \"how\"");
    check_refused("{\"type\": \"corrupt-records\", \"crc\": \"maybe\"}", "field \"crc\"");
    check_refused("{\"type\": \"corrupt-records\", \"bytes\": 0}", "field \"bytes\"");
    check_refused("{\"type\": \"corrupt-records\", \"on\": \"metadata\"}", "field \"on\"");
    check_refused("{\"type\": \"invalid-schema-id\"}", "field \"schema_id\" is required");
    check_refused("{\"type\": \"bandwidth\"}", "field \"kib_per_s\" is required");
    check_refused("{\"type\": \"limit-data\", \"direction\": \"up\"}", "field \"direction\"");
    check_refused("{\"type\": \"down\", \"id\": \"has space\"}", "field \"id\"");
}

static void parse_hung(int sig)
{
    static const char msg[] = "  test_chaos_rule: a rule did not parse within 10 s\n";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(1);
}

/* check_refused() under a 10 s alarm: a pattern that compiles for minutes fails the binary. */
static void check_refused_bounded(const char *text, const char *want)
{
    struct sigaction hung = {.sa_handler = parse_hung}, saved;
    sigemptyset(&hung.sa_mask);
    sigaction(SIGALRM, &hung, &saved);
    alarm(10);
    check_refused(text, want);
    alarm(0);
    sigaction(SIGALRM, &saved, NULL);
}

/* glibc's regcomp takes exponential time on loops around what can match the empty string, and
 * copies what a repetition applies to: fuzz_chaos_rule found ".*+++...+" taking 34 s (and
 * gigabytes) to compile, then ".*++++++h-fa*il5au*an+m" (tests/fuzz/corpus/fuzz_chaos_rule/
 * slow-regex-*.json). Both kinds are refused; ordinary name patterns, even long counted ones,
 * still compile. */
KT_TEST(regex_patterns_that_compile_slowly_are_refused)
{
    const char *too_large = "the regular expression is too large once its repetitions are "
                            "expanded (more than 1000 elements)";
    const char *empty_loop = "the regular expression repeats something that can match the "
                             "empty string";
    check_refused_bounded("{\"type\": \"broken-brokers\", \"vcluster\": \"default\", \"topic\": "
                          "\".*+++++++++++++++++++++++++++++++\", \"rate\": -10, \"errors\": "
                          "{\"produce\": \"NG\"}, \"for\": \"14m\"}",
                          empty_loop);
    check_refused_bounded("{\"type\": \"broken-brokers\", \"vcluster\": \"defat\", \"topic\": "
                          "\".*++++++h-fa*il5au*an+m\"}",
                          empty_loop);
    static const char *const empty_loops[] = {"(a*)*", "(a|)+",     "(a?){30}", "(()*)",
                                              "(^)*",  "x(b|c*)+y", "a**",      "(a{0,2}){2,}"};
    for (size_t i = 0; i < sizeof(empty_loops) / sizeof(empty_loops[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json), "{\"type\": \"latency\", \"delay_ms\": 1, \"topic\": \"%s\"}",
                 empty_loops[i]);
        check_refused_bounded(json, empty_loop);
    }
    /* The pattern is compiled as ^(PATTERN)$: a ")" of its own would close that group. */
    check_refused_bounded("{\"type\": \"broken-brokers\", \"topic\": \")+++++m\"}",
                          "field \"topic\": unmatched ')' in the regular expression");
    check_refused_bounded("{\"type\": \"down\", \"client_id\": \"a)|(.*\"}",
                          "field \"client_id\": unmatched ')'");
    check_refused_bounded("{\"type\": \"down\", \"client_id\": \"(.{1,255}){1,100}\"}", too_large);
    check_refused_bounded("{\"type\": \"latency\", \"delay_ms\": 1, \"topic\": "
                          "\"((a{1,50}){1,50}){1,10}\"}",
                          too_large);
    check_refused_bounded("{\"type\": \"latency\", \"delay_ms\": 1, \"topic\": \"a{1001}\"}",
                          too_large);
    check_refused_bounded("{\"type\": \"latency\", \"delay_ms\": 1, \"topic\": \"[ab]{2,}{999}\"}",
                          too_large);
    check_refused_bounded("{\"type\": \"latency\", \"delay_ms\": 1, \"topic\": \"(a)\\\\1\"}",
                          "field \"topic\": back-references (\\1) are not supported");
    check_refused_bounded(
        "{\"type\": \"latency\", \"delay_ms\": 1, \"topic\": "
        "\"((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))\"}",
        "field \"topic\": the regular expression nests more than 32 groups");

    static const char *const fine[] = {"orders\\\\.(eu|us)-[0-9]+",
                                       "[a-z0-9._-]{1,249}",
                                       "[[:alnum:]]+(-[[:alnum:]]+)*",
                                       "[]a-z]{2,5}x?y*",
                                       "a{1000}",
                                       "(ab|cd){10}(ef){0,5}",
                                       "\\\\{x\\\\}+",
                                       "a{,5}b",
                                       "(a*)?",
                                       "([a-z]+\\\\.)+[a-z]+",
                                       "(a*){1}",
                                       "((a+b)+c)+",
                                       "(x|y*z)+",
                                       "[*+]+",
                                       "a\\\\)b"};
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        char json[256], err[512] = "";
        snprintf(json, sizeof(json), "{\"type\": \"latency\", \"delay_ms\": 1, \"topic\": \"%s\"}",
                 fine[i]);
        kg_chaos_rule *r = parse(json, err, sizeof(err));
        if (!kt_count(r != NULL)) kt_fail(__FILE__, __LINE__, "topic %s refused: %s", fine[i], err);
        kg_chaos_rule_unref(r);
    }
    char err[512];
    kg_chaos_rule *r =
        parse("{\"type\": \"latency\", \"delay_ms\": 1, \"topic\": \"[a-z]{1,3}\\\\.x\"}", err,
              sizeof(err));
    KT_CHECK(r != NULL);
    if (!r) return;
    KT_CHECK(kg_chaos_match_topic(r, kp_str_c("abc.x")));
    KT_CHECK(!kg_chaos_match_topic(r, kp_str_c("abcd.x")));
    kg_chaos_rule_unref(r);
}

KT_TEST(durations_and_times_parse)
{
    int64_t ms;
    KT_CHECK(kg_duration_parse("15m", &ms) == 0 && ms == 900000);
    KT_CHECK(kg_duration_parse("1h30m", &ms) == 0 && ms == 5400000);
    KT_CHECK(kg_duration_parse("250ms", &ms) == 0 && ms == 250);
    KT_CHECK(kg_duration_parse("1.5s", &ms) == 0 && ms == 1500);
    KT_CHECK(kg_duration_parse("2d", &ms) == 0 && ms == 172800000);
    KT_CHECK(kg_duration_parse("", &ms) != 0);
    KT_CHECK(kg_duration_parse("10", &ms) != 0);
    KT_CHECK(kg_duration_parse("10x", &ms) != 0);
    KT_CHECK(kg_duration_parse("-5s", &ms) != 0);
    KT_CHECK(kg_time_parse("2026-05-01T12:00:00Z", &ms) == 0 && ms == 1777636800000LL);
    KT_CHECK(kg_time_parse("2026-05-01T14:00:00.250+02:00", &ms) == 0 && ms == 1777636800250LL);
    KT_CHECK(kg_time_parse("2026-05-01 12:00:00", &ms) != 0);
    KT_CHECK(kg_time_parse("2026-13-01T12:00:00Z", &ms) != 0);
    char buf[40];
    kg_time_format_ms(1777636800250LL, buf, sizeof(buf));
    KT_CHECK_EQ_STR(buf, "2026-05-01T12:00:00.250Z");
}

KT_TEST(error_table_names_and_sets)
{
    int16_t code;
    KT_CHECK(kg_chaos_error_code("NOT_ENOUGH_REPLICAS", &code) == 0 && code == 19);
    KT_CHECK(kg_chaos_error_code("not_leader_for_partition", &code) == 0 && code == 6);
    KT_CHECK(kg_chaos_error_code("UNKNOWN_SERVER_ERROR", &code) == 0 && code == -1);
    KT_CHECK(kg_chaos_error_code("NOPE", &code) != 0);
    KT_CHECK_EQ_STR(kg_chaos_error_name(56), "KAFKA_STORAGE_ERROR");
    int16_t min_version = -1;
    KT_CHECK(kg_chaos_error_allowed(0, 56, &min_version) && min_version == 4);
    KT_CHECK(kg_chaos_error_allowed(1, 56, &min_version) && min_version == 6);
    KT_CHECK(kg_chaos_error_allowed(1, 1, NULL));  /* OFFSET_OUT_OF_RANGE on fetch */
    KT_CHECK(!kg_chaos_error_allowed(0, 1, NULL)); /* ...never on produce */
    KT_CHECK(!kg_chaos_error_allowed(3, 6, NULL)); /* Metadata has no such table */
    KT_CHECK(kg_chaos_error_is_leadership(5));
    KT_CHECK(!kg_chaos_error_is_leadership(19));
}

KT_MAIN()
