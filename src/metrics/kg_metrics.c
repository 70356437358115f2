/* kg_metrics — see kg_metrics.h. */
#include "metrics/kg_metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/kg_log.h"

const double kg_metrics_latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                             1,      2.5,     5,      10};
const int kg_metrics_latency_buckets_n =
    (int)(sizeof(kg_metrics_latency_buckets) / sizeof(kg_metrics_latency_buckets[0]));

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };
static const char *const type_names[] = {"counter", "gauge", "histogram"};

/* Each metric value sits at the start of its own cache-line-aligned series, so counters that
 * different worker threads update never share a cache line. */
#define CACHE_LINE 64

struct kg_counter {
    _Atomic uint64_t value;
};

/* Doubles live in atomics as their bit patterns; adds are compare-and-swap loops. */
struct kg_gauge {
    _Atomic uint64_t bits;
};

struct kg_histogram {
    _Atomic uint64_t sum_bits;
    int n_bounds;
    const double *bounds;            /* the family's */
    _Atomic uint64_t *bucket_counts; /* n_bounds + 1, NOT cumulative; last is +Inf */
};

typedef struct series {
    union {
        kg_counter counter;
        kg_gauge gauge;
        kg_histogram histogram;
    } m;
    struct series *next;
    char *labels;
} series;

typedef struct family {
    struct family *next;
    char *name;
    char *help;
    enum metric_type type;
    double *bounds;
    int n_bounds;
    series *first, *last;
} family;

struct kg_metrics {
    pthread_mutex_t lock; /* registration and rendering only */
    family *first, *last;
};

static uint64_t double_bits(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    return bits;
}

static double bits_double(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

static void atomic_add_double(_Atomic uint64_t *target, double delta)
{
    uint64_t old = atomic_load_explicit(target, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(target, &old,
                                                  double_bits(bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* ---- hot path ---- */

void kg_counter_add(kg_counter *c, uint64_t n)
{
    if (c) atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void kg_counter_inc(kg_counter *c)
{
    kg_counter_add(c, 1);
}

uint64_t kg_counter_value(const kg_counter *c)
{
    return c ? atomic_load_explicit(&((kg_counter *)c)->value, memory_order_relaxed) : 0;
}

void kg_gauge_set(kg_gauge *g, double v)
{
    if (g) atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
}

void kg_gauge_add(kg_gauge *g, double delta)
{
    if (g) atomic_add_double(&g->bits, delta);
}

double kg_gauge_value(const kg_gauge *g)
{
    if (!g) return 0;
    return bits_double(atomic_load_explicit(&((kg_gauge *)g)->bits, memory_order_relaxed));
}

void kg_histogram_observe(kg_histogram *h, double v)
{
    if (!h) return;
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket_counts[i], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

double kg_histogram_sum(const kg_histogram *h)
{
    return h ? bits_double(
                   atomic_load_explicit(&((kg_histogram *)h)->sum_bits, memory_order_relaxed))
             : 0.0;
}

uint64_t kg_histogram_count(const kg_histogram *h)
{
    if (!h) return 0;
    uint64_t total = 0;
    for (int i = 0; i <= h->n_bounds; i++)
        total += atomic_load_explicit(&h->bucket_counts[i], memory_order_relaxed);
    return total;
}

/* ---- registration ---- */

kg_metrics *kg_metrics_new(void)
{
    kg_metrics *m = calloc(1, sizeof(*m));
    if (m) pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void series_free(series *s)
{
    if (!s) return;
    /* Zeroed at allocation, so this is NULL for counters and gauges. */
    free((void *)s->m.histogram.bucket_counts);
    free(s->labels);
    free(s);
}

static void family_free(family *f)
{
    series *s = f->first;
    while (s) {
        series *next = s->next;
        series_free(s);
        s = next;
    }
    free(f->name);
    free(f->help);
    free(f->bounds);
    free(f);
}

void kg_metrics_free(kg_metrics *m)
{
    if (!m) return;
    family *f = m->first;
    while (f) {
        family *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int is_name_char(char c, int first, int allow_colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return 1;
    if (allow_colon && c == ':') return 1;
    return !first && c >= '0' && c <= '9';
}

static int valid_name(const char *name, size_t len, int allow_colon)
{
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(name[i], i == 0, allow_colon)) return 0;
    return 1;
}

/* Checks LABELS is `name="value"(,name="value")*` with only \\, \" and \n escapes in values,
 * and that no label is named "le" on a histogram (Prometheus reserves it for buckets). */
static int valid_labels(const char *labels, int histogram)
{
    const char *p = labels;
    while (*p) {
        const char *key = p;
        while (is_name_char(*p, p == key, 0))
            p++;
        size_t key_len = (size_t)(p - key);
        if (key_len == 0 || p[0] != '=' || p[1] != '"') return 0;
        if (histogram && key_len == 2 && strncmp(key, "le", 2) == 0) return 0;
        p += 2;
        while (*p && *p != '"') {
            if (*p == '\n') return 0;
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') return 0;
                p++;
            }
            p++;
        }
        if (*p != '"') return 0;
        p++;
        if (*p == ',' && p[1] != '\0')
            p++;
        else if (*p != '\0')
            return 0;
    }
    return 1;
}

static family *find_family(kg_metrics *m, const char *name)
{
    for (family *f = m->first; f; f = f->next)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

static int same_bounds(const family *f, const double *bounds, int n)
{
    if (f->n_bounds != n) return 0;
    for (int i = 0; i < n; i++)
        if (f->bounds[i] != bounds[i]) return 0;
    return 1;
}

static int valid_bounds(const double *bounds, int n)
{
    if (!bounds || n < 1 || n > KG_METRICS_MAX_BUCKETS) return 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) return 0;
    }
    return 1;
}

static family *family_new(const char *name, const char *help, enum metric_type type,
                          const double *bounds, int n)
{
    family *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->type = type;
    if (type == METRIC_HISTOGRAM) {
        f->bounds = malloc(sizeof(double) * (size_t)n);
        if (f->bounds) memcpy(f->bounds, bounds, sizeof(double) * (size_t)n);
        f->n_bounds = n;
    }
    if (!f->name || !f->help || (type == METRIC_HISTOGRAM && !f->bounds)) {
        family_free(f);
        return NULL;
    }
    return f;
}

static series *series_new(const family *f, const char *labels)
{
    series *s = NULL;
    size_t size = (sizeof(series) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    if (posix_memalign((void **)&s, CACHE_LINE, size) != 0) return NULL;
    memset(s, 0, size);
    s->labels = strdup(labels);
    if (f->type == METRIC_HISTOGRAM) {
        s->m.histogram.n_bounds = f->n_bounds;
        s->m.histogram.bounds = f->bounds;
        s->m.histogram.bucket_counts = calloc((size_t)f->n_bounds + 1, sizeof(_Atomic uint64_t));
    }
    if (!s->labels || (f->type == METRIC_HISTOGRAM && !s->m.histogram.bucket_counts)) {
        series_free(s);
        return NULL;
    }
    return s;
}

/* Finds or creates the family NAME and its series LABELS. Caller holds the lock. */
static series *register_locked(kg_metrics *m, const char *name, const char *help,
                               const char *labels, enum metric_type type, const double *bounds,
                               int n)
{
    family *f = find_family(m, name);
    if (f && f->type != type) {
        kg_error("metrics: %s is already registered as a %s", name, type_names[f->type]);
        return NULL;
    }
    if (f && type == METRIC_HISTOGRAM && !same_bounds(f, bounds, n)) {
        kg_error("metrics: histogram %s is already registered with other buckets", name);
        return NULL;
    }
    if (!f) {
        f = family_new(name, help, type, bounds, n);
        if (!f) return NULL;
        if (m->last)
            m->last->next = f;
        else
            m->first = f;
        m->last = f;
    }
    for (series *s = f->first; s; s = s->next)
        if (strcmp(s->labels, labels) == 0) return s;
    series *s = series_new(f, labels);
    if (!s) return NULL;
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    return s;
}

static series *register_metric(kg_metrics *m, const char *name, const char *help,
                               const char *labels, enum metric_type type, const double *bounds,
                               int n)
{
    if (!m || !name) return NULL;
    if (!labels) labels = "";
    if (!valid_name(name, strlen(name), 1)) {
        kg_error("metrics: invalid metric name \"%s\"", name);
        return NULL;
    }
    if (!valid_labels(labels, type == METRIC_HISTOGRAM)) {
        kg_error("metrics: invalid labels for %s: %s", name, labels);
        return NULL;
    }
    if (type == METRIC_HISTOGRAM && !valid_bounds(bounds, n)) {
        kg_error("metrics: histogram %s needs 1..%d strictly increasing finite bounds", name,
                 KG_METRICS_MAX_BUCKETS);
        return NULL;
    }
    pthread_mutex_lock(&m->lock);
    series *s = register_locked(m, name, help, labels, type, bounds, n);
    pthread_mutex_unlock(&m->lock);
    return s;
}

kg_counter *kg_metrics_counter(kg_metrics *m, const char *name, const char *help,
                               const char *labels)
{
    series *s = register_metric(m, name, help, labels, METRIC_COUNTER, NULL, 0);
    return s ? &s->m.counter : NULL;
}

kg_gauge *kg_metrics_gauge(kg_metrics *m, const char *name, const char *help, const char *labels)
{
    series *s = register_metric(m, name, help, labels, METRIC_GAUGE, NULL, 0);
    return s ? &s->m.gauge : NULL;
}

kg_histogram *kg_metrics_histogram(kg_metrics *m, const char *name, const char *help,
                                   const char *labels, const double *bounds, int n)
{
    series *s = register_metric(m, name, help, labels, METRIC_HISTOGRAM, bounds, n);
    return s ? &s->m.histogram : NULL;
}

/* ---- rendering ---- */

typedef struct text_buf {
    char *data;
    size_t len, cap;
    int failed;
} text_buf;

static void buf_printf(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(text_buf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *data = realloc(b->data, cap);
        if (!data) {
            b->failed = 1;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
}

/* Shortest "%.Ng" that reads back as the same double; Prometheus spellings for the
 * non-finite values. */
static void format_double(double v, char out[40])
{
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int precision = 6; precision <= 17; precision++) {
        snprintf(out, 40, "%.*g", precision, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* HELP text escapes backslash and newline (exposition format rule). */
static void render_help(text_buf *b, const family *f)
{
    buf_printf(b, "# HELP %s ", f->name);
    for (const char *p = f->help; *p; p++) {
        if (*p == '\\')
            buf_printf(b, "\\\\");
        else if (*p == '\n')
            buf_printf(b, "\\n");
        else
            buf_printf(b, "%c", *p);
    }
    buf_printf(b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
}

/* "{labels}" or "" — EXTRA (e.g. le="0.5") is appended after the series labels. */
static void render_labels(text_buf *b, const char *labels, const char *extra)
{
    if (!*labels && !extra) return;
    buf_printf(b, "{%s%s%s}", labels, *labels && extra ? "," : "", extra ? extra : "");
}

static void render_histogram(text_buf *b, const family *f, const series *s)
{
    const kg_histogram *h = &s->m.histogram;
    uint64_t cumulative = 0;
    char le[64], num[40];
    for (int i = 0; i <= h->n_bounds; i++) {
        cumulative += atomic_load_explicit(&h->bucket_counts[i], memory_order_relaxed);
        if (i < h->n_bounds) {
            format_double(h->bounds[i], num);
            snprintf(le, sizeof(le), "le=\"%s\"", num);
        } else {
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        }
        buf_printf(b, "%s_bucket", f->name);
        render_labels(b, s->labels, le);
        buf_printf(b, " %" PRIu64 "\n", cumulative);
    }
    format_double(
        bits_double(atomic_load_explicit(&((kg_histogram *)h)->sum_bits, memory_order_relaxed)),
        num);
    buf_printf(b, "%s_sum", f->name);
    render_labels(b, s->labels, NULL);
    buf_printf(b, " %s\n", num);
    /* _count is the +Inf bucket by definition; using it keeps the two equal even while other
     * threads observe. */
    buf_printf(b, "%s_count", f->name);
    render_labels(b, s->labels, NULL);
    buf_printf(b, " %" PRIu64 "\n", cumulative);
}

static void render_series(text_buf *b, const family *f, const series *s)
{
    char num[40];
    switch (f->type) {
    case METRIC_COUNTER:
        buf_printf(b, "%s", f->name);
        render_labels(b, s->labels, NULL);
        buf_printf(b, " %" PRIu64 "\n", kg_counter_value(&s->m.counter));
        break;
    case METRIC_GAUGE:
        format_double(kg_gauge_value(&s->m.gauge), num);
        buf_printf(b, "%s", f->name);
        render_labels(b, s->labels, NULL);
        buf_printf(b, " %s\n", num);
        break;
    case METRIC_HISTOGRAM:
        render_histogram(b, f, s);
        break;
    }
}

char *kg_metrics_render(kg_metrics *m)
{
    text_buf b = {.cap = 4096};
    b.data = malloc(b.cap);
    if (!b.data) return NULL;
    b.data[0] = '\0';
    if (m) {
        pthread_mutex_lock(&m->lock);
        for (const family *f = m->first; f; f = f->next) {
            render_help(&b, f);
            for (const series *s = f->first; s; s = s->next)
                render_series(&b, f, s);
        }
        pthread_mutex_unlock(&m->lock);
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

int kg_metrics_format_labels(char *buf, size_t len, ...)
{
    if (!buf || len == 0) return -1;
    size_t pos = 0;
    int rc = 0;
    va_list ap;
    va_start(ap, len);
    const char *key;
    while (rc == 0 && (key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        if (!valid_name(key, strlen(key), 0) || !value) {
            rc = -1;
            break;
        }
        int n = snprintf(buf + pos, len - pos, "%s%s=\"", pos ? "," : "", key);
        if (n < 0 || (size_t)n >= len - pos) {
            rc = -1;
            break;
        }
        pos += (size_t)n;
        for (const char *p = value; *p && rc == 0; p++) {
            const char *piece = *p == '\\'   ? "\\\\"
                                : *p == '"'  ? "\\\""
                                : *p == '\n' ? "\\n"
                                             : NULL;
            char one[2] = {*p, '\0'};
            size_t plen = piece ? 2 : 1;
            if (pos + plen >= len)
                rc = -1;
            else {
                memcpy(buf + pos, piece ? piece : one, plen);
                pos += plen;
            }
        }
        if (rc == 0 && pos + 1 < len)
            buf[pos++] = '"';
        else
            rc = -1;
    }
    va_end(ap);
    buf[rc == 0 ? pos : 0] = '\0';
    return rc;
}
