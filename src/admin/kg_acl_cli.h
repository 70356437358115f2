/* kg_acl_cli — `kgate acl`: ACL bindings kgate enforces, through the admin API (/v1/acls).
 *
 *   kgate acl add (--allow P | --deny P) --operation OPS RESOURCE [--pattern literal|prefixed]
 *                 [--host IP]
 *   kgate acl rm  [--allow P | --deny P | --principal P] [--operation OPS] [RESOURCE]
 *                 [--pattern literal|prefixed|any] [--host IP]
 *   kgate acl list [--principal P] [--operation OPS] [RESOURCE] [--pattern ...] [--host IP]
 * RESOURCE: --topic NAME | --group NAME | --cluster | --transactional-id NAME ("*" = every
 * name). OPS: a comma-separated list of operations (Write,Describe; any case). P: User:NAME or
 * User:*. add makes one binding per operation; rm removes every binding matching what is given
 * (the pattern defaults to literal when a resource is named, as Kafka's kafka-acls does); list
 * shows every binding matching (the pattern defaults to any).
 * Exit codes: 0 ok, 1 API or transport error (message on stderr; rm: nothing matched), 2 usage
 * error.
 */
#ifndef KG_ACL_CLI_H
#define KG_ACL_CLI_H

#include <stdio.h>

int kg_acl_cli_main(int argc, char **argv, const char *admin_url, const char *token);

/* Same, writing to OUT and ERR (tests). */
int kg_acl_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                   FILE *err);

#endif
