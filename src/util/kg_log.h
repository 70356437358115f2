/* kg_log — one line per event on stderr, with a level and a timestamp: text for people, or one
 * JSON object per line ({"ts", "level", "msg"}) for log shippers (log.format). */
#ifndef KG_LOG_H
#define KG_LOG_H

#include <stddef.h>
#include <sys/time.h>

enum kg_log_level { KG_LOG_DEBUG, KG_LOG_INFO, KG_LOG_WARN, KG_LOG_ERROR };
enum kg_log_format { KG_LOG_TEXT, KG_LOG_JSON };

/* Process-wide threshold, set once at start-up (before worker threads start). */
void kg_log_set_level(enum kg_log_level level);
int kg_log_parse_level(const char *name, enum kg_log_level *out);
int kg_log_enabled(enum kg_log_level level);
/* Process-wide line format, set once at start-up like the level. */
void kg_log_set_format(enum kg_log_format format);
int kg_log_parse_format(const char *name, enum kg_log_format *out);
/* One line (with its newline) of MSG in FORMAT into OUT (CAP >= 64); returns its length. A
 * message too long for OUT is cut, the JSON form stays a complete object. */
size_t kg_log_render(char *out, size_t cap, enum kg_log_format format, enum kg_log_level level,
                     const struct timeval *tv, const char *msg);
void kg_log(enum kg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A rate limit for lines an outsider can cause (failed handshakes, bad passwords): at most
 * PER_SECOND lines a second pass. Zero-initialised; shared between threads. */
typedef struct kg_log_limit {
    _Atomic unsigned long long second;
    _Atomic unsigned count;
} kg_log_limit;
int kg_log_limit_allows(kg_log_limit *l, unsigned per_second);

#define kg_debug(...) (kg_log_enabled(KG_LOG_DEBUG) ? kg_log(KG_LOG_DEBUG, __VA_ARGS__) : (void)0)
#define kg_info(...) kg_log(KG_LOG_INFO, __VA_ARGS__)
#define kg_warn(...) kg_log(KG_LOG_WARN, __VA_ARGS__)
#define kg_error(...) kg_log(KG_LOG_ERROR, __VA_ARGS__)

#endif
