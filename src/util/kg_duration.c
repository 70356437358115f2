#include "util/kg_duration.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int kg_duration_parse(const char *text, int64_t *ms)
{
    const char *p = text;
    double total = 0;
    if (!*p) return -1;
    while (*p) {
        if (!isdigit((unsigned char)*p)) return -1;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p) return -1;
        p = end;
        double unit;
        if (strncmp(p, "ms", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60000;
            p++;
        } else if (*p == 'h') {
            unit = 3600000;
            p++;
        } else if (*p == 'd') {
            unit = 86400000;
            p++;
        } else {
            return -1;
        }
        total += v * unit;
    }
    if (!(total >= 1) || total > 366.0 * 86400000) return -1;
    *ms = (int64_t)total;
    return 0;
}
