/* kg_regex — POSIX extended regular expressions that are safe to compile.
 *
 * Patterns come from operators (chaos rule scopes, TLS principal mapping rules) through the
 * admin API and the config file; glibc's regcomp must never be handed one that takes it minutes.
 */
#ifndef KG_REGEX_H
#define KG_REGEX_H

#include <stddef.h>

/* 0 when PATTERN is safe to give regcomp (REG_EXTENDED); else -1 and WHY says what to write
 * instead. Syntax errors are left to regcomp. An unmatched ')' is refused: callers wrap
 * patterns in a group of their own. */
int kg_regex_check(const char *pattern, char *why, size_t whylen);

#endif
