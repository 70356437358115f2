#include "util/kg_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum kg_log_level log_threshold = KG_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void kg_log_set_level(enum kg_log_level level)
{
    log_threshold = level;
}

int kg_log_parse_level(const char *name, enum kg_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum kg_log_level)i;
            return 0;
        }
    }
    return -1;
}

int kg_log_enabled(enum kg_log_level level)
{
    return level >= log_threshold;
}

void kg_log(enum kg_log_level level, const char *fmt, ...)
{
    if (!kg_log_enabled(level)) return;
    char line[1024];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(tv.tv_usec / 1000), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* One write per line so lines from worker threads never interleave. */
    size_t len = strlen(line);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

int kg_log_limit_allows(kg_log_limit *l, unsigned per_second)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long second = (unsigned long long)ts.tv_sec;
    if (atomic_exchange(&l->second, second) != second) atomic_store(&l->count, 0);
    return atomic_fetch_add(&l->count, 1) < per_second;
}
