/* kg_acl_cli — see kg_acl_cli.h. */
#include "admin/kg_acl_cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "admin/kg_cli_session.h"
#include "security/kg_acl.h"

static const char usage_text[] =
    "usage: kgate acl [--admin URL] [--token TOKEN] [--json] COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  add (--allow P | --deny P) --operation OPS RESOURCE [--pattern literal|prefixed]\n"
    "      [--host IP]      add one binding per operation\n"
    "  rm [--allow P | --deny P | --principal P] [--operation OPS] [RESOURCE]\n"
    "     [--pattern literal|prefixed|any] [--host IP]\n"
    "                       remove every binding matching (pattern: literal by default when a\n"
    "                       resource is named)\n"
    "  list [--principal P] [--operation OPS] [RESOURCE] [--pattern ...] [--host IP]\n"
    "                       the bindings matching (all by default)\n"
    "\n"
    "  P: User:NAME or User:* (every principal); OPS: comma-separated, e.g. Write,Describe\n"
    "     (All, Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,\n"
    "     AlterConfigs, IdempotentWrite); RESOURCE: --topic NAME | --group NAME | --cluster |\n"
    "     --transactional-id NAME (\"*\": every name)\n"
    "\n" KG_CLI_OPTIONS_USAGE;

enum {
    OPT_ALLOW = 1,
    OPT_DENY = 2,
    OPT_PRINCIPAL = 4,
    OPT_OPERATION = 8,
    OPT_TOPIC = 16,
    OPT_GROUP = 32,
    OPT_CLUSTER = 64,
    OPT_TXN = 128,
    OPT_PATTERN = 256,
    OPT_HOST = 512,
};
#define OPT_RESOURCES (OPT_TOPIC | OPT_GROUP | OPT_CLUSTER | OPT_TXN)

typedef struct acl_cli {
    kg_cli_session s;
    const char *allow, *deny, *principal, *operation, *topic, *group, *txn, *pattern, *host;
} acl_cli;

static const kg_cli_syntax acl_syntax = {
    .name = "kgate acl",
    .word = "acl",
    .usage = usage_text,
    .max_args = 1,
    .command_names = " (add, rm, list)",
    .echo_json_errors = 1,
};

static int bits(unsigned x)
{
    int n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
}

/* What the options name: *PRINCIPAL, *PERMISSION (NULL: any), *TYPE and *NAME (NULL: none). */
typedef struct acl_request {
    const char *principal, *permission, *type, *name, *pattern;
} acl_request;

static int read_request(acl_cli *c, acl_request *r, int need_principal)
{
    memset(r, 0, sizeof(*r));
    unsigned who = c->s.given & (OPT_ALLOW | OPT_DENY | OPT_PRINCIPAL);
    if (bits(who) > 1)
        return kg_cli_usage_error(&c->s, "give one of --allow P, --deny P, --principal P");
    if (need_principal && !(who & (OPT_ALLOW | OPT_DENY)))
        return kg_cli_usage_error(&c->s, "%s: --allow P or --deny P is required", c->s.args[0]);
    if (who & OPT_ALLOW) r->principal = c->allow, r->permission = "allow";
    if (who & OPT_DENY) r->principal = c->deny, r->permission = "deny";
    if (who & OPT_PRINCIPAL) r->principal = c->principal;
    unsigned res = c->s.given & OPT_RESOURCES;
    if (bits(res) > 1)
        return kg_cli_usage_error(
            &c->s, "give one resource: --topic, --group, --cluster or --transactional-id");
    if (res & OPT_TOPIC) r->type = "topic", r->name = c->topic;
    if (res & OPT_GROUP) r->type = "group", r->name = c->group;
    if (res & OPT_CLUSTER) r->type = "cluster", r->name = KG_ACL_CLUSTER_NAME;
    if (res & OPT_TXN) r->type = "transactional_id", r->name = c->txn;
    if (c->pattern && strcmp(c->pattern, "any") != 0 && kg_acl_parse_pattern(c->pattern) < 0)
        return kg_cli_usage_error(&c->s, "--pattern: literal, prefixed or any expected");
    r->pattern = c->pattern;
    if (c->operation) {
        char err[256];
        if (!kg_acl_parse_op_list(c->operation, err, sizeof(err)))
            return kg_cli_usage_error(&c->s, "--%s", err);
    }
    return KG_CLI_GO_ON;
}

/* One binding, one line: "allow User:alice Write on topic orders (prefixed) from *  [api]". */
static void print_line(acl_cli *c, const json_t *b)
{
    const char *source = kg_cli_str(b, "source", NULL);
    fprintf(c->s.out, "%-5s %s %s on %s %s (%s) from %s", kg_cli_str(b, "permission", "?"),
            kg_cli_str(b, "principal", "?"), kg_cli_str(b, "operation", "?"),
            kg_cli_str(b, "resource_type", "?"), kg_cli_str(b, "resource_name", "?"),
            kg_cli_str(b, "pattern_type", "?"), kg_cli_str(b, "host", "?"));
    if (source) fprintf(c->s.out, "  [%s]", source);
    fputc('\n', c->s.out);
}

/* Appends "&KEY=VALUE" (or "?KEY=VALUE" first), VALUE percent-encoded. */
static void add_query(char *buf, size_t cap, const char *key, const char *value)
{
    if (!value) return;
    size_t n = strlen(buf);
    n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%c%s=", strchr(buf, '?') ? '&' : '?',
                          key);
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)value; *p && n + 4 < cap; p++) {
        unsigned char ch = *p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == ':' || ch == ',') {
            buf[n++] = (char)ch;
        } else {
            buf[n++] = '%';
            buf[n++] = hex[ch >> 4];
            buf[n++] = hex[ch & 15];
        }
        buf[n] = '\0';
    }
}

static int cmd_add(acl_cli *c)
{
    acl_request r;
    int rc = read_request(c, &r, 1);
    if (rc != KG_CLI_GO_ON) return rc;
    if (!r.type)
        return kg_cli_usage_error(
            &c->s, "add: a resource is required (--topic, --group, --cluster, --transactional-id)");
    if (!c->operation) return kg_cli_usage_error(&c->s, "add: --operation is required");
    if (r.pattern && strcmp(r.pattern, "any") == 0)
        return kg_cli_usage_error(&c->s, "add: --pattern is literal or prefixed");
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "principal", r.principal,
                             "permission", r.permission, "resource_type", r.type, "resource_name",
                             r.name, "pattern_type", r.pattern ? r.pattern : "literal", "host",
                             c->host ? c->host : "*", "operation", c->operation);
    if (!body) return kg_cli_usage_error(&c->s, "arguments must be UTF-8 text");
    json_t *reply = NULL;
    rc = kg_cli_session_call(&c->s, "POST", "/v1/acls", body, &reply);
    json_decref(body);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json) {
        kg_cli_print_json(&c->s, reply);
    } else {
        json_int_t created = json_integer_value(json_object_get(reply, "created"));
        size_t n = json_array_size(json_object_get(reply, "acls"));
        fprintf(c->s.out, "added %lld binding(s)%s\n", (long long)created,
                (size_t)created < n ? " (the others existed already)" : "");
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(reply, "acls"), i, b) print_line(c, b);
    }
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

/* rm and list: the same filter, DELETE or GET. */
static int cmd_filter(acl_cli *c, int remove)
{
    acl_request r;
    int rc = read_request(c, &r, 0);
    if (rc != KG_CLI_GO_ON) return rc;
    if (remove && !r.principal && !r.type)
        return kg_cli_usage_error(&c->s, "rm: name a principal (--allow, --deny, --principal) or "
                                         "a resource, or both");
    const char *pattern = r.pattern;
    if (!pattern) pattern = remove && r.type ? "literal" : NULL;
    if (pattern && strcmp(pattern, "any") == 0) pattern = NULL;
    char path[2048] = "/v1/acls";
    add_query(path, sizeof(path), "principal", r.principal);
    add_query(path, sizeof(path), "permission", r.permission);
    add_query(path, sizeof(path), "resource_type", r.type);
    add_query(path, sizeof(path), "resource_name", r.name);
    add_query(path, sizeof(path), "pattern_type", pattern);
    add_query(path, sizeof(path), "operation", c->operation);
    add_query(path, sizeof(path), "host", c->host);
    json_t *reply = NULL;
    rc = kg_cli_session_call(&c->s, remove ? "DELETE" : "GET", path, NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    json_t *list = json_object_get(reply, remove ? "removed" : "acls");
    if (c->s.json) {
        kg_cli_print_json(&c->s, list);
    } else {
        if (remove)
            fprintf(c->s.out, "removed %zu binding(s)\n", json_array_size(list));
        else if (json_array_size(list) == 0)
            fprintf(c->s.out, "(no ACL bindings)\n");
        size_t i;
        json_t *b;
        json_array_foreach(list, i, b) print_line(c, b);
    }
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

int kg_acl_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                   FILE *err)
{
    acl_cli c;
    memset(&c, 0, sizeof(c));
    const kg_cli_option options[] = {
        {"--allow", OPT_ALLOW, &c.allow},
        {"--deny", OPT_DENY, &c.deny},
        {"--principal", OPT_PRINCIPAL, &c.principal},
        {"--operation", OPT_OPERATION, &c.operation},
        {"--topic", OPT_TOPIC, &c.topic},
        {"--group", OPT_GROUP, &c.group},
        {"--cluster", OPT_CLUSTER, NULL},
        {"--transactional-id", OPT_TXN, &c.txn},
        {"--pattern", OPT_PATTERN, &c.pattern},
        {"--host", OPT_HOST, &c.host},
        {NULL, 0, NULL},
    };
    kg_cli_session_init(&c.s, &acl_syntax, admin_url, token, out, err);
    int rc = kg_cli_session_parse(&c.s, argc, argv, options, NULL, NULL);
    if (rc != KG_CLI_GO_ON) return rc;
    const char *cmd = c.s.args[0];
    if (strcmp(cmd, "add") == 0) return cmd_add(&c);
    if (strcmp(cmd, "rm") == 0 || strcmp(cmd, "remove") == 0) return cmd_filter(&c, 1);
    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "ls") == 0) return cmd_filter(&c, 0);
    return kg_cli_unknown_command(&c.s);
}

int kg_acl_cli_main(int argc, char **argv, const char *admin_url, const char *token)
{
    return kg_cli_run_on_stdio(kg_acl_cli_run, argc, argv, admin_url, token);
}
