/* kg_token_cli — see kg_token_cli.h. */
#include "admin/kg_token_cli.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <string.h>

#include "admin/kg_cli_session.h"

static const char usage_text[] =
    "usage: kgate token [--admin URL] [--token TOKEN] [--cacert FILE] [--json] COMMAND\n"
    "\n"
    "commands:\n"
    "  add NAME --role ROLE  make a token for the admin API and print it, once (ROLE: viewer\n"
    "                        reads; operator also fails over, runs chaos and experiments,\n"
    "                        reloads; admin also manages users, ACLs and tokens)\n"
    "  list                  the tokens: name, role, who made it when (never a secret)\n"
    "  rm NAME               remove a token: it is refused from then on\n"
    "\n" KG_CLI_OPTIONS_USAGE;

enum { OPT_ROLE = 1 };

typedef struct token_cli {
    kg_cli_session s;
    const char *role;
} token_cli;

static const kg_cli_syntax token_syntax = {
    .name = "kgate token",
    .word = "token",
    .usage = usage_text,
    .max_args = 2,
    .command_names = " (add, list, rm)",
    .echo_json_errors = 1,
};

static int name_arg(token_cli *c, const char **name)
{
    if (c->s.n_args != 2)
        return kg_cli_usage_error(&c->s, "%s: expected one token NAME", c->s.args[0]);
    *name = c->s.args[1];
    if (!kg_cli_valid_segment(*name))
        return kg_cli_usage_error(&c->s, "invalid token name \"%s\" (A-Z a-z 0-9 . _ -)", *name);
    return KG_CLI_GO_ON;
}

static int cmd_add(token_cli *c)
{
    const char *name;
    int rc = name_arg(c, &name);
    if (rc != KG_CLI_GO_ON) return rc;
    if (!c->role) return kg_cli_usage_error(&c->s, "add: --role viewer|operator|admin is required");
    json_t *body = json_pack("{s:s, s:s}", "name", name, "role", c->role);
    if (!body) return kg_cli_usage_error(&c->s, "the name and role must be UTF-8 text");
    json_t *reply = NULL;
    rc = kg_cli_session_call(&c->s, "POST", "/v1/tokens", body, &reply);
    json_decref(body);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json) {
        kg_cli_print_json(&c->s, reply);
    } else {
        fprintf(c->s.out,
                "added token %s (role %s)\n"
                "%s\n"
                "kgate keeps only its SHA-256: store the token now, it is not shown again.\n",
                kg_cli_str(reply, "name", name), kg_cli_str(reply, "role", "?"),
                kg_cli_str(reply, "token", "?"));
    }
    /* The secret leaves memory with the reply. */
    json_t *secret = json_object_get(reply, "token");
    if (json_string_value(secret))
        OPENSSL_cleanse((void *)json_string_value(secret), json_string_length(secret));
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

static int cmd_rm(token_cli *c)
{
    const char *name;
    int rc = name_arg(c, &name);
    if (rc != KG_CLI_GO_ON) return rc;
    if (c->s.given) return kg_cli_usage_error(&c->s, "rm takes no options");
    char path[256];
    snprintf(path, sizeof(path), "/v1/tokens/%s", name);
    rc = kg_cli_session_call(&c->s, "DELETE", path, NULL, NULL);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json)
        fprintf(c->s.out, "{\"removed\": \"%s\"}\n", name);
    else
        fprintf(c->s.out, "removed token %s\n", name);
    return KG_CLI_EXIT_OK;
}

static int cmd_list(token_cli *c)
{
    if (c->s.n_args != 1) return kg_cli_usage_error(&c->s, "list takes no arguments");
    if (c->s.given) return kg_cli_usage_error(&c->s, "list takes no options");
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", "/v1/tokens", NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    json_t *tokens = json_object_get(reply, "tokens");
    size_t i;
    json_t *t;
    if (c->s.json) {
        kg_cli_print_json(&c->s, tokens);
    } else if (json_array_size(tokens) == 0) {
        fprintf(c->s.out, "(no tokens: the admin API is open)\n");
    } else {
        json_array_foreach(tokens, i, t)
        {
            const char *source = kg_cli_str(t, "source", "store");
            if (strcmp(source, "config") == 0)
                fprintf(c->s.out, "%-24s %-8s  from the config file (admin.token)\n",
                        kg_cli_str(t, "name", "?"), kg_cli_str(t, "role", "?"));
            else
                fprintf(c->s.out, "%-24s %-8s  added %s by %s\n", kg_cli_str(t, "name", "?"),
                        kg_cli_str(t, "role", "?"), kg_cli_str(t, "created_ts", "?"),
                        kg_cli_str(t, "created_by", "?"));
        }
    }
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

int kg_token_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                     FILE *err)
{
    token_cli c = {0};
    const kg_cli_option options[] = {
        {"--role", OPT_ROLE, &c.role},
        {NULL, 0, NULL},
    };
    kg_cli_session_init(&c.s, &token_syntax, admin_url, token, out, err);
    int rc = kg_cli_session_parse(&c.s, argc, argv, options, NULL, NULL);
    if (rc != KG_CLI_GO_ON) return rc;
    const char *cmd = c.s.args[0];
    if (strcmp(cmd, "add") == 0) return cmd_add(&c);
    if (strcmp(cmd, "rm") == 0 || strcmp(cmd, "remove") == 0) return cmd_rm(&c);
    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "ls") == 0) return cmd_list(&c);
    return kg_cli_unknown_command(&c.s);
}

int kg_token_cli_main(int argc, char **argv, const char *admin_url, const char *token)
{
    return kg_cli_run_on_stdio(kg_token_cli_run, argc, argv, admin_url, token);
}
