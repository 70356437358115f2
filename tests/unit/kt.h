/* kt — a tiny unit-test harness (header only).
 *
 *   #include "kt.h"
 *   KT_TEST(parses_empty_input) { KT_CHECK(x == 0); KT_CHECK_EQ_INT(n, 3); }
 *   KT_MAIN()
 *
 * Tests register themselves (constructor functions) and run in definition order. A test fails
 * when any of its checks fails; checks do not abort the test. The binary prints each failed
 * check with file:line, then "N passed, N failed" (counting tests) and exits non-zero if any
 * test failed. An optional argument runs only the tests whose name contains it.
 */
#ifndef KT_H
#define KT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KT_MAX_TESTS 1024
#define KT_UNUSED __attribute__((unused))

typedef void (*kt_fn)(void);

static struct {
    const char *name;
    kt_fn fn;
} kt_tests[KT_MAX_TESTS];
static int kt_ntests;
static int kt_current_failures;
static long kt_checks;

static KT_UNUSED void kt_register(const char *name, kt_fn fn)
{
    if (kt_ntests == KT_MAX_TESTS) {
        fprintf(stderr, "kt: too many tests (max %d)\n", KT_MAX_TESTS);
        exit(2);
    }
    kt_tests[kt_ntests].name = name;
    kt_tests[kt_ntests].fn = fn;
    kt_ntests++;
}

static KT_UNUSED __attribute__((format(printf, 3, 4))) void kt_fail(const char *file, int line,
                                                                    const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "  %s:%d: check failed: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    kt_current_failures++;
}

/* Counts the check and reports whether it passed (for checks with custom messages). */
static KT_UNUSED int kt_count(int ok)
{
    kt_checks++;
    return ok;
}

#define KT_TEST(name)                                                                              \
    static void kt_test_##name(void);                                                              \
    __attribute__((constructor)) static void kt_register_##name(void)                              \
    {                                                                                              \
        kt_register(#name, kt_test_##name);                                                        \
    }                                                                                              \
    static void kt_test_##name(void)

#define KT_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!kt_count(!!(cond))) kt_fail(__FILE__, __LINE__, "%s", #cond);                         \
    } while (0)

#define KT_CHECK_EQ_INT(a, b)                                                                      \
    do {                                                                                           \
        long long kt_a_ = (long long)(a), kt_b_ = (long long)(b);                                  \
        if (!kt_count(kt_a_ == kt_b_))                                                             \
            kt_fail(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, #b, kt_a_, kt_b_);          \
    } while (0)

#define KT_CHECK_EQ_STR(a, b)                                                                      \
    do {                                                                                           \
        const char *kt_a_ = (a), *kt_b_ = (b);                                                     \
        if (!kt_count(kt_a_ && kt_b_ && strcmp(kt_a_, kt_b_) == 0))                                \
            kt_fail(__FILE__, __LINE__, "%s == %s (\"%s\" != \"%s\")", #a, #b,                     \
                    kt_a_ ? kt_a_ : "(null)", kt_b_ ? kt_b_ : "(null)");                           \
    } while (0)

/* Compares n bytes; on a mismatch reports the first differing offset. */
#define KT_CHECK_EQ_MEM(a, b, n)                                                                   \
    do {                                                                                           \
        const unsigned char *kt_a_ = (const unsigned char *)(a);                                   \
        const unsigned char *kt_b_ = (const unsigned char *)(b);                                   \
        size_t kt_n_ = (size_t)(n), kt_i_ = 0;                                                     \
        while (kt_i_ < kt_n_ && kt_a_[kt_i_] == kt_b_[kt_i_])                                      \
            kt_i_++;                                                                               \
        if (!kt_count(kt_i_ == kt_n_))                                                             \
            kt_fail(__FILE__, __LINE__, "%s == %s over %zu bytes (differ at %zu: %02x != %02x)",   \
                    #a, #b, kt_n_, kt_i_, kt_a_[kt_i_], kt_b_[kt_i_]);                             \
    } while (0)

static KT_UNUSED int kt_run(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;
    for (int i = 0; i < kt_ntests; i++) {
        if (filter && !strstr(kt_tests[i].name, filter)) continue;
        kt_current_failures = 0;
        kt_tests[i].fn();
        if (kt_current_failures) {
            fprintf(stderr, "FAIL %s\n", kt_tests[i].name);
            failed++;
        } else {
            printf("ok   %s\n", kt_tests[i].name);
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#define KT_MAIN()                                                                                  \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return kt_run(argc, argv);                                                                 \
    }

#endif
