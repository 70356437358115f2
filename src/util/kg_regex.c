#include "util/kg_regex.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int regex_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int regex_fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* glibc's regcomp can take minutes and gigabytes on a short pattern, during an admin request or
 * a config load (fuzz_chaos_rule found ".*+++++++" and ".*++++++h-fa*il5au*an+m"):
 *   - a loop around something that can match the empty string ("(a*)*", ".*+", "(a|)+",
 *     "(a?){30}") makes its epsilon closures grow exponentially with each level;
 *   - it builds repetitions by copying: "x+" is x and a copy of x*, "x{m,n}" is n copies of x,
 *     and repetitions of repetitions multiply ("(.{0,255}){0,100}").
 * A topic or client-id pattern needs neither, so both are refused: a repetition other than "?"
 * of what can match nothing, and a pattern larger than MAX_REGEX_SIZE elements once every
 * repetition is expanded (a plain 255-character pattern has 255). Back-references are refused
 * too: they make matching exponential on the data plane. */
#define MAX_REGEX_SIZE 1000
#define MAX_REGEX_GROUPS 32

static uint64_t regex_size_cap(uint64_t n)
{
    return n > MAX_REGEX_SIZE ? MAX_REGEX_SIZE + 1 : n;
}

/* A repetition operator: the fewest and most copies of what it applies to (MAX 0 = no limit). */
typedef struct regex_rep {
    uint64_t min, max;
} regex_rep;

/* Reads the repetition at P[*I] and leaves *I on its last character; false when there is none
 * (a "{" that is no bound). Counts are capped, which keeps a huge one huge. */
static bool regex_repetition(const char *p, size_t *i, regex_rep *rep)
{
    switch (p[*i]) {
    case '*':
        *rep = (regex_rep){0, 0};
        return true;
    case '+':
        *rep = (regex_rep){1, 0};
        return true;
    case '?':
        *rep = (regex_rep){0, 1};
        return true;
    case '{':
        break;
    default:
        return false;
    }
    size_t j = *i + 1;
    uint64_t lo = 0, hi = 0;
    bool has_lo = false, comma = false, has_hi = false;
    for (; p[j] >= '0' && p[j] <= '9'; j++, has_lo = true)
        lo = regex_size_cap(lo * 10 + (uint64_t)(p[j] - '0'));
    if (p[j] == ',') {
        comma = true;
        for (j++; p[j] >= '0' && p[j] <= '9'; j++, has_hi = true)
            hi = regex_size_cap(hi * 10 + (uint64_t)(p[j] - '0'));
    }
    if (p[j] != '}' || (!has_lo && !has_hi)) return false;
    *i = j;
    *rep = (regex_rep){lo, !comma ? lo : has_hi ? hi : 0};
    return true;
}

/* The copies of its operand regcomp makes for REP: "x{m,}" is m copies and a star, "x+" two. */
static uint64_t regex_copies(regex_rep rep)
{
    uint64_t n = rep.max ? rep.max : rep.min + 1;
    return n > 0 ? n : 1;
}

/* One open group (depth 0 is the whole pattern). */
typedef struct regex_group {
    uint64_t size;     /* elements so far */
    bool alt_nullable; /* the current alternative can match nothing so far */
    bool any_nullable; /* an earlier alternative can */
} regex_group;

/* Skips the bracket expression starting at P[I] ("[...]"); returns the index of its "]", which
 * may come first ("[]a]", "[^]a]") and may not end a "[:class:]" inside, or of the last
 * character when it is not closed (regcomp reports that). */
static size_t regex_skip_bracket(const char *p, size_t i)
{
    size_t j = i + 1;
    if (p[j] == '^') j++;
    if (p[j] == ']') j++;
    while (p[j] && p[j] != ']') {
        if (p[j] == '[' && (p[j + 1] == ':' || p[j + 1] == '=' || p[j + 1] == '.')) {
            const char *end = p[j + 1] == ':' ? ":]" : p[j + 1] == '=' ? "=]" : ".]";
            const char *close = strstr(p + j + 2, end);
            j = close ? (size_t)(close - p) + 2 : strlen(p);
        } else {
            j++;
        }
    }
    return p[j] ? j : j - 1;
}

/* Refuses the patterns described above; syntax errors are left to regcomp. Sizes are upper
 * bounds (alternatives are added, not maxed). */
int kg_regex_check(const char *p, char *why, size_t whylen)
{
    regex_group g[MAX_REGEX_GROUPS + 1] = {{0, true, false}};
    int depth = 0;
    /* The latest atom, which a following repetition applies to: its size and whether it can
     * match the empty string. It joins its alternative when the next thing starts. */
    bool has_last = false, last_nullable = false;
    uint64_t last = 0;
    for (size_t i = 0;; i++) {
        char c = p[i];
        regex_rep rep;
        if (has_last && regex_repetition(p, &i, &rep)) {
            if (last_nullable && (rep.max == 0 || rep.max > 1))
                return regex_fail(why, whylen,
                                  "the regular expression repeats something "
                                  "that can match the empty string (such as \"(a*)*\", "
                                  "\".*+\" or \"(a|)+\"); write \"a*\" or \".*\" instead");
            uint64_t n = regex_copies(rep);
            g[depth].size = regex_size_cap(g[depth].size + last * (n - 1));
            last = regex_size_cap(last * n);
            last_nullable = last_nullable || rep.min == 0;
        } else {
            if (has_last) g[depth].alt_nullable &= last_nullable;
            has_last = false;
            if (!c) break;
            if (c == '(') {
                if (depth == MAX_REGEX_GROUPS)
                    return regex_fail(why, whylen,
                                      "the regular expression nests more than "
                                      "%d groups",
                                      MAX_REGEX_GROUPS);
                g[++depth] = (regex_group){0, true, false};
            } else if (c == '|') {
                g[depth].any_nullable |= g[depth].alt_nullable;
                g[depth].alt_nullable = true;
            } else if (c == ')' && depth == 0) {
                /* It would close the group a caller wraps the pattern in: "a)|(.*" would
                 * no longer be anchored, and ")+" would loop on an empty group. */
                return regex_fail(why, whylen,
                                  "unmatched ')' in the regular expression "
                                  "(write \\) for the character)");
            } else if (c == ')') {
                last = g[depth].size > 0 ? g[depth].size : 1;
                last_nullable = g[depth].any_nullable || g[depth].alt_nullable;
                has_last = true;
                depth--;
                g[depth].size = regex_size_cap(g[depth].size + last);
            } else {
                if (c == '\\' && p[i + 1] >= '1' && p[i + 1] <= '9')
                    return regex_fail(why, whylen,
                                      "back-references (\\%c) are not "
                                      "supported",
                                      p[i + 1]);
                if (c == '\\' && p[i + 1])
                    i++;
                else if (c == '[')
                    i = regex_skip_bracket(p, i);
                last = 1;
                last_nullable = c == '^' || c == '$'; /* anchors match no character */
                has_last = true;
                g[depth].size = regex_size_cap(g[depth].size + 1);
            }
        }
        if (g[depth].size > MAX_REGEX_SIZE || last > MAX_REGEX_SIZE)
            return regex_fail(why, whylen,
                              "the regular expression is too large once its "
                              "repetitions are expanded (more than %d elements); use * or + "
                              "instead of large or nested counts",
                              MAX_REGEX_SIZE);
    }
    return 0;
}
