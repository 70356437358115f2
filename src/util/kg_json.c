#include "util/kg_json.h"

#include <string.h>

#include "util/kg_err.h"

static int is_listed(const char *key, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(key, *names) == 0) return 1;
    return 0;
}

int kg_json_check_keys(const json_t *obj, const char *const *names, const char *where, char *err,
                       size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (is_listed(key, names)) continue;
        if (where) return kg_errf(err, errlen, "%s: unknown field \"%s\"", where, key);
        return kg_errf(err, errlen, "unknown field \"%s\"", key);
    }
    return 0;
}
