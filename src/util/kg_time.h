/* kg_time — wall-clock times as kgate shows and stores them: RFC 3339 in UTC with milliseconds,
 * "2025-01-31T12:00:00.123Z" (audit entries, chaos rules, experiments, drills). */
#ifndef KG_TIME_H
#define KG_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define KG_TIME_TEXT_MAX 32 /* a buffer that always holds one */

/* UNIX_MS (milliseconds since the epoch) as text into BUF (LEN bytes). */
void kg_time_format_ms(int64_t unix_ms, char *buf, size_t len);
/* RFC 3339 TEXT ("2026-01-02T03:04:05Z", an optional fraction, Z or a +hh:mm offset) into *MS
 * since the epoch: 0, or -1 when TEXT is not such a time. */
int kg_time_parse(const char *text, int64_t *ms);
/* Now, on the wall clock, in milliseconds since the epoch. */
int64_t kg_time_now_ms(void);
/* Sleeps MS milliseconds, resumed after a signal interrupts it. */
void kg_time_sleep_ms(int64_t ms);
/* The wall-clock time MS milliseconds from now: a pthread_cond_timedwait deadline. */
struct timespec kg_time_after_ms(int ms);

#endif
