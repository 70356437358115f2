/* kg_principal — who a TLS client is: its certificate subject mapped to a user name.
 *
 * Rules follow Kafka's ssl.principal.mapping.rules, one rule a string:
 *   RULE:pattern/replacement/      the subject must match pattern as a whole; replacement may
 *   RULE:pattern/replacement/L     use $1..$9 for its groups; L / U lower- / upper-case the
 *   RULE:pattern/replacement/U     result. A "/" inside pattern or replacement is written "\/".
 *   DEFAULT                        the whole subject.
 * The first rule that matches wins; no rule matching refuses the client, as Kafka does.
 * Patterns are POSIX extended regular expressions (no lazy "*?": write "[^,]*").
 * Subjects are in RFC 2253 form, most specific part first: "CN=alice,OU=eng,O=acme".
 */
#ifndef KG_PRINCIPAL_H
#define KG_PRINCIPAL_H

#include <regex.h>
#include <stddef.h>

#include "config/kg_config.h"

typedef struct kg_principal_rule {
    int is_default;
    regex_t re;
    char replacement[KG_MAPPING_RULE_MAX];
    char fold; /* 0, 'L' or 'U' */
} kg_principal_rule;

typedef struct kg_principal_map {
    kg_principal_rule rules[KG_MAPPING_RULES_MAX];
    int n; /* 0 = DEFAULT */
} kg_principal_map;

/* 0 when RULE is well formed and its pattern safe; else -1 and WHY. */
int kg_principal_rule_check(const char *rule, char *why, size_t whylen);

/* Compiles the listener's rules. 0, or -1 and WHY (rules are checked at config load). */
int kg_principal_map_init(kg_principal_map *m, const kg_listener_tls_cfg *tls, char *why,
                          size_t whylen);
void kg_principal_map_free(kg_principal_map *m);

/* The user name for SUBJECT into OUT. 0, or -1 when no rule matches or it does not fit. */
int kg_principal_map_apply(const kg_principal_map *m, const char *subject, char *out,
                           size_t outlen);

#endif
