/* kg_log — one line per event on stderr, with a level and a timestamp. */
#ifndef KG_LOG_H
#define KG_LOG_H

enum kg_log_level { KG_LOG_DEBUG, KG_LOG_INFO, KG_LOG_WARN, KG_LOG_ERROR };

/* Process-wide threshold, set once at start-up (before worker threads start). */
void kg_log_set_level(enum kg_log_level level);
int kg_log_parse_level(const char *name, enum kg_log_level *out);
int kg_log_enabled(enum kg_log_level level);
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
