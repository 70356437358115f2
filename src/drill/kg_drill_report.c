/* A drill's result as people read it: the per-client table, then the six fields of an
 * audit-ready report. Everything printed comes from the result JSON, so the Markdown and the
 * JSON can never disagree. */
#include <stdio.h>
#include <string.h>

#include "drill/kg_drill.h"

static const char *text(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : "-";
}

static void print_ms(FILE *out, const json_t *v)
{
    if (json_is_number(v))
        fprintf(out, " %.0f ms |", json_number_value(v));
    else
        fputs(" never |", out);
}

static void step_title(const json_t *st, char *buf, size_t len)
{
    if (strcmp(text(st, "action"), "chaos") == 0)
        snprintf(buf, len, "after chaos %s", text(json_object_get(st, "rule"), "type"));
    else
        snprintf(buf, len, "%s to %s", text(st, "action"), text(st, "to"));
}

static void print_client(FILE *out, const json_t *c)
{
    int producer = strcmp(text(c, "kind"), "producer") == 0;
    fprintf(out, "| %s |", text(c, "client"));
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(c, "rto_ms"), k, v) print_ms(out, v);
    fprintf(out, " %lld %s | %lld |",
            (long long)json_integer_value(json_object_get(c, producer ? "acked" : "received")),
            producer ? "acked" : "received",
            (long long)json_integer_value(json_object_get(c, "errors")));
    const char *name;
    json_object_foreach(json_object_get(c, "error_names"), name, v)
        fprintf(out, " %s x%lld", name, (long long)json_integer_value(v));
    fputs(" |\n", out);
}

static void print_data(FILE *out, const json_t *result)
{
    const json_t *data = json_object_get(result, "data");
    json_int_t acked = json_integer_value(json_object_get(data, "acked"));
    if (json_is_integer(json_object_get(data, "lost")))
        fprintf(out, "\nAcknowledged: %lld; lost (not on the active side at the end): %lld",
                (long long)acked, (long long)json_integer_value(json_object_get(data, "lost")));
    else
        fprintf(out, "\nAcknowledged: %lld; lost: not measured (%s)", (long long)acked,
                text(result, "verification_error"));
    fprintf(out, "; duplicates: %lld; reordered: %lld; acknowledged but never received: %lld\n",
            (long long)json_integer_value(json_object_get(data, "duplicates")),
            (long long)json_integer_value(json_object_get(data, "reordered")),
            (long long)json_integer_value(json_object_get(data, "not_received")));
    size_t k;
    json_t *st;
    json_array_foreach(json_object_get(result, "steps"), k, st)
    {
        char title[96];
        step_title(st, title, sizeof(title));
        if (json_is_number(json_object_get(st, "fault_ms")))
            fprintf(out, "%s: answered %lld, fault held %.0f ms, %lld faults injected", title,
                    (long long)json_integer_value(json_object_get(st, "status")),
                    json_number_value(json_object_get(st, "fault_ms")),
                    (long long)json_integer_value(
                        json_object_get(json_object_get(st, "result"), "injected")));
        else
            fprintf(out, "%s: answered %lld in %.1f ms", title,
                    (long long)json_integer_value(json_object_get(st, "status")),
                    json_number_value(json_object_get(st, "switch_ms")));
        if (json_is_integer(json_object_get(st, "lost")))
            fprintf(out, ", lost %lld acknowledged records (RPO %.0f ms)",
                    (long long)json_integer_value(json_object_get(st, "lost")),
                    json_number_value(json_object_get(st, "rpo_ms")));
        fputc('\n', out);
    }
}

void kg_drill_print_table(FILE *out, const json_t *result)
{
    const json_t *steps = json_object_get(result, "steps");
    fputs("| client |", out);
    size_t k;
    json_t *st;
    json_array_foreach(steps, k, st)
    {
        char title[96];
        step_title(st, title, sizeof(title));
        fprintf(out, " RTO %s |", title);
    }
    fputs(" records | errors | error names |\n|---|", out);
    for (k = 0; k < json_array_size(steps); k++)
        fputs("---|", out);
    fputs("---|---|---|\n", out);
    json_t *c;
    json_array_foreach(json_object_get(result, "clients"), k, c) print_client(out, c);
    print_data(out, result);
}

static void print_configuration(FILE *out, const json_t *cfg)
{
    fprintf(out,
            "Virtual cluster `%s` through `%s`, topic `%s`; producers: %lld at %lld records/s "
            "each; consumers: %lld in group `%s`; clients: librdkafka %s; %lld ms before, between "
            "and after the switches.\n",
            text(cfg, "vcluster"), text(cfg, "bootstrap"), text(cfg, "topic"),
            (long long)json_integer_value(json_object_get(cfg, "producers")),
            (long long)json_integer_value(json_object_get(cfg, "rate")),
            (long long)json_integer_value(json_object_get(cfg, "consumers")), text(cfg, "group"),
            text(cfg, "client_library"),
            (long long)json_integer_value(json_object_get(cfg, "between_ms")));
}

static void print_expectations(FILE *out, const json_t *list)
{
    if (json_array_size(list) == 0) {
        fputs("No expectations were stated.\n", out);
        return;
    }
    fputs("| expectation | expected | observed | result |\n|---|---|---|---|\n", out);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const json_t *obs = json_object_get(e, "observed");
        fprintf(out, "| %s | %lld |", text(e, "name"),
                (long long)json_integer_value(json_object_get(e, "expected")));
        if (json_is_number(obs))
            fprintf(out, " %.0f |", json_number_value(obs));
        else
            fputs(" never / not measured |", out);
        fprintf(out, " %s |\n", text(e, "result"));
    }
}

void kg_drill_print_md(FILE *out, const json_t *result)
{
    fprintf(out, "# Drill: %s\n\nRun `%s`, outcome: **%s**.\n\n", text(result, "name"),
            text(result, "run"), text(result, "outcome"));
    fprintf(out, "## 1. Hypothesis\n\n%s\n\n## 2. Test configuration\n\n",
            text(result, "hypothesis"));
    print_configuration(out, json_object_get(result, "configuration"));
    fputs("\n## 3. Observed behaviour\n\n", out);
    kg_drill_print_table(out, result);
    fputs("\n## 4. Delta from expected\n\n", out);
    print_expectations(out, json_object_get(result, "expectations"));
    fputs("\n## 5. Remediation\n\nTo be recorded by the team.\n\n## 6. Re-test result\n\n"
          "To be recorded: run the drill again after the remediation.\n",
          out);
}
