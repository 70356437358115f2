/* kg_log's two line formats: text unchanged, JSON one complete object per line whatever the
 * message holds (quotes, control characters, bytes that are not UTF-8, too much text). */
#include "kt.h"
#include "util/kg_log.h"

#include <jansson.h>
#include <string.h>

static const struct timeval when = {.tv_sec = 1700000000, .tv_usec = 123456};

/* The line rendered in JSON, parsed back; NULL (and a failed check) when it does not parse. */
static json_t *json_line(char *buf, size_t cap, enum kg_log_level level, const char *msg)
{
    size_t n = kg_log_render(buf, cap, KG_LOG_JSON, level, &when, msg);
    KT_CHECK_EQ_INT(n, strlen(buf));
    KT_CHECK(n > 0 && buf[n - 1] == '\n');
    KT_CHECK(memchr(buf, '\n', n - 1) == NULL); /* one line */
    json_error_t err;
    json_t *j = json_loadb(buf, n, 0, &err);
    if (!j) fprintf(stderr, "not JSON (%s): %s", err.text, buf);
    KT_CHECK(j != NULL);
    return j;
}

KT_TEST(text_format_is_timestamp_level_message)
{
    char buf[256];
    kg_log_render(buf, sizeof(buf), KG_LOG_TEXT, KG_LOG_WARN, &when, "cluster east down");
    KT_CHECK_EQ_STR(buf, "2023-11-14T22:13:20.123Z warn  cluster east down\n");
}

KT_TEST(json_format_has_ts_level_msg)
{
    char buf[256];
    json_t *j = json_line(buf, sizeof(buf), KG_LOG_ERROR, "vcluster default: switched");
    if (!j) return;
    KT_CHECK_EQ_INT(json_object_size(j), 3);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "ts")), "2023-11-14T22:13:20.123Z");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "level")), "error");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "msg")), "vcluster default: switched");
    json_decref(j);
}

KT_TEST(json_escapes_quotes_controls_and_keeps_utf8)
{
    char buf[256];
    const char *msg = "client \"a\\b\" sent\n\ttab \x01\x7f \xc3\xa9t\xc3\xa9 \xe2\x82\xac";
    json_t *j = json_line(buf, sizeof(buf), KG_LOG_INFO, msg);
    if (!j) return;
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "msg")), msg);
    json_decref(j);
}

KT_TEST(json_replaces_bytes_that_are_not_utf8)
{
    char buf[256];
    /* a lone continuation byte, a cut sequence, an overlong '/', a surrogate, a bad lead byte */
    json_t *j =
        json_line(buf, sizeof(buf), KG_LOG_INFO, "a\x80 b\xe2\x82 c\xc0\xaf d\xed\xa0\x80 e\xff");
    if (!j) return;
    const char *msg = json_string_value(json_object_get(j, "msg"));
    KT_CHECK(msg && strncmp(msg, "a\xef\xbf\xbd b\xef\xbf\xbd", 9) == 0);
    KT_CHECK(msg && strstr(msg, " e\xef\xbf\xbd") != NULL);
    json_decref(j);
}

KT_TEST(json_cut_at_capacity_stays_one_object)
{
    char msg[3000];
    /* escapes of every length at every offset: the cut never splits one */
    for (size_t i = 0; i + 1 < sizeof(msg); i++)
        msg[i] = "\"x\x01\xc3\xa9"[i % 5];
    msg[sizeof(msg) - 1] = '\0';
    for (size_t cap = 64; cap < 160; cap++) {
        char buf[160];
        json_t *j = json_line(buf, cap, KG_LOG_DEBUG, msg);
        if (!j) return;
        KT_CHECK(strlen(buf) < cap);
        json_decref(j);
    }
}

KT_TEST(formats_parse_by_name)
{
    enum kg_log_format f = KG_LOG_TEXT;
    KT_CHECK_EQ_INT(kg_log_parse_format("json", &f), 0);
    KT_CHECK_EQ_INT(f, KG_LOG_JSON);
    KT_CHECK_EQ_INT(kg_log_parse_format("text", &f), 0);
    KT_CHECK_EQ_INT(f, KG_LOG_TEXT);
    KT_CHECK_EQ_INT(kg_log_parse_format("xml", &f), -1);
}

KT_MAIN()
