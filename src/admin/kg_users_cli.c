/* kg_users_cli — see kg_users_cli.h. */
#include "admin/kg_users_cli.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "admin/kg_cli_session.h"

#define PASSWORD_MAX 1024

static const char usage_text[] =
    "usage: kgate users [--admin URL] [--token TOKEN] [--json] COMMAND\n"
    "\n"
    "commands:\n"
    "  add NAME --mechanism M (--password-file F | --password-stdin) [--iterations N]\n"
    "                       add a user (M: SCRAM-SHA-256 or SCRAM-SHA-512; a user may have both;\n"
    "                       PLAIN clients are checked against either)\n"
    "  passwd NAME --mechanism M (--password-file F | --password-stdin)\n"
    "                       change a user's password for one mechanism\n"
    "  rm NAME              remove a user\n"
    "  list                 the users and their mechanisms (never a secret)\n"
    "\n" KG_CLI_OPTIONS_USAGE;

enum { OPT_MECHANISM = 1, OPT_PASSWORD_FILE = 2, OPT_PASSWORD_STDIN = 4, OPT_ITERATIONS = 8 };

typedef struct users_cli {
    kg_cli_session s;
    const char *mechanism, *password_file, *iterations;
} users_cli;

static const kg_cli_syntax users_syntax = {
    .name = "kgate users",
    .word = "users",
    .usage = usage_text,
    .max_args = 2,
    .command_names = " (add, passwd, rm, list)",
    .echo_json_errors = 1,
};

/* One line from F (file or stdin), without its line ending. -1 when empty or too long. */
static int read_password(FILE *f, char *out, size_t cap)
{
    if (!fgets(out, (int)cap, f)) return -1;
    size_t n = strlen(out);
    if (n == cap - 1 && out[n - 1] != '\n' && !feof(f)) return -1;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return n > 0 ? 0 : -1;
}

static int load_password(users_cli *c, char *pw, size_t cap)
{
    int from_file = (c->s.given & OPT_PASSWORD_FILE) != 0;
    if (from_file == ((c->s.given & OPT_PASSWORD_STDIN) != 0))
        return kg_cli_usage_error(&c->s, "give exactly one of --password-file F, --password-stdin");
    FILE *f = from_file ? fopen(c->password_file, "r") : stdin;
    if (!f) return kg_cli_usage_error(&c->s, "cannot read %s", c->password_file);
    int rc = read_password(f, pw, cap);
    if (from_file) fclose(f);
    if (rc < 0)
        return kg_cli_usage_error(&c->s,
                                  "the password must be one non-empty line of at most %d "
                                  "bytes",
                                  PASSWORD_MAX);
    return KG_CLI_GO_ON;
}

static void print_user(users_cli *c, const json_t *user)
{
    size_t i;
    json_t *m;
    fprintf(c->s.out, "%s", kg_cli_str(user, "name", "?"));
    json_array_foreach(json_object_get(user, "mechanisms"), i, m)
        fprintf(c->s.out, "%s%s (%lld iterations, updated %s)", i ? ", " : "  ",
                kg_cli_str(m, "mechanism", "?"),
                (long long)json_integer_value(json_object_get(m, "iterations")),
                kg_cli_str(m, "updated_ts", "?"));
    fputc('\n', c->s.out);
}

/* add and passwd: the same body, another path. */
static int cmd_set(users_cli *c, int create)
{
    if (c->s.n_args != 2)
        return kg_cli_usage_error(&c->s, "%s: expected one user NAME", c->s.args[0]);
    const char *name = c->s.args[1];
    if (!kg_cli_valid_segment(name))
        return kg_cli_usage_error(&c->s, "invalid user name \"%s\"", name);
    if (!c->mechanism)
        return kg_cli_usage_error(&c->s, "%s: --mechanism is required", c->s.args[0]);
    if (!create && c->iterations)
        return kg_cli_usage_error(&c->s, "passwd: --iterations is for add");
    char pw[PASSWORD_MAX + 2];
    int rc = load_password(c, pw, sizeof(pw));
    if (rc != KG_CLI_GO_ON) return rc;
    json_t *body = json_pack("{s:s, s:s}", "mechanism", c->mechanism, "password", pw);
    OPENSSL_cleanse(pw, sizeof(pw));
    if (!body) return kg_cli_usage_error(&c->s, "the password and mechanism must be UTF-8 text");
    if (create) json_object_set_new(body, "name", json_string(name));
    if (c->iterations) json_object_set_new(body, "iterations", json_integer(atoll(c->iterations)));
    char path[256];
    snprintf(path, sizeof(path), create ? "/v1/users" : "/v1/users/%s/password", name);
    json_t *reply = NULL;
    rc = kg_cli_session_call(&c->s, "POST", path, body, &reply);
    /* jansson owns the copy in BODY: wipe it before it goes back to the allocator. */
    json_t *sent = json_object_get(body, "password");
    OPENSSL_cleanse((void *)json_string_value(sent), json_string_length(sent));
    json_decref(body);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json) {
        kg_cli_print_json(&c->s, reply);
    } else {
        fprintf(c->s.out, create ? "added " : "password changed: ");
        print_user(c, reply);
    }
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

static int cmd_rm(users_cli *c)
{
    if (c->s.n_args != 2) return kg_cli_usage_error(&c->s, "rm: expected one user NAME");
    if (c->s.given) return kg_cli_usage_error(&c->s, "rm takes no options");
    const char *name = c->s.args[1];
    if (!kg_cli_valid_segment(name))
        return kg_cli_usage_error(&c->s, "invalid user name \"%s\"", name);
    char path[256];
    snprintf(path, sizeof(path), "/v1/users/%s", name);
    int rc = kg_cli_session_call(&c->s, "DELETE", path, NULL, NULL);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json)
        fprintf(c->s.out, "{\"removed\": \"%s\"}\n", name);
    else
        fprintf(c->s.out, "removed user %s\n", name);
    return KG_CLI_EXIT_OK;
}

static int cmd_list(users_cli *c)
{
    if (c->s.n_args != 1) return kg_cli_usage_error(&c->s, "list takes no arguments");
    if (c->s.given) return kg_cli_usage_error(&c->s, "list takes no options");
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", "/v1/users", NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    json_t *users = json_object_get(reply, "users");
    size_t i;
    json_t *u;
    if (c->s.json)
        kg_cli_print_json(&c->s, users);
    else if (json_array_size(users) == 0)
        fprintf(c->s.out, "(no users)\n");
    else
        json_array_foreach(users, i, u) print_user(c, u);
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

int kg_users_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                     FILE *err)
{
    users_cli c = {0};
    const kg_cli_option options[] = {
        {"--mechanism", OPT_MECHANISM, &c.mechanism},
        {"--password-file", OPT_PASSWORD_FILE, &c.password_file},
        {"--password-stdin", OPT_PASSWORD_STDIN, NULL},
        {"--iterations", OPT_ITERATIONS, &c.iterations},
        {NULL, 0, NULL},
    };
    kg_cli_session_init(&c.s, &users_syntax, admin_url, token, out, err);
    int rc = kg_cli_session_parse(&c.s, argc, argv, options, NULL, NULL);
    if (rc != KG_CLI_GO_ON) return rc;
    const char *cmd = c.s.args[0];
    if (strcmp(cmd, "add") == 0) return cmd_set(&c, 1);
    if (strcmp(cmd, "passwd") == 0) return cmd_set(&c, 0);
    if (strcmp(cmd, "rm") == 0 || strcmp(cmd, "remove") == 0) return cmd_rm(&c);
    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "ls") == 0) return cmd_list(&c);
    return kg_cli_unknown_command(&c.s);
}

int kg_users_cli_main(int argc, char **argv, const char *admin_url, const char *token)
{
    return kg_cli_run_on_stdio(kg_users_cli_run, argc, argv, admin_url, token);
}
