/* Captured frames (tests/vectors/) checked field by field against values known without kgate:
 * what the capture did (tests/integration/test_vectors.py: which clients, topic vec3 with 3
 * partitions, group "vec-<client>-<6 hex>", the records each client produced), the dev
 * cluster (tests/integration/conftest.py: brokers 1-3 on 127.0.0.1, DEFAULT_TOPICS), the Kafka
 * message specs (field layouts, api keys, defaults), and the manifest the relay wrote.
 *
 * Every frame of the APIs kgate rewrites or inspects is read twice: by a hand-written byte walk
 * (vectors.h) that follows the spec's field list, and by the generated decoder. Each field is
 * compared with the expected value and between the two readings, and both readings must end
 * at the same byte. test_vectors.c checks the re-encoding.
 *
 * DescribeCluster is not in the vectors: no captured client sends it (kafka-python's
 * describe_cluster() uses Metadata), so its fields are covered by test_rewrite.c only. */
#include <dirent.h>
#include <jansson.h>
#include <unistd.h>

#include "kp_msgs.h"
#include "kt.h"
#include "proto/kp_frame.h"
#include "proto/kp_records.h"
#include "vectors.h"

/* ---- checks that name the frame --------------------------------------------------------- */

static char cur[300]; /* "<client>/<file>" of the frame being checked */

#define FCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!kt_count(!!(cond))) kt_fail(__FILE__, __LINE__, "%s: %s", cur, #cond);                \
    } while (0)

#define FEQ(a, b)                                                                                  \
    do {                                                                                           \
        long long fa_ = (long long)(a), fb_ = (long long)(b);                                      \
        if (!kt_count(fa_ == fb_))                                                                 \
            kt_fail(__FILE__, __LINE__, "%s: %s == %s (%lld != %lld)", cur, #a, #b, fa_, fb_);     \
    } while (0)

/* A hand-read slice equals the decoder's string or bytes (both null, or same content). */
#define FSAME(hand, dec)                                                                           \
    do {                                                                                           \
        hs fh_ = (hand);                                                                           \
        int fn_ = (dec).len;                                                                       \
        const void *fp_ = (dec).ptr;                                                               \
        if (!kt_count(fh_.n == fn_ && (fn_ <= 0 || memcmp(fh_.p, fp_, (size_t)fn_) == 0)))         \
            kt_fail(__FILE__, __LINE__, "%s: %s differs from %s", cur, #hand, #dec);               \
    } while (0)

/* ---- what the capture set up ------------------------------------------------------------- */

typedef struct source {
    const char *dir;
    const char *client_ids[2]; /* kafka-python's producer names itself */
    const char *value_prefix;  /* its records: key "k<i>", value "<prefix><i>" */
    int32_t session_timeout_ms;
    int idempotent;         /* produces with a producer id */
    int32_t plain_sequence; /* base sequence when not idempotent: -1 in the spec */
} source;

/* Client settings from test_vectors.py's drivers; kafkajs writes base sequence 0 where the
 * spec says -1 (no sequence), harmless without a producer id (and the clients' defaults they rely
 * on: librdkafka's session.timeout.ms 45000, kafka-python's 10000 and client_id). The 2.12 vectors
 * were captured just before rdk-client's consumer got its 6 s session (commit f00ac33), so
 * they carry librdkafka's default. */
static const source sources[] = {
    {"librdkafka-2.0.2", {"rdkafka", NULL}, "v", 45000, 1, -1},
    {"librdkafka-2.12", {"kgate-it-rdk-2.12", NULL}, "m-", 45000, 0, -1},
    {"kafka-python-2.0.2", {"kafka-python-2.0.2", "kafka-python-producer-1"}, "kpy-", 10000, 0, -1},
    {"kafkajs-2.2.4", {"kgate-it-kafkajs", NULL}, "kafkajs-", 6000, 0, 0},
};
#define SOURCES (sizeof(sources) / sizeof(sources[0]))

#define TOPIC "vec3"
#define TOPIC_PARTITIONS 3
#define RECORDS_PER_CLIENT 20
#define BROKER_HOST "127.0.0.1"
#define NODES 3         /* node ids 1..3 */
#define TXN_VALUE "txn" /* librdkafka 2.0.2's one transactional record, without a key */

/* tests/integration/conftest.py DEFAULT_TOPICS */
static const struct {
    const char *name;
    int partitions;
} dev_topics[] = {{"t6", 6},    {"t3", 3},   {"t1", 1},   {"kcat6", 6}, {"idem6", 6},
                  {"grp6", 6},  {"txn3", 3}, {"kpy3", 3}, {"kjs3", 3},  {"pfk3", 3},
                  {"addr3", 3}, {"bad3", 3}, {"vec3", 3}};
#define DEV_TOPICS (sizeof(dev_topics) / sizeof(dev_topics[0]))

static int dev_topic_partitions(hs name)
{
    for (size_t i = 0; i < DEV_TOPICS; i++)
        if (hs_is(name, dev_topics[i].name)) return dev_topics[i].partitions;
    return -1;
}

/* What one capture run of a dev cluster showed, for checks across its frames. */
typedef struct cluster_view {
    char broker[64];
    int32_t ports[NODES + 1]; /* by node id, from Metadata answers */
    uint8_t topic_id[16];     /* vec3's, from a Metadata v10+ answer */
    int has_topic_id;
} cluster_view;

typedef struct frame {
    const source *src;
    const char *file;
    const char *broker; /* manifest: which dev cluster answered */
    cluster_view *view;
    int16_t key, version;
    int flexible;
    const uint8_t *buf;
    size_t len, body_at;
} frame;

/* The error code of every answer is 0 but this one's: kafkajs committed while its group of two
 * was rebalancing (test_vectors.py drive_kafkajs), REBALANCE_IN_PROGRESS. */
static int16_t expected_error(const frame *f)
{
    return strcmp(f->src->dir, "kafkajs-2.2.4") == 0 &&
                   strcmp(f->file, "OffsetCommit_v5_resp.bin") == 0
               ? 27
               : 0;
}

/* ---- small shared checks ----------------------------------------------------------------- */

static int is_hex6(const uint8_t *p)
{
    for (int i = 0; i < 6; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return 0;
    return 1;
}

/* "vec-<client>-<6 hex>", the group test_vectors.py gives each client. */
static int is_group(const frame *f, hs g)
{
    char prefix[96];
    int n = snprintf(prefix, sizeof(prefix), "vec-%s-", f->src->dir);
    return hs_starts(g, prefix) && g.n == n + 6 && is_hex6(g.p + n);
}

/* librdkafka 2.0.2's transactional id: "vec-<6 hex>". */
static int is_txn_id(hs s)
{
    return hs_starts(s, "vec-") && s.n == 10 && is_hex6(s.p + 4);
}

static void check_node(const frame *f, int32_t node, hs host, int32_t port)
{
    FCHECK(node >= 1 && node <= NODES);
    FCHECK(hs_is(host, BROKER_HOST));
    FCHECK(port > 0 && port <= 65535);
    if (node >= 1 && node <= NODES && f->view->ports[node])
        FEQ(port, f->view->ports[node]); /* the same cluster's Metadata said so */
}

/* "k<i>" -> i, or -1. */
static long key_index(hs k)
{
    if (k.n < 2 || k.n > 6 || k.p[0] != 'k') return -1;
    long v = 0;
    for (int i = 1; i < k.n; i++) {
        if (k.p[i] < '0' || k.p[i] > '9') return -1;
        v = v * 10 + (k.p[i] - '0');
    }
    return v;
}

/* A record value "<prefix><i>" for the record with key "k<i>". */
static int value_matches(hs value, const char *prefix, long i)
{
    char want[64];
    snprintf(want, sizeof(want), "%s%ld", prefix, i);
    return hs_is(value, want);
}

/* ---- record batches, by hand -------------------------------------------------------------- */

/* CRC-32C, bit by bit from the polynomial (0x82F63B78 reflected), independent of kp_crc32c. */
static uint32_t crc32c_slow(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return c ^ 0xffffffffu;
}

typedef struct batch_totals {
    int records;      /* data records */
    int batches;      /* magic 2 batches, control ones included */
    int64_t next_off; /* one past the last offset seen */
    long seen_index[RECORDS_PER_CLIENT + 1];
} batch_totals;

/* One record of a data batch: key "k<i>" and a value some client produced for i (PRODUCER
 * given: that client's). */
static void check_record(const frame *f, hw *h, int32_t delta, const char *producer,
                         batch_totals *t)
{
    int64_t len = hw_var(h);
    size_t start = h->at;
    hw_i8(h);  /* attributes: unused */
    hw_var(h); /* timestamp delta */
    FEQ(hw_var(h), delta);
    hs key = hw_take(h, hw_var(h));
    hs value = hw_take(h, hw_var(h));
    int64_t headers = hw_var(h);
    FEQ(headers, 0);
    FEQ(h->at - start, len);
    long i = key_index(key);
    if (key.n < 0) {
        FCHECK(hs_is(value, TXN_VALUE) && (!producer || strcmp(producer, "v") == 0));
        return;
    }
    FCHECK(i >= 0 && i < RECORDS_PER_CLIENT + 5); /* kafkajs adds 5 after a restart */
    int known = 0;
    for (size_t s = 0; s < SOURCES; s++)
        known |= (!producer || strcmp(producer, sources[s].value_prefix) == 0) &&
                 value_matches(value, sources[s].value_prefix, i);
    if (!kt_count(known))
        kt_fail(__FILE__, __LINE__, "%s: record k%ld = \"%.*s\" is not a captured value", cur, i,
                value.n < 0 ? 0 : value.n, value.p ? (const char *)value.p : "");
    t->records++;
}

/* One magic-2 batch (the spec's RecordBatch layout). Returns 0 at a truncated final batch. */
static int check_batch(const frame *f, hw *h, const char *producer, batch_totals *t)
{
    if (h->len - h->at < 12) return 0;
    int64_t base = hw_i64(h);
    int32_t length = hw_i32(h);
    if ((size_t)length > h->len - h->at) return 0; /* a fetch may end in a partial batch */
    size_t end = h->at + (size_t)length;
    hw_i32(h); /* partition leader epoch */
    FEQ(hw_i8(h), 2);
    uint32_t crc = (uint32_t)hw_i32(h);
    FEQ(crc, crc32c_slow(h->b + h->at, end - h->at));
    int16_t attributes = hw_i16(h);
    FEQ(attributes & 7, 0); /* no client here compresses */
    int32_t last_delta = hw_i32(h);
    hw_i64(h); /* first timestamp */
    hw_i64(h); /* max timestamp */
    int64_t producer_id = hw_i64(h);
    hw_i16(h); /* producer epoch */
    int32_t base_sequence = hw_i32(h);
    int32_t count = hw_i32(h);
    FCHECK(base >= t->next_off || producer); /* fetched batches come in offset order */
    FCHECK(count >= 1 && last_delta == count - 1);
    if (producer) {
        FEQ(base, 0); /* the broker assigns offsets */
        FCHECK(f->src->idempotent ? producer_id >= 0 && base_sequence >= 0
                                  : producer_id == -1 && base_sequence == f->src->plain_sequence);
    }
    t->batches++;
    t->next_off = base + last_delta + 1;
    if (attributes & 0x20) { /* control batch: a transaction marker, no data */
        h->at = end;
        return 1;
    }
    for (int32_t i = 0; i < count && !h->bad; i++)
        check_record(f, h, i, producer, t);
    FEQ(h->at, end);
    return 1;
}

typedef struct visit_ctx {
    int records;
} visit_ctx;

static bool count_record(void *ctx, const kp_batch_info *b, kp_record *r, int *copies)
{
    ((visit_ctx *)ctx)->records++;
    return false;
}

/* A records field: hand-walked batches, and kgate's record reader sees as many records. */
static void check_records(const frame *f, hs records, const char *producer, batch_totals *t)
{
    if (records.n <= 0) return;
    hw h = hw_over(records.p, (size_t)records.n);
    int batches = 0;
    while (batches < 10000 && !h.bad && check_batch(f, &h, producer, t))
        batches++;
    FCHECK(!h.bad);
    if (producer) FEQ(h.at, h.len); /* a producer sends whole batches */
    kp_arena a;
    kp_arena_init(&a);
    visit_ctx v = {0};
    int n = kp_records_visit(records.p, (size_t)records.n, count_record, &v, &a);
    kp_arena_free(&a);
    FEQ(n, v.records);
}

/* ---- ApiVersions --------------------------------------------------------------------------- */

static void api_versions_req(const frame *f, hw *h, const kp_api_versions_request *m)
{
    if (f->version < 3) return; /* empty body */
    hs name = hw_str(h, 1), version = hw_str(h, 1);
    hw_tags(h, 1);
    FSAME(name, m->client_software_name);
    FSAME(version, m->client_software_version);
    /* Only librdkafka asks with v3 here; it names itself and its version. */
    FCHECK(hs_is(name, "librdkafka"));
    FCHECK(strncmp(f->src->dir, "librdkafka-", 11) == 0 && hs_starts(version, f->src->dir + 11));
}

/* Every request this capture sent to the broker that answered must be in the ranges it
 * advertised (the broker did answer them). Reads the manifest, not the decoder. */
static void check_advertised(const frame *f, json_t *manifest, const int16_t (*ranges)[3], int n)
{
    const char *file;
    json_t *e;
    json_object_foreach(manifest, file, e)
    {
        const char *broker = json_string_value(json_object_get(e, "broker"));
        const char *dir = json_string_value(json_object_get(e, "direction"));
        int key = (int)json_integer_value(json_object_get(e, "api_key"));
        int version = (int)json_integer_value(json_object_get(e, "api_version"));
        if (!broker || !dir || strcmp(broker, f->broker) || strcmp(dir, "req") || key == 18)
            continue;
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= ranges[i][0] == key && ranges[i][1] <= version && version <= ranges[i][2];
        if (!kt_count(found))
            kt_fail(__FILE__, __LINE__, "%s: %s (key %d v%d) outside the advertised ranges", cur,
                    file, key, version);
    }
}

static void api_versions_resp(const frame *f, hw *h, const kp_api_versions_response *m,
                              json_t *manifest)
{
    FEQ(hw_i16(h), 0);
    FEQ(m->error_code, 0);
    int32_t n = hw_count(h, 0);
    FEQ(n, m->api_keys.count);
    int16_t ranges[64][3];
    FCHECK(n > 0 && n <= 64);
    for (int32_t i = 0; i < n && i < 64 && i < m->api_keys.count; i++) {
        for (int k = 0; k < 3; k++)
            ranges[i][k] = hw_i16(h);
        const kp_api_versions_response_api_version *d = &m->api_keys.items[i];
        FEQ(d->api_key, ranges[i][0]);
        FEQ(d->min_version, ranges[i][1]);
        FEQ(d->max_version, ranges[i][2]);
        const spec_api *s = spec_api_key(ranges[i][0]);
        if (!kt_count(s != NULL))
            kt_fail(__FILE__, __LINE__, "%s: api key %d unknown", cur, ranges[i][0]);
        FCHECK(ranges[i][1] >= 0 && ranges[i][1] <= ranges[i][2]);
        FCHECK(!s || ranges[i][2] <= s->max_version);
        for (int32_t j = 0; j < i; j++)
            FCHECK(ranges[j][0] != ranges[i][0]);
    }
    if (f->version >= 1) {
        FEQ(hw_i32(h), 0);
        FEQ(m->throttle_time_ms, 0);
    }
    check_advertised(f, manifest, (const int16_t(*)[3])ranges, n < 64 ? n : 64);
}

/* The broker's answer to a version it lacks (README): error 35, a one-byte count of 1, the
 * ApiVersions range (key 18, versions 0-2, so below the request's 3), four zero bytes. */
static void api_versions_unsupported(const frame *f, hw *h)
{
    FEQ(hw_i16(h), 35);
    FEQ(hw_i8(h), 1);
    FEQ(hw_i16(h), 18);
    FEQ(hw_i16(h), 0);
    int16_t max = hw_i16(h);
    FCHECK(max >= 0 && max < f->version);
    FEQ(hw_i32(h), 0);
    FEQ(h->at, h->len);
}

/* ---- Metadata ------------------------------------------------------------------------------ */

static void metadata_req(const frame *f, hw *h, const kp_metadata_request *m, int *all_topics)
{
    int fx = f->flexible, v = f->version;
    int32_t n = hw_count(h, fx);
    FEQ(n, m->topics.count);
    *all_topics = n < 0 || (v == 0 && n == 0); /* null, or empty in v0, asks for all */
    FCHECK(n >= 0 || v >= 1);
    for (int32_t i = 0; i < n && i < m->topics.count; i++) {
        if (v >= 10) hw_take(h, 16); /* topic id: zero when asking by name */
        hs name = hw_str(h, fx);
        hw_tags(h, fx);
        FSAME(name, m->topics.items[i].name);
        FCHECK(dev_topic_partitions(name) > 0);
    }
    if (v >= 4) {
        FEQ(hw_i8(h), m->allow_auto_topic_creation);
    }
    if (v >= 8 && v <= 10) FEQ(hw_i8(h), m->include_cluster_authorized_operations);
    if (v >= 8) FEQ(hw_i8(h), m->include_topic_authorized_operations);
    hw_tags(h, fx);
}

static void metadata_brokers(const frame *f, hw *h, const kp_metadata_response *m)
{
    int fx = f->flexible, v = f->version;
    int32_t n = hw_count(h, fx);
    FEQ(n, NODES);
    FEQ(m->brokers.count, n);
    int seen = 0;
    for (int32_t i = 0; i < n && i < m->brokers.count; i++) {
        const kp_metadata_response_metadata_response_broker *d = &m->brokers.items[i];
        int32_t node = hw_i32(h);
        hs host = hw_str(h, fx);
        int32_t port = hw_i32(h);
        FEQ(d->node_id, node);
        FSAME(host, d->host);
        FEQ(d->port, port);
        check_node(f, node, host, port);
        if (node >= 1 && node <= NODES) {
            seen |= 1 << node;
            f->view->ports[node] = port;
        }
        if (v >= 1) {
            hs rack = hw_str(h, fx);
            FSAME(rack, d->rack);
            FEQ(rack.n, -1); /* the dev cluster sets no racks */
        }
        hw_tags(h, fx);
    }
    FEQ(seen, 0xe); /* nodes 1, 2 and 3 */
}

static void int_list(const frame *f, hw *h, int32_t n, int32_t *out, int max)
{
    for (int32_t i = 0; i < n; i++) {
        int32_t node = hw_i32(h);
        if (i < max) out[i] = node;
        FCHECK(node >= 1 && node <= NODES);
    }
}

static void metadata_partition(const frame *f, hw *h,
                               const kp_metadata_response_metadata_response_partition *d, int *seen)
{
    int fx = f->flexible, v = f->version;
    FEQ(hw_i16(h), 0);
    FEQ(d->error_code, 0);
    int32_t index = hw_i32(h), leader = hw_i32(h);
    FEQ(d->partition_index, index);
    FEQ(d->leader_id, leader);
    if (index >= 0 && index < 64) seen[index]++;
    FCHECK(leader >= 1 && leader <= NODES);
    if (v >= 7) FEQ(hw_i32(h), d->leader_epoch);
    int32_t replicas[NODES] = {0}, nr = hw_count(h, fx);
    FEQ(nr, d->replica_nodes.count);
    FCHECK(nr >= 1 && nr <= NODES);
    int_list(f, h, nr, replicas, NODES);
    int leads = 0;
    for (int32_t i = 0; i < nr && i < NODES && i < d->replica_nodes.count; i++) {
        FEQ(d->replica_nodes.items[i], replicas[i]);
        leads |= replicas[i] == leader;
    }
    FCHECK(leads);
    int32_t isr[NODES] = {0}, ni = hw_count(h, fx);
    FEQ(ni, d->isr_nodes.count);
    FCHECK(ni >= 1 && ni <= nr);
    int_list(f, h, ni, isr, NODES);
    if (v >= 5) {
        FEQ(hw_count(h, fx), 0); /* no broker is down */
        FEQ(d->offline_replicas.count, 0);
    }
    hw_tags(h, fx);
}

static void metadata_topic(const frame *f, hw *h,
                           const kp_metadata_response_metadata_response_topic *d)
{
    int fx = f->flexible, v = f->version;
    FEQ(hw_i16(h), 0);
    FEQ(d->error_code, 0);
    hs name = hw_str(h, fx);
    FSAME(name, d->name);
    int want = dev_topic_partitions(name);
    if (!kt_count(want > 0))
        kt_fail(__FILE__, __LINE__, "%s: topic \"%.*s\" not created by the tests", cur,
                name.n < 0 ? 0 : name.n, name.n < 0 ? "" : (const char *)name.p);
    if (v >= 10) {
        hs id = hw_take(h, 16);
        FCHECK(id.n == 16 && memcmp(id.p, d->topic_id.b, 16) == 0);
        FCHECK(!kp_uuid_is_zero(&d->topic_id));
        if (hs_is(name, TOPIC) && id.n == 16) {
            memcpy(f->view->topic_id, id.p, 16);
            f->view->has_topic_id = 1;
        }
    }
    if (v >= 1) {
        FEQ(hw_i8(h), 0); /* not internal */
        FEQ(d->is_internal, 0);
    }
    int32_t n = hw_count(h, fx);
    FEQ(n, want);
    FEQ(d->partitions.count, n);
    int seen[64] = {0};
    for (int32_t i = 0; i < n && i < d->partitions.count; i++)
        metadata_partition(f, h, &d->partitions.items[i], seen);
    for (int i = 0; i < want && i < 64; i++)
        FEQ(seen[i], 1); /* partitions 0..n-1, each once */
    if (v >= 8) FEQ(hw_i32(h), d->topic_authorized_operations);
    hw_tags(h, fx);
}

static void metadata_resp(const frame *f, hw *h, const kp_metadata_response *m, int all_topics)
{
    int fx = f->flexible, v = f->version;
    if (v >= 3) {
        FEQ(hw_i32(h), 0);
        FEQ(m->throttle_time_ms, 0);
    }
    metadata_brokers(f, h, m);
    if (v >= 2) {
        hs cluster = hw_str(h, fx);
        FSAME(cluster, m->cluster_id);
        FCHECK(cluster.n > 0);
    }
    if (v >= 1) {
        int32_t controller = hw_i32(h);
        FEQ(m->controller_id, controller);
        /* The mocks write their cluster's controller_id, which they leave at 0: no broker. */
        FEQ(controller, 0);
    }
    int32_t n = hw_count(h, fx);
    FEQ(m->topics.count, n);
    if (all_topics) FEQ(n, DEV_TOPICS);
    for (int32_t i = 0; i < n && i < m->topics.count; i++)
        metadata_topic(f, h, &m->topics.items[i]);
    if (v >= 8 && v <= 10) FEQ(hw_i32(h), m->cluster_authorized_operations);
    hw_tags(h, fx);
}

/* ---- FindCoordinator ---------------------------------------------------------------------- */

static void find_coordinator_req(const frame *f, hw *h, const kp_find_coordinator_request *m)
{
    hs key = hw_str(h, 0);
    FSAME(key, m->key);
    int8_t type = f->version >= 1 ? hw_i8(h) : 0;
    FEQ(m->key_type, type);
    FCHECK(type == 0 ? is_group(f, key) : type == 1 && is_txn_id(key));
}

static void find_coordinator_resp(const frame *f, hw *h, const kp_find_coordinator_response *m)
{
    if (f->version >= 1) {
        FEQ(hw_i32(h), 0);
        FEQ(m->throttle_time_ms, 0);
    }
    FEQ(hw_i16(h), 0);
    FEQ(m->error_code, 0);
    if (f->version >= 1) FSAME(hw_str(h, 0), m->error_message);
    int32_t node = hw_i32(h);
    hs host = hw_str(h, 0);
    int32_t port = hw_i32(h);
    FEQ(m->node_id, node);
    FSAME(host, m->host);
    FEQ(m->port, port);
    check_node(f, node, host, port);
}

/* ---- Produce ------------------------------------------------------------------------------- */

/* Partitions a request names, as a bit set, for the answer to match. */
typedef struct sent {
    unsigned partitions;
    int topics;
} sent;

static void produce_req(const frame *f, hw *h, const kp_produce_request *m, sent *s)
{
    int fx = f->flexible;
    hs txn = hw_str(h, fx);
    FSAME(txn, m->transactional_id);
    FCHECK(txn.n == -1 || is_txn_id(txn));
    FEQ(hw_i16(h), -1); /* acks=all: every driver asks for it or idempotence implies it */
    FEQ(m->acks, -1);
    int32_t timeout = hw_i32(h);
    FEQ(m->timeout_ms, timeout);
    FCHECK(timeout > 0);
    int32_t nt = hw_count(h, fx);
    FEQ(nt, 1);
    FEQ(m->topic_data.count, nt);
    batch_totals t = {0};
    for (int32_t i = 0; i < nt && i < m->topic_data.count; i++) {
        const kp_produce_request_topic_produce_data *d = &m->topic_data.items[i];
        hs name = hw_str(h, fx);
        FSAME(name, d->name);
        FCHECK(hs_is(name, TOPIC));
        int32_t np = hw_count(h, fx);
        FEQ(d->partition_data.count, np);
        for (int32_t j = 0; j < np && j < d->partition_data.count; j++) {
            int32_t index = hw_i32(h);
            FEQ(d->partition_data.items[j].index, index);
            FCHECK(index >= 0 && index < TOPIC_PARTITIONS && !(s->partitions & 1u << index));
            s->partitions |= 1u << (index & 31);
            hs records = hw_bytes(h, fx);
            FSAME(records, d->partition_data.items[j].records);
            FCHECK(records.n > 0);
            t.next_off = 0;
            check_records(f, records, f->src->value_prefix, &t);
            hw_tags(h, fx);
        }
        hw_tags(h, fx);
    }
    s->topics = nt;
    FCHECK(t.records >= 1 && t.records <= RECORDS_PER_CLIENT + 1);
    hw_tags(h, fx);
}

static void produce_partition(const frame *f, hw *h,
                              const kp_produce_response_partition_produce_response *d,
                              unsigned *answered)
{
    int fx = f->flexible, v = f->version;
    int32_t index = hw_i32(h);
    FEQ(d->index, index);
    *answered |= 1u << (index & 31);
    FEQ(hw_i16(h), 0);
    FEQ(d->error_code, 0);
    int64_t base = hw_i64(h);
    FEQ(d->base_offset, base);
    FCHECK(base >= 0);
    if (v >= 2) {
        /* -1 in the spec for CreateTime topics; librdkafka's mock answers a fixed 1234
         * (rdkafka_mock_handlers.c, Produce handler). */
        FEQ(hw_i64(h), 1234);
        FEQ(d->log_append_time_ms, 1234);
    }
    if (v >= 5) {
        int64_t start = hw_i64(h);
        FEQ(d->log_start_offset, start);
        FCHECK(start >= 0 && start <= base);
    }
    if (v >= 8) {
        FEQ(hw_count(h, fx), 0);
        FEQ(d->record_errors.count, 0);
        hs msg = hw_str(h, fx);
        FEQ(msg.n, -1);
        FEQ(d->error_message.len, -1);
    }
    hw_tags(h, fx);
}

static void produce_resp(const frame *f, hw *h, const kp_produce_response *m, const sent *s)
{
    int fx = f->flexible;
    int32_t nt = hw_count(h, fx);
    FEQ(nt, s->topics);
    FEQ(m->responses.count, nt);
    unsigned answered = 0;
    for (int32_t i = 0; i < nt && i < m->responses.count; i++) {
        const kp_produce_response_topic_produce_response *d = &m->responses.items[i];
        hs name = hw_str(h, fx);
        FSAME(name, d->name);
        FCHECK(hs_is(name, TOPIC));
        int32_t np = hw_count(h, fx);
        FEQ(d->partition_responses.count, np);
        for (int32_t j = 0; j < np && j < d->partition_responses.count; j++)
            produce_partition(f, h, &d->partition_responses.items[j], &answered);
        hw_tags(h, fx);
    }
    FEQ(answered, s->partitions);
    if (f->version >= 1) {
        FEQ(hw_i32(h), 0);
        FEQ(m->throttle_time_ms, 0);
    }
    hw_tags(h, fx);
}

/* ---- Fetch --------------------------------------------------------------------------------- */

/* v13+ names topics by id: the id Metadata gave for vec3 in the same cluster run. */
static void fetch_topic_name(const frame *f, hw *h, kp_str dec_name, const kp_uuid *dec_id)
{
    if (f->version <= 12) {
        hs name = hw_str(h, f->flexible);
        FSAME(name, dec_name);
        FCHECK(hs_is(name, TOPIC));
        return;
    }
    hs id = hw_take(h, 16);
    FCHECK(id.n == 16 && memcmp(id.p, dec_id->b, 16) == 0);
    FCHECK(f->view->has_topic_id && id.n == 16 && memcmp(id.p, f->view->topic_id, 16) == 0);
}

static void fetch_req_partition(const frame *f, hw *h, const kp_fetch_request_fetch_partition *d,
                                sent *s)
{
    int v = f->version;
    int32_t index = hw_i32(h);
    FEQ(d->partition, index);
    FCHECK(index >= 0 && index < TOPIC_PARTITIONS);
    s->partitions |= 1u << (index & 31);
    if (v >= 9) FEQ(hw_i32(h), d->current_leader_epoch);
    int64_t offset = hw_i64(h);
    FEQ(d->fetch_offset, offset);
    FCHECK(offset >= 0);
    if (v >= 12) FEQ(hw_i32(h), d->last_fetched_epoch);
    if (v >= 5) FEQ(hw_i64(h), d->log_start_offset);
    int32_t max = hw_i32(h);
    FEQ(d->partition_max_bytes, max);
    FCHECK(max > 0);
    hw_tags(h, f->flexible);
}

static void fetch_req(const frame *f, hw *h, const kp_fetch_request *m, sent *s)
{
    int fx = f->flexible, v = f->version;
    if (v <= 14) {
        FEQ(hw_i32(h), -1); /* a consumer, not a replica */
        FEQ(m->replica_id, -1);
    }
    int32_t wait = hw_i32(h);
    FEQ(m->max_wait_ms, wait);
    FCHECK(wait > 0);
    FEQ(hw_i32(h), m->min_bytes);
    if (v >= 3) FEQ(hw_i32(h), m->max_bytes);
    if (v >= 4) {
        int8_t isolation = hw_i8(h);
        FEQ(m->isolation_level, isolation);
        FCHECK(isolation == 0 || isolation == 1);
    }
    if (v >= 7) {
        FEQ(hw_i32(h), m->session_id);
        FEQ(hw_i32(h), m->session_epoch);
    }
    int32_t nt = hw_count(h, fx);
    FEQ(nt, 1);
    FEQ(m->topics.count, nt);
    for (int32_t i = 0; i < nt && i < m->topics.count; i++) {
        const kp_fetch_request_fetch_topic *d = &m->topics.items[i];
        fetch_topic_name(f, h, d->topic, &d->topic_id);
        int32_t np = hw_count(h, fx);
        FEQ(d->partitions.count, np);
        for (int32_t j = 0; j < np && j < d->partitions.count; j++)
            fetch_req_partition(f, h, &d->partitions.items[j], s);
        hw_tags(h, fx);
    }
    s->topics = nt;
    if (v >= 7) {
        FEQ(hw_count(h, fx), 0); /* one topic fetched throughout: nothing forgotten */
        FEQ(m->forgotten_topics_data.count, 0);
    }
    if (v >= 11) {
        hs rack = hw_str(h, fx);
        FSAME(rack, m->rack_id);
        FEQ(rack.n, 0); /* no client.rack set */
    }
    hw_tags(h, fx);
}

static void fetch_resp_partition(const frame *f, hw *h, const kp_fetch_response_partition_data *d,
                                 unsigned *answered)
{
    int fx = f->flexible, v = f->version;
    int32_t index = hw_i32(h);
    FEQ(d->partition_index, index);
    *answered |= 1u << (index & 31);
    FEQ(hw_i16(h), 0);
    FEQ(d->error_code, 0);
    int64_t high = hw_i64(h);
    FEQ(d->high_watermark, high);
    FCHECK(high >= 0);
    if (v >= 4) {
        int64_t stable = hw_i64(h);
        FEQ(d->last_stable_offset, stable);
        FCHECK(stable >= 0 && stable <= high);
    }
    if (v >= 5) {
        int64_t start = hw_i64(h);
        FEQ(d->log_start_offset, start);
        FCHECK(start >= 0 && start <= high);
    }
    if (v >= 4) {
        int32_t aborted = hw_count(h, fx);
        FEQ(d->aborted_transactions.count, aborted);
        FCHECK(aborted <= 0); /* the one transaction committed */
    }
    if (v >= 11) {
        FEQ(hw_i32(h), -1); /* no follower fetching configured */
        FEQ(d->preferred_read_replica, -1);
    }
    hs records = hw_bytes(h, fx);
    FSAME(records, d->records);
    batch_totals t = {0};
    check_records(f, records, NULL, &t);
    FCHECK(t.next_off <= high);
    hw_tags(h, fx);
}

static void fetch_resp(const frame *f, hw *h, const kp_fetch_response *m, const sent *s)
{
    int fx = f->flexible, v = f->version;
    if (v >= 1) {
        FEQ(hw_i32(h), 0);
        FEQ(m->throttle_time_ms, 0);
    }
    if (v >= 7) {
        FEQ(hw_i16(h), 0);
        FEQ(m->error_code, 0);
        FEQ(hw_i32(h), m->session_id);
    }
    int32_t nt = hw_count(h, fx);
    FEQ(m->responses.count, nt);
    FCHECK(nt <= s->topics);
    unsigned answered = 0;
    for (int32_t i = 0; i < nt && i < m->responses.count; i++) {
        const kp_fetch_response_fetchable_topic_response *d = &m->responses.items[i];
        fetch_topic_name(f, h, d->topic, &d->topic_id);
        int32_t np = hw_count(h, fx);
        FEQ(d->partitions.count, np);
        for (int32_t j = 0; j < np && j < d->partitions.count; j++)
            fetch_resp_partition(f, h, &d->partitions.items[j], &answered);
        hw_tags(h, fx);
    }
    FCHECK((answered & ~s->partitions) == 0); /* only partitions that were asked for */
    hw_tags(h, fx);
}

/* ---- group APIs ---------------------------------------------------------------------------- */

/* ConsumerProtocolSubscription / ConsumerProtocolAssignment (the consumer protocol's embedded
 * schemas): version, then topics. A subscription must name vec3; an assignment's partitions
 * are added to *parts. */
static void consumer_protocol(const frame *f, hs blob, int assignment, unsigned *parts)
{
    if (assignment && blob.n == 0) return; /* a member left without partitions */
    hw h = hw_over(blob.p, blob.n < 0 ? 0 : (size_t)blob.n);
    FCHECK(hw_i16(&h) >= 0);
    int32_t n = hw_count(&h, 0);
    int vec3 = 0;
    for (int32_t i = 0; i < n && !h.bad; i++) {
        hs topic = hw_str(&h, 0);
        vec3 |= hs_is(topic, TOPIC);
        if (!assignment) continue;
        FCHECK(hs_is(topic, TOPIC));
        int32_t np = hw_count(&h, 0);
        for (int32_t j = 0; j < np && !h.bad; j++) {
            int32_t p = hw_i32(&h);
            FCHECK(p >= 0 && p < TOPIC_PARTITIONS && !(*parts & 1u << (p & 31)));
            *parts |= 1u << (p & 31);
        }
    }
    FCHECK(!h.bad && (vec3 || (assignment && n == 0)));
}

typedef struct join_sent {
    hs protocols[8];
    int n;
} join_sent;

static void join_group_req(const frame *f, hw *h, const kp_join_group_request *m, join_sent *js)
{
    int v = f->version;
    hs group = hw_str(h, 0);
    FSAME(group, m->group_id);
    FCHECK(is_group(f, group));
    FEQ(hw_i32(h), f->src->session_timeout_ms);
    FEQ(m->session_timeout_ms, f->src->session_timeout_ms);
    if (v >= 1) {
        int32_t rebalance = hw_i32(h);
        FEQ(m->rebalance_timeout_ms, rebalance);
        FCHECK(rebalance > 0);
    }
    FSAME(hw_str(h, 0), m->member_id);
    if (v >= 5) {
        FEQ(hw_str(h, 0).n, -1); /* no static membership */
        FEQ(m->group_instance_id.len, -1);
    }
    hs type = hw_str(h, 0);
    FSAME(type, m->protocol_type);
    FCHECK(hs_is(type, "consumer"));
    int32_t n = hw_count(h, 0);
    FEQ(m->protocols.count, n);
    FCHECK(n >= 1 && n <= 8);
    for (int32_t i = 0; i < n && i < m->protocols.count && i < 8; i++) {
        hs name = hw_str(h, 0), meta = hw_bytes(h, 0);
        FSAME(name, m->protocols.items[i].name);
        FSAME(meta, m->protocols.items[i].metadata);
        FCHECK(name.n > 0);
        consumer_protocol(f, meta, 0, NULL);
        js->protocols[js->n++] = name;
    }
}

static void join_group_resp(const frame *f, hw *h, const kp_join_group_response *m,
                            const join_sent *js)
{
    if (f->version >= 2) {
        FEQ(hw_i32(h), 0);
        FEQ(m->throttle_time_ms, 0);
    }
    FEQ(hw_i16(h), 0);
    FEQ(m->error_code, 0);
    int32_t generation = hw_i32(h);
    FEQ(m->generation_id, generation);
    FCHECK(generation >= 1);
    hs protocol = hw_str(h, 0);
    FSAME(protocol, m->protocol_name);
    int offered = 0;
    for (int i = 0; i < js->n; i++)
        offered |= protocol.n == js->protocols[i].n &&
                   memcmp(protocol.p, js->protocols[i].p, (size_t)protocol.n) == 0;
    FCHECK(offered);
    hs leader = hw_str(h, 0), member = hw_str(h, 0);
    FSAME(leader, m->leader);
    FSAME(member, m->member_id);
    FCHECK(leader.n > 0 && member.n > 0);
    int32_t n = hw_count(h, 0);
    FEQ(m->members.count, n);
    int is_leader = leader.n == member.n && memcmp(leader.p, member.p, (size_t)member.n) == 0;
    FCHECK(is_leader ? n >= 1 : n == 0); /* only the leader learns the members */
    int self = 0;
    for (int32_t i = 0; i < n && i < m->members.count; i++) {
        hs id = hw_str(h, 0);
        FSAME(id, m->members.items[i].member_id);
        self |= id.n == member.n && memcmp(id.p, member.p, (size_t)member.n) == 0;
        if (f->version >= 5) FSAME(hw_str(h, 0), m->members.items[i].group_instance_id);
        hs meta = hw_bytes(h, 0);
        FSAME(meta, m->members.items[i].metadata);
        consumer_protocol(f, meta, 0, NULL);
    }
    FCHECK(!is_leader || self);
}

/* group, generation, member [, instance id]: the prefix of SyncGroup and Heartbeat. */
static void member_prefix(const frame *f, hw *h, kp_str group, int32_t generation, kp_str member,
                          kp_str instance)
{
    hs g = hw_str(h, 0);
    FSAME(g, group);
    FCHECK(is_group(f, g));
    int32_t gen = hw_i32(h);
    FEQ(generation, gen);
    FCHECK(gen >= 1);
    hs id = hw_str(h, 0);
    FSAME(id, member);
    FCHECK(id.n > 0);
    if (f->version >= 3) {
        FEQ(hw_str(h, 0).n, -1);
        FEQ(instance.len, -1);
    }
}

static void sync_group_req(const frame *f, hw *h, const kp_sync_group_request *m)
{
    member_prefix(f, h, m->group_id, m->generation_id, m->member_id, m->group_instance_id);
    int32_t n = hw_count(h, 0);
    FEQ(m->assignments.count, n);
    unsigned parts = 0;
    for (int32_t i = 0; i < n && i < m->assignments.count; i++) {
        FSAME(hw_str(h, 0), m->assignments.items[i].member_id);
        hs blob = hw_bytes(h, 0);
        FSAME(blob, m->assignments.items[i].assignment);
        consumer_protocol(f, blob, 1, &parts);
    }
    if (n > 0) FEQ(parts, (1u << TOPIC_PARTITIONS) - 1); /* the leader hands out all, once */
}

static void sync_group_resp(const frame *f, hw *h, const kp_sync_group_response *m)
{
    if (f->version >= 1) {
        FEQ(hw_i32(h), 0);
        FEQ(m->throttle_time_ms, 0);
    }
    FEQ(hw_i16(h), 0);
    FEQ(m->error_code, 0);
    hs blob = hw_bytes(h, 0);
    FSAME(blob, m->assignment);
    unsigned parts = 0;
    consumer_protocol(f, blob, 1, &parts);
}

static void heartbeat_req(const frame *f, hw *h, const kp_heartbeat_request *m)
{
    member_prefix(f, h, m->group_id, m->generation_id, m->member_id, m->group_instance_id);
}

/* Heartbeat, LeaveGroup v1-2: throttle time and error code. */
static void throttle_error(const frame *f, hw *h, int32_t throttle, int16_t error)
{
    FEQ(hw_i32(h), 0);
    FEQ(throttle, 0);
    FEQ(hw_i16(h), 0);
    FEQ(error, 0);
}

static void offset_commit_req(const frame *f, hw *h, const kp_offset_commit_request *m, sent *s)
{
    int fx = f->flexible, v = f->version;
    hs group = hw_str(h, fx);
    FSAME(group, m->group_id);
    FCHECK(is_group(f, group));
    if (v >= 1) {
        int32_t generation = hw_i32(h);
        FEQ(m->generation_id_or_member_epoch, generation);
        FCHECK(generation >= 1);
        hs member = hw_str(h, fx);
        FSAME(member, m->member_id);
        FCHECK(member.n > 0);
    }
    if (v >= 7) {
        FEQ(hw_str(h, fx).n, -1);
        FEQ(m->group_instance_id.len, -1);
    }
    if (v >= 2 && v <= 4) {
        FEQ(hw_i64(h), -1); /* the broker's default retention */
        FEQ(m->retention_time_ms, -1);
    }
    int32_t nt = hw_count(h, fx);
    FEQ(nt, 1);
    FEQ(m->topics.count, nt);
    for (int32_t i = 0; i < nt && i < m->topics.count; i++) {
        const kp_offset_commit_request_offset_commit_request_topic *d = &m->topics.items[i];
        hs name = hw_str(h, fx);
        FSAME(name, d->name);
        FCHECK(hs_is(name, TOPIC));
        int32_t np = hw_count(h, fx);
        FEQ(d->partitions.count, np);
        for (int32_t j = 0; j < np && j < d->partitions.count; j++) {
            const kp_offset_commit_request_offset_commit_request_partition *p =
                &d->partitions.items[j];
            int32_t index = hw_i32(h);
            int64_t offset = hw_i64(h);
            FEQ(p->partition_index, index);
            FEQ(p->committed_offset, offset);
            FCHECK(index >= 0 && index < TOPIC_PARTITIONS && offset >= 0);
            s->partitions |= 1u << (index & 31);
            if (v >= 6) FEQ(hw_i32(h), p->committed_leader_epoch);
            if (v == 1) FEQ(hw_i64(h), p->commit_timestamp);
            FSAME(hw_str(h, fx), p->committed_metadata);
            hw_tags(h, fx);
        }
        hw_tags(h, fx);
    }
    s->topics = nt;
    hw_tags(h, fx);
}

static void offset_commit_resp(const frame *f, hw *h, const kp_offset_commit_response *m,
                               const sent *s)
{
    int fx = f->flexible;
    if (f->version >= 3) {
        FEQ(hw_i32(h), 0);
        FEQ(m->throttle_time_ms, 0);
    }
    int32_t nt = hw_count(h, fx);
    FEQ(nt, s->topics);
    FEQ(m->topics.count, nt);
    unsigned answered = 0;
    for (int32_t i = 0; i < nt && i < m->topics.count; i++) {
        const kp_offset_commit_response_offset_commit_response_topic *d = &m->topics.items[i];
        hs name = hw_str(h, fx);
        FSAME(name, d->name);
        FCHECK(hs_is(name, TOPIC));
        int32_t np = hw_count(h, fx);
        FEQ(d->partitions.count, np);
        for (int32_t j = 0; j < np && j < d->partitions.count; j++) {
            int32_t index = hw_i32(h);
            FEQ(d->partitions.items[j].partition_index, index);
            answered |= 1u << (index & 31);
            FEQ(hw_i16(h), expected_error(f));
            FEQ(d->partitions.items[j].error_code, expected_error(f));
            hw_tags(h, fx);
        }
        hw_tags(h, fx);
    }
    FEQ(answered, s->partitions);
    hw_tags(h, fx);
}

static void offset_fetch_req(const frame *f, hw *h, const kp_offset_fetch_request *m, sent *s)
{
    int fx = f->flexible, v = f->version;
    hs group = hw_str(h, fx);
    FSAME(group, m->group_id);
    FCHECK(is_group(f, group));
    int32_t nt = hw_count(h, fx);
    FEQ(m->topics.count, nt);
    FCHECK(nt == 1 || (nt == -1 && v >= 2));
    for (int32_t i = 0; i < nt && i < m->topics.count; i++) {
        const kp_offset_fetch_request_offset_fetch_request_topic *d = &m->topics.items[i];
        hs name = hw_str(h, fx);
        FSAME(name, d->name);
        FCHECK(hs_is(name, TOPIC));
        int32_t np = hw_count(h, fx);
        FEQ(d->partition_indexes.count, np);
        for (int32_t j = 0; j < np && j < d->partition_indexes.count; j++) {
            int32_t index = hw_i32(h);
            FEQ(d->partition_indexes.items[j], index);
            FCHECK(index >= 0 && index < TOPIC_PARTITIONS);
            s->partitions |= 1u << (index & 31);
        }
        hw_tags(h, fx);
    }
    s->topics = nt;
    if (v >= 7) FEQ(hw_i8(h), m->require_stable);
    hw_tags(h, fx);
}

static void
offset_fetch_partition(const frame *f, hw *h,
                       const kp_offset_fetch_response_offset_fetch_response_partition *p,
                       unsigned *answered)
{
    int fx = f->flexible;
    int32_t index = hw_i32(h);
    int64_t offset = hw_i64(h);
    FEQ(p->partition_index, index);
    FEQ(p->committed_offset, offset);
    *answered |= 1u << (index & 31);
    FCHECK(offset >= -1); /* -1: nothing committed yet */
    if (f->version >= 5) FEQ(hw_i32(h), p->committed_leader_epoch);
    FSAME(hw_str(h, fx), p->metadata);
    FEQ(hw_i16(h), 0);
    FEQ(p->error_code, 0);
    hw_tags(h, fx);
}

static void offset_fetch_resp(const frame *f, hw *h, const kp_offset_fetch_response *m,
                              const sent *s)
{
    int fx = f->flexible, v = f->version;
    if (v >= 3) {
        FEQ(hw_i32(h), 0);
        FEQ(m->throttle_time_ms, 0);
    }
    int32_t nt = hw_count(h, fx);
    FEQ(m->topics.count, nt);
    if (s->topics >= 0) FEQ(nt, s->topics);
    unsigned answered = 0;
    for (int32_t i = 0; i < nt && i < m->topics.count; i++) {
        const kp_offset_fetch_response_offset_fetch_response_topic *d = &m->topics.items[i];
        hs name = hw_str(h, fx);
        FSAME(name, d->name);
        FCHECK(hs_is(name, TOPIC));
        int32_t np = hw_count(h, fx);
        FEQ(d->partitions.count, np);
        for (int32_t j = 0; j < np && j < d->partitions.count; j++)
            offset_fetch_partition(f, h, &d->partitions.items[j], &answered);
        hw_tags(h, fx);
    }
    if (s->topics >= 0) FEQ(answered, s->partitions);
    if (v >= 2) {
        FEQ(hw_i16(h), 0);
        FEQ(m->error_code, 0);
    }
    hw_tags(h, fx);
}

static void leave_group_req(const frame *f, hw *h, const kp_leave_group_request *m)
{
    hs group = hw_str(h, 0);
    FSAME(group, m->group_id);
    FCHECK(is_group(f, group));
    if (f->version <= 2) {
        hs member = hw_str(h, 0);
        FSAME(member, m->member_id);
        FCHECK(member.n > 0);
        return;
    }
    int32_t n = hw_count(h, 0);
    FEQ(n, 1); /* a consumer leaves for itself */
    FEQ(m->members.count, n);
    for (int32_t i = 0; i < n && i < m->members.count; i++) {
        hs member = hw_str(h, 0);
        FSAME(member, m->members.items[i].member_id);
        FCHECK(member.n > 0);
        FEQ(hw_str(h, 0).n, -1);
    }
}

/* kafkajs's LeaveGroup v3 answer (a quirk, test_vectors.c): the member was already gone
 * (UNKNOWN_MEMBER_ID after the session ended) and the mock stops after the error code. */
static void leave_group_v3_quirk(const frame *f, hw *h)
{
    FEQ(hw_i32(h), 0);
    FEQ(hw_i16(h), 25);
    FEQ(h->at, h->len);
}

/* ---- one exchange ------------------------------------------------------------------------- */

typedef struct exchange {
    frame req, resp;
    void *req_msg, *resp_msg; /* generated decodings; NULL when the frame does not decode */
    size_t req_end, resp_end; /* where the decoder stopped */
    int resp_quirk;           /* an answer test_vectors.c lists as undecodable: hand walk only */
    json_t *manifest;
} exchange;

/* Dispatches to the API's walkers; the request side first (it says what the answer must
 * contain). Returns 0 for an api that is not checked field by field. */
static int walk(exchange *x, hw *rq, hw *rs)
{
    frame *q = &x->req, *r = &x->resp;
    sent s = {0, 0};
    join_sent js = {.n = 0};
    int all = 0;
    switch (q->key) {
    case 0:
        produce_req(q, rq, x->req_msg, &s);
        produce_resp(r, rs, x->resp_msg, &s);
        break;
    case 1:
        fetch_req(q, rq, x->req_msg, &s);
        fetch_resp(r, rs, x->resp_msg, &s);
        break;
    case 3:
        metadata_req(q, rq, x->req_msg, &all);
        metadata_resp(r, rs, x->resp_msg, all);
        break;
    case 8:
        offset_commit_req(q, rq, x->req_msg, &s);
        offset_commit_resp(r, rs, x->resp_msg, &s);
        break;
    case 9:
        offset_fetch_req(q, rq, x->req_msg, &s);
        offset_fetch_resp(r, rs, x->resp_msg, &s);
        break;
    case 10:
        find_coordinator_req(q, rq, x->req_msg);
        find_coordinator_resp(r, rs, x->resp_msg);
        break;
    case 11:
        join_group_req(q, rq, x->req_msg, &js);
        join_group_resp(r, rs, x->resp_msg, &js);
        break;
    case 12: {
        const kp_heartbeat_response *m = x->resp_msg;
        heartbeat_req(q, rq, x->req_msg);
        throttle_error(r, rs, m->throttle_time_ms, m->error_code);
        break;
    }
    case 13: {
        const kp_leave_group_response *m = x->resp_msg;
        leave_group_req(q, rq, x->req_msg);
        if (x->resp_quirk)
            leave_group_v3_quirk(r, rs);
        else
            throttle_error(r, rs, m->throttle_time_ms, m->error_code);
        break;
    }
    case 14:
        sync_group_req(q, rq, x->req_msg);
        sync_group_resp(r, rs, x->resp_msg);
        break;
    case 18:
        api_versions_req(q, rq, x->req_msg);
        if (x->resp_quirk)
            api_versions_unsupported(q, rs);
        else
            api_versions_resp(r, rs, x->resp_msg, x->manifest);
        break;
    default:
        return 0;
    }
    return 1;
}

/* ---- headers, by hand and by kp_frame --------------------------------------------------- */

static int client_id_known(const source *src, hs id)
{
    return hs_is(id, src->client_ids[0]) || (src->client_ids[1] && hs_is(id, src->client_ids[1]));
}

/* Request header v1 (v2 when flexible: + tagged fields; the client id stays classic). */
static int32_t request_header(frame *f, int16_t want_key)
{
    hw h = hw_over(f->buf, f->len);
    FEQ(hw_i16(&h), want_key);
    FEQ(hw_i16(&h), f->version);
    int32_t corr = hw_i32(&h);
    hs client = hw_str(&h, 0);
    if (!kt_count(client_id_known(f->src, client)))
        kt_fail(__FILE__, __LINE__, "%s: client id \"%.*s\"", cur, client.n < 0 ? 0 : client.n,
                client.n < 0 ? "" : (const char *)client.p);
    hw_tags(&h, f->flexible);
    FCHECK(!h.bad);
    f->body_at = h.at;

    kp_request_header d;
    size_t len = 0;
    FEQ(kp_request_header_parse(f->buf, f->len, NULL, &d, &len), KP_FRAME_OK);
    FEQ(d.api_key, want_key);
    FEQ(d.api_version, f->version);
    FEQ(d.correlation_id, corr);
    FSAME(client, d.client_id);
    FEQ(d.header_version, f->flexible ? 2 : 1);
    FEQ(len, h.at);
    return corr;
}

/* Response header v0 (v1 when flexible; ApiVersions always v0). */
static int32_t response_header(frame *f)
{
    hw h = hw_over(f->buf, f->len);
    int32_t corr = hw_i32(&h);
    hw_tags(&h, f->flexible && f->key != 18);
    FCHECK(!h.bad);
    f->body_at = h.at;
    FEQ(kp_api_response_header_version(f->key, f->version), f->flexible && f->key != 18);
    kp_response_header d;
    size_t len = 0;
    int hv = f->flexible && f->key != 18;
    FEQ(kp_response_header_parse(f->buf, f->len, hv, NULL, &d, &len), KP_FRAME_OK);
    FEQ(d.correlation_id, corr);
    FEQ(len, h.at);
    return corr;
}

static void *decode(const frame *f, const kp_msg_codec *codec, kp_arena *a, size_t *end)
{
    void *msg = kp_arena_calloc(a, 1, codec->size);
    kp_reader r;
    kp_reader_init(&r, f->buf + f->body_at, f->len - f->body_at);
    if (!msg || codec->decode(&r, a, f->version, msg) != 0 || r.err) return NULL;
    *end = f->body_at + (size_t)(r.p - (f->buf + f->body_at));
    return msg;
}

/* The hand walk and the decoder stop at the same byte; only the listed quirks leave bytes. */
static void check_ends(const frame *f, const hw *h, void *msg, size_t dec_end, size_t trailing)
{
    FCHECK(!h->bad);
    FEQ(f->body_at + h->at, f->len - trailing);
    if (msg) FEQ(dec_end, f->len - trailing);
}

static size_t trailing_of(const char *dir, const char *file)
{
    /* The two mock answers with extra bytes (test_vectors.c lists why). */
    if (!strcmp(dir, "librdkafka-2.12") && !strcmp(file, "Metadata_v12_resp.bin")) return 1;
    if (!strcmp(dir, "librdkafka-2.12") && !strcmp(file, "ListOffsets_v5_resp.bin")) return 4;
    return 0;
}

/* ---- per client directory ----------------------------------------------------------------- */

typedef struct pair {
    char req[128], resp[128];
    int order; /* Metadata first: later checks use the brokers and topic id it shows */
} pair;

static int pair_cmp(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    return x->order != y->order ? x->order - y->order : strcmp(x->req, y->req);
}

#define MAX_PAIRS 64

static int list_pairs(const char *dir, pair *pairs)
{
    DIR *d = opendir(dir);
    KT_CHECK(d != NULL);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    for (int guard = 0; guard < 1000 && n < MAX_PAIRS && (e = readdir(d)); guard++) {
        vector v;
        if (!strstr(e->d_name, "_req.bin") || vector_parse_name(dir, e->d_name, &v) != 0) continue;
        pair *p = &pairs[n++];
        snprintf(p->req, sizeof(p->req), "%s", e->d_name);
        snprintf(p->resp, sizeof(p->resp), "%s_v%d_resp.bin", v.api, v.version);
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", dir, p->resp);
        if (access(path, R_OK) != 0)
            snprintf(p->resp, sizeof(p->resp), "%s_v%d_resp_unsupported.bin", v.api, v.version);
        p->order = strcmp(v.api, "Metadata") == 0 ? 0 : 1;
    }
    closedir(d);
    qsort(pairs, (size_t)n, sizeof(pair), pair_cmp);
    return n;
}

static cluster_view *view_for(cluster_view *views, const char *broker)
{
    for (int i = 0; i < 2; i++) {
        if (!views[i].broker[0]) snprintf(views[i].broker, sizeof(views[i].broker), "%s", broker);
        if (strcmp(views[i].broker, broker) == 0) return &views[i];
    }
    return &views[1];
}

static uint8_t *load_frame(frame *f, const char *dir, const char *file, json_t *manifest,
                           int *corr_out)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s/%s", VECTORS_DIR, dir, file);
    uint8_t *buf = vector_read(path, &f->len);
    f->buf = buf;
    f->file = file;
    json_t *e = json_object_get(manifest, file);
    KT_CHECK(buf != NULL && e != NULL);
    f->broker = json_string_value(json_object_get(e, "broker"));
    if (!f->broker) f->broker = "?";
    *corr_out = (int)json_integer_value(json_object_get(e, "correlation_id"));
    return buf;
}

/* Returns 1 when the api was checked field by field. */
static int check_exchange(const source *src, const pair *p, json_t *manifest, cluster_view *views)
{
    vector v;
    vector_parse_name(src->dir, p->req, &v);
    const spec_api *api = spec_api_named(v.api);
    snprintf(cur, sizeof(cur), "%s/%s", src->dir, p->req);
    FCHECK(api != NULL);
    if (!api) return 0;
    exchange x = {.manifest = manifest};
    int corr_req = 0, corr_resp = 0;
    frame base = {.src = src,
                  .key = api->key,
                  .version = v.version,
                  .flexible = v.version >= api->flexible_min};
    x.req = x.resp = base;
    uint8_t *qb = load_frame(&x.req, src->dir, p->req, manifest, &corr_req);
    uint8_t *rb = load_frame(&x.resp, src->dir, p->resp, manifest, &corr_resp);
    int checked = 0;
    if (qb && rb) {
        x.req.view = x.resp.view = view_for(views, x.resp.broker);
        /* kgate's api table agrees with the spec on where flexible versions start. */
        FEQ(kp_api_get(api->key) ? kp_api_get(api->key)->flexible_min : -2, api->flexible_min);
        FEQ(request_header(&x.req, api->key), corr_req);
        snprintf(cur, sizeof(cur), "%s/%s", src->dir, p->resp);
        FEQ(response_header(&x.resp), corr_resp);
        FEQ(corr_req, corr_resp);
        kp_arena a;
        kp_arena_init(&a);
        x.req_msg = decode(&x.req, kp_api_get(api->key)->request, &a, &x.req_end);
        /* The mocks' undecodable answers (test_vectors.c checks how they fail). */
        x.resp_quirk =
            strstr(p->resp, "_unsupported") != NULL ||
            (!strcmp(src->dir, "kafkajs-2.2.4") && !strcmp(p->resp, "LeaveGroup_v3_resp.bin"));
        if (!x.resp_quirk)
            x.resp_msg = decode(&x.resp, kp_api_get(api->key)->response, &a, &x.resp_end);
        hw rq = hw_over(x.req.buf + x.req.body_at, x.req.len - x.req.body_at);
        hw rs = hw_over(x.resp.buf + x.resp.body_at, x.resp.len - x.resp.body_at);
        snprintf(cur, sizeof(cur), "%s/%s+%s", src->dir, p->req, p->resp);
        FCHECK(x.req_msg != NULL && (x.resp_msg != NULL || x.resp_quirk));
        if (x.req_msg && (x.resp_msg || x.resp_quirk)) checked = walk(&x, &rq, &rs);
        if (checked) {
            check_ends(&x.req, &rq, x.req_msg, x.req_end, 0);
            check_ends(&x.resp, &rs, x.resp_msg, x.resp_end, trailing_of(src->dir, p->resp));
        }
        kp_arena_free(&a);
    }
    free(qb);
    free(rb);
    return checked;
}

static void check_source(const source *src, int *apis_checked)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/%s/manifest.json", VECTORS_DIR, src->dir);
    json_t *manifest = json_load_file(path, 0, NULL);
    KT_CHECK(manifest != NULL);
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/%s", VECTORS_DIR, src->dir);
    pair pairs[MAX_PAIRS];
    int n = list_pairs(dir, pairs);
    cluster_view views[2];
    memset(views, 0, sizeof(views));
    for (int i = 0; i < n && manifest; i++)
        if (check_exchange(src, &pairs[i], manifest, views)) {
            vector v;
            vector_parse_name(dir, pairs[i].req, &v);
            const spec_api *api = spec_api_named(v.api);
            if (api) apis_checked[api->key]++;
        }
    json_decref(manifest);
}

KT_TEST(captured_frames_hold_the_values_the_capture_produced)
{
    int apis_checked[128] = {0};
    for (size_t i = 0; i < SOURCES; i++)
        check_source(&sources[i], apis_checked);
    /* Every API kgate rewrites or inspects was checked, from every client that uses it. */
    static const struct {
        int16_t key;
        int min_exchanges;
    } want[] = {{0, 5},  {1, 5},  {3, 10}, {8, 5},  {9, 6}, {10, 4},
                {11, 4}, {12, 3}, {13, 5}, {14, 4}, {18, 6}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!kt_count(apis_checked[want[i].key] >= want[i].min_exchanges))
            kt_fail(__FILE__, __LINE__, "api %d: %d exchanges checked, want %d", want[i].key,
                    apis_checked[want[i].key], want[i].min_exchanges);
}

KT_MAIN()
