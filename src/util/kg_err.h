/* kg_err — the one way a function that fails says why: into the caller's ERR buffer.
 *
 * Functions that can fail take (char *err, size_t errlen) and fill it with a sentence a user
 * can act on; kg_errf does that and returns -1, so a check reads `return kg_errf(...)`.
 */
#ifndef KG_ERR_H
#define KG_ERR_H

#include <stddef.h>

/* Formats the message into ERR (nothing when ERR is NULL or ERRLEN 0); returns -1. */
int kg_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
