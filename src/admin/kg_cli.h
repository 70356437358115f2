/* kg_cli — the `kgate status|failover|failback|audit` client of the admin API (libcurl).
 *
 * ARGV holds the arguments after the program name: the subcommand and its arguments, with the
 * global options anywhere among them:
 *   --admin URL     admin API base URL ("host:port" gets "http://" prepended)
 *   --token TOKEN   bearer token
 *   --json          print the API's JSON instead of human-readable text
 *   -c/--config F   accepted and ignored (main.c reads the defaults from it)
 * Precedence: options, then $KGATE_ADMIN_URL / $KGATE_ADMIN_TOKEN, then the defaults passed in.
 * Exit codes: 0 ok, 1 API or transport error (message on stderr), 2 usage error. `audit verify`
 * exits 1 when the chain is broken.
 */
#ifndef KG_CLI_H
#define KG_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

int kg_cli_main(int argc, char **argv, const char *default_admin_url, const char *default_token);

/* Same, writing to OUT and ERR instead of stdout and stderr (tests, embedding). */
int kg_cli_run(int argc, char **argv, const char *default_admin_url, const char *default_token,
               FILE *out, FILE *err);

/* One admin API call, for other CLI modules (chaos, experiments). BODY (borrowed) is sent as
 * JSON when not NULL. Returns 0 when an HTTP response arrived (*STATUS set, *REPLY = parsed JSON
 * body or NULL), -1 on transport failure with a message in ERRBUF. */
int kg_cli_request(const char *base_url, const char *token, const char *method, const char *path,
                   json_t *body, long *status, json_t **reply, char *errbuf, size_t errlen);

/* The "error" message of an API reply, or a generic one for STATUS. */
const char *kg_cli_error_message(json_t *reply, long status);

#endif
