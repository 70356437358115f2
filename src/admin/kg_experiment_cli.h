/* kg_experiment_cli — `kgate experiment ...`, the client of the experiments admin API.
 *
 *   kgate experiment run DRILL.yaml [--wait]   start (prints the id); --wait follows it to the
 *                                              end and prints the Markdown report
 *   kgate experiment list
 *   kgate experiment status ID
 *   kgate experiment stop ID
 *   kgate experiment report ID [--format md|json]
 *   kgate experiment annotate ID [--remediation TEXT] [--retest ID] [--retest-result TEXT]
 *
 * ARGV holds the arguments after the program name; a leading "experiment" is skipped, so it
 * may start with either "experiment" or the subcommand. Global options anywhere: --admin URL,
 * --token TOKEN, --json, -c/--config FILE (ignored: the caller read the defaults from it).
 * Precedence: options, then $KGATE_ADMIN_URL / $KGATE_ADMIN_TOKEN, then the defaults passed in.
 * Exit codes: 0 ok, 1 API/transport/file error, 2 usage error, 3 (`run --wait`) the experiment
 * did not complete (aborted, stopped, interrupted) or an expectation failed.
 */
#ifndef KG_EXPERIMENT_CLI_H
#define KG_EXPERIMENT_CLI_H

#include <stdio.h>

int kg_experiment_cli_main(int argc, char **argv, const char *admin_url, const char *token);

/* Same, writing to OUT and ERR (tests, embedding). */
int kg_experiment_cli_run(int argc, char **argv, const char *admin_url, const char *token,
                          FILE *out, FILE *err);

#endif
