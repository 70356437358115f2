/* kg_chaos_cli — `kgate chaos add|list|rm`, a client of the chaos routes of the admin API.
 *
 * ARGV holds the arguments after the program name, starting with "chaos" (or directly with the
 * subcommand), with the global options anywhere among them:
 *   --admin URL, --token TOKEN, --json, -c/--config FILE (ignored: main.c reads the defaults)
 * as for kg_cli (same precedence: options, then $KGATE_ADMIN_URL / $KGATE_ADMIN_TOKEN, then the
 * defaults passed in).
 *
 *   kgate chaos add TYPE [--vcluster V] [--topic RE] [--group G] [--client-id RE]
 *                        [--principal P] [--api A,B] [--broker N] [--rate PCT]
 *                        [--for 15m | --expires-at TIME] [--errors produce=X,fetch=Y | X,Y]
 *                        [--any-parameter VALUE ...]
 *   kgate chaos list [--json]
 *   kgate chaos rm ID
 *
 * Every `--some-name VALUE` of `add` becomes the rule field "some_name"; values that look like
 * numbers are sent as numbers except for the name and regex fields. The API validates the rule
 * and names the wrong field; the CLI prints that message.
 * Exit codes: 0 ok, 1 API or transport error (message on stderr), 2 usage error.
 */
#ifndef KG_CHAOS_CLI_H
#define KG_CHAOS_CLI_H

#include <stdio.h>

int kg_chaos_cli_main(int argc, char **argv, const char *admin_url, const char *token);

/* Same, writing to OUT and ERR (tests). */
int kg_chaos_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                     FILE *err);

#endif
