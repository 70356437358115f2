/* kg_duration — durations as people write them in config files, drills and rules:
 * "250ms", "30s", "15m", "1h", "2d", and sums like "1m30s". */
#ifndef KG_DURATION_H
#define KG_DURATION_H

#include <stdint.h>

/* TEXT in milliseconds: 0, or -1 when it is not a duration from 1 ms to 366 days. */
int kg_duration_parse(const char *text, int64_t *ms);

#endif
