/* kg_json — checks shared by every parser of user-written JSON/YAML documents (drills,
 * experiments): a field kgate does not know is an error naming it, never silently ignored,
 * because a typo there would otherwise turn a setting off without a word. */
#ifndef KG_JSON_H
#define KG_JSON_H

#include <stddef.h>

#include <jansson.h>

/* 0 when every key of OBJ is one of NAMES (NULL-terminated); else -1 with ERR naming the first
 * unknown key, prefixed by "WHERE: " when WHERE is not NULL. */
int kg_json_check_keys(const json_t *obj, const char *const *names, const char *where, char *err,
                       size_t errlen);

#endif
