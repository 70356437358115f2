/* kg_drill_cli — `kgate drill`: run a measured drill (docs/drills.md) and read recorded ones.
 * The workload runs in this process (drill/kg_drill.c); switches and the record go through the
 * admin API. */
#ifndef KG_DRILL_CLI_H
#define KG_DRILL_CLI_H

#include <stdio.h>

int kg_drill_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                     FILE *err);
int kg_drill_cli_main(int argc, char **argv, const char *admin_url, const char *token);

#endif
