/* kg_cli — `kgate status|failover|failback|audit|reload`, a client of the admin API.
 *
 * ARGV holds the arguments after the program name: the subcommand and its arguments, with the
 * common options (--admin URL, --token TOKEN, --json, -c/--config FILE; see kg_cli_session.h)
 * anywhere among them.
 * Precedence: options, then $KGATE_ADMIN_URL / $KGATE_ADMIN_TOKEN, then the defaults passed in.
 * Exit codes: 0 ok, 1 API or transport error (message on stderr), 2 usage error. `audit verify`
 * exits 1 when the chain is broken.
 */
#ifndef KG_CLI_H
#define KG_CLI_H

#include <stdio.h>

/* kg_cli_request and kg_cli_error_message, the admin API call the other clients and the tests
 * use, live with the rest of the shared client code. */
#include "admin/kg_cli_session.h"

int kg_cli_main(int argc, char **argv, const char *default_admin_url, const char *default_token);

/* Same, writing to OUT and ERR instead of stdout and stderr (tests, embedding). */
int kg_cli_run(int argc, char **argv, const char *default_admin_url, const char *default_token,
               FILE *out, FILE *err);

#endif
