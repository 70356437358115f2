#include "util/kg_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum kg_log_level log_threshold = KG_LOG_INFO;
static enum kg_log_format log_format = KG_LOG_TEXT;
static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const format_names[] = {"text", "json"};

void kg_log_set_level(enum kg_log_level level)
{
    log_threshold = level;
}

/* Index of NAME in NAMES[0..N), or -1. */
static int name_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

int kg_log_parse_level(const char *name, enum kg_log_level *out)
{
    int i = name_index(level_names, 4, name);
    if (i < 0) return -1;
    *out = (enum kg_log_level)i;
    return 0;
}

int kg_log_enabled(enum kg_log_level level)
{
    return level >= log_threshold;
}

void kg_log_set_format(enum kg_log_format format)
{
    log_format = format;
}

int kg_log_parse_format(const char *name, enum kg_log_format *out)
{
    int i = name_index(format_names, 2, name);
    if (i < 0) return -1;
    *out = (enum kg_log_format)i;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at S (at most N bytes), 0 when it is not one:
 * messages quote what clients sent (client ids, topic names), which need not be UTF-8. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xE0) == 0xC0 ? 2
                 : (s[0] & 0xF0) == 0xE0 ? 3
                 : (s[0] & 0xF8) == 0xF0 ? 4
                                         : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    unsigned cp = len == 1 ? s[0] : s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++)
        cp = (cp << 6) | (s[i] & 0x3F);
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* MSG as the inside of a JSON string at OUT, within CAP bytes (escapes are never cut); bytes
 * that are not UTF-8 become U+FFFD. Returns the bytes written. */
static size_t json_escape(char *out, size_t cap, const char *msg)
{
    const unsigned char *s = (const unsigned char *)msg;
    size_t n = strlen(msg), o = 0;
    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *piece = esc;
        size_t len, used;
        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\', esc[1] = (char)s[i], len = 2, used = 1;
        } else if (s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
            esc[0] = '\\', esc[1] = s[i] == '\n' ? 'n' : s[i] == '\t' ? 't' : 'r', len = 2;
            used = 1;
        } else if (s[i] < 0x20 || s[i] == 0x7F) {
            len = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", s[i]), used = 1;
        } else if ((used = utf8_len(s + i, n - i)) > 0) {
            piece = (const char *)s + i, len = used;
        } else {
            piece = "\\ufffd", len = 6, used = 1;
        }
        if (o + len > cap) break;
        memcpy(out + o, piece, len);
        o += len;
        i += used;
    }
    return o;
}

size_t kg_log_render(char *out, size_t cap, enum kg_log_format format, enum kg_log_level level,
                     const struct timeval *tv, const char *msg)
{
    struct tm tm;
    gmtime_r(&tv->tv_sec, &tm);
    char ts[96]; /* sized for any int the compiler can imagine in struct tm */
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(tv->tv_usec / 1000));
    size_t n;
    if (format == KG_LOG_JSON) {
        n = (size_t)snprintf(out, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                             level_names[level]);
        n += json_escape(out + n, cap - n - 4, msg); /* room for "}\n and the NUL */
        memcpy(out + n, "\"}", 2);
        n += 2;
    } else {
        n = (size_t)snprintf(out, cap, "%s %-5s %.*s", ts, level_names[level], (int)(cap - 40),
                             msg);
        if (n > cap - 2) n = cap - 2;
    }
    out[n++] = '\n';
    out[n] = '\0';
    return n;
}

void kg_log(enum kg_log_level level, const char *fmt, ...)
{
    if (!kg_log_enabled(level)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char line[2048];
    size_t len = kg_log_render(line, sizeof(line), log_format, level, &tv, msg);
    /* One write per line so lines from worker threads never interleave. */
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
