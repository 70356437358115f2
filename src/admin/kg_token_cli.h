/* kg_token_cli — `kgate token`: the admin API's tokens with roles, through the admin API
 * (admin/kg_admin_tokens.h, docs/security.md).
 *
 *   kgate token add NAME --role viewer|operator|admin   prints the new token, once
 *   kgate token list                                    names, roles, who made them; no secret
 *   kgate token rm NAME
 * Every command needs a token with the admin role (the config's bootstrap token is one).
 * Exit codes: 0 ok, 1 API or transport error (message on stderr), 2 usage error.
 */
#ifndef KG_TOKEN_CLI_H
#define KG_TOKEN_CLI_H

#include <stdio.h>

int kg_token_cli_main(int argc, char **argv, const char *admin_url, const char *token);

/* Same, writing to OUT and ERR (tests). */
int kg_token_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                     FILE *err);

#endif
