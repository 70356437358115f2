#include "route/kg_inspect.h"

#include "kp_msgs.h"

#define API_PRODUCE 0
#define API_FETCH 1
#define API_OFFSET_COMMIT 8

int kg_inspect_wanted(int16_t api_key)
{
    return api_key == API_PRODUCE || api_key == API_FETCH || api_key == API_OFFSET_COMMIT;
}

static void count(uint32_t *results, uint32_t *errors, int16_t error_code)
{
    (*results)++;
    if (error_code != 0) (*errors)++;
}

static int inspect_produce(kp_reader *r, kp_arena *a, int16_t v, uint32_t *results,
                           uint32_t *errors)
{
    kp_produce_response m;
    if (kp_produce_response_decode(r, a, v, &m) < 0) return -1;
    for (int32_t t = 0; t < m.responses.count; t++)
        for (int32_t p = 0; p < m.responses.items[t].partition_responses.count; p++)
            count(results, errors, m.responses.items[t].partition_responses.items[p].error_code);
    return 0;
}

static int inspect_fetch(kp_reader *r, kp_arena *a, int16_t v, uint32_t *results, uint32_t *errors)
{
    kp_fetch_response m;
    if (kp_fetch_response_decode(r, a, v, &m) < 0) return -1;
    if (m.error_code != 0) count(results, errors, m.error_code);
    for (int32_t t = 0; t < m.responses.count; t++)
        for (int32_t p = 0; p < m.responses.items[t].partitions.count; p++)
            count(results, errors, m.responses.items[t].partitions.items[p].error_code);
    return 0;
}

static int inspect_commit(kp_reader *r, kp_arena *a, int16_t v, uint32_t *results, uint32_t *errors)
{
    kp_offset_commit_response m;
    if (kp_offset_commit_response_decode(r, a, v, &m) < 0) return -1;
    for (int32_t t = 0; t < m.topics.count; t++)
        for (int32_t p = 0; p < m.topics.items[t].partitions.count; p++)
            count(results, errors, m.topics.items[t].partitions.items[p].error_code);
    return 0;
}

int kg_inspect_errors(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                      uint32_t *results, uint32_t *errors)
{
    kp_arena arena;
    kp_arena_init(&arena);
    kp_reader r;
    kp_reader_init(&r, body, len);
    *results = *errors = 0;
    int rc = -1;
    if (api_key == API_PRODUCE)
        rc = inspect_produce(&r, &arena, api_version, results, errors);
    else if (api_key == API_FETCH)
        rc = inspect_fetch(&r, &arena, api_version, results, errors);
    else if (api_key == API_OFFSET_COMMIT)
        rc = inspect_commit(&r, &arena, api_version, results, errors);
    kp_arena_free(&arena);
    return rc == 0 && !r.err ? 0 : -1;
}
