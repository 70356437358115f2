/* kg_users_cli — `kgate users`: the SASL users kgate manages, through the admin API.
 *
 *   kgate users add NAME --mechanism SCRAM-SHA-512 (--password-file F | --password-stdin)
 *                        [--iterations N]
 *   kgate users passwd NAME --mechanism M (--password-file F | --password-stdin)
 *   kgate users rm NAME
 *   kgate users list
 * The password is read from a file or standard input (one line; a trailing newline is not part
 * of it), never from the command line, where other users of the machine could see it.
 * Exit codes: 0 ok, 1 API or transport error (message on stderr), 2 usage error.
 */
#ifndef KG_USERS_CLI_H
#define KG_USERS_CLI_H

#include <stdio.h>

int kg_users_cli_main(int argc, char **argv, const char *admin_url, const char *token);

/* Same, writing to OUT and ERR (tests); --password-stdin reads stdin. */
int kg_users_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                     FILE *err);

#endif
