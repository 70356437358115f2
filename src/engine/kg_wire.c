#include "engine/kg_wire.h"

#include "kp_msgs.h"

/* Produce's acks follow the transactional id (v3+); acks=0 means the broker never answers. */
static int wire_produce_acks(kp_reader *r, int16_t version, int flexible)
{
    if (version >= 3)
        (void)kp_read_str(r, flexible, true);
    return kp_read_i16(r);
}

int kg_wire_parse_request(const uint8_t *body, size_t avail, size_t frame_size,
                          kg_wire_request *out)
{
    out->api_key = -1;
    out->api_version = -1;
    out->correlation_id = -1;
    out->client_id = KP_STR_NULL;
    out->no_response = 0;
    out->error = NULL;
    if (avail < KG_WIRE_MIN_REQUEST)
        return avail < frame_size ? KG_WIRE_NEED_MORE : KG_WIRE_BAD;

    kp_reader r;
    kp_reader_init(&r, body, avail);
    out->api_key = kp_read_i16(&r);
    out->api_version = kp_read_i16(&r);
    out->correlation_id = kp_read_i32(&r);
    if (out->api_key < 0 || out->api_version < 0) {
        out->error = "negative api key or version";
        return KG_WIRE_BAD;
    }
    int header_version = kp_api_request_header_version(out->api_key, out->api_version);
    if (header_version < 0)
        return KG_WIRE_OK; /* an API kgate does not know: pass it through untouched */
    if (header_version >= 1)
        out->client_id = kp_read_nullable_string(&r);
    if (header_version >= 2 && !r.err)
        kp_read_tagged_fields(&r, NULL, NULL);
    if (out->api_key == KG_API_PRODUCE && !r.err)
        out->no_response = wire_produce_acks(&r, out->api_version, header_version >= 2) == 0;
    if (!r.err)
        return KG_WIRE_OK;
    if (r.err == KP_ERR_SHORT && avail < frame_size)
        return KG_WIRE_NEED_MORE;
    out->error = kp_strerror(r.err);
    return KG_WIRE_BAD;
}

size_t kg_wire_response_header_len(int16_t api_key, int16_t api_version, const uint8_t *body,
                                   size_t size)
{
    kp_reader r;
    kp_reader_init(&r, body, size);
    (void)kp_read_i32(&r);
    if (kp_api_response_header_version(api_key, api_version) >= 1)
        kp_read_tagged_fields(&r, NULL, NULL);
    return r.err ? 0 : (size_t)(r.p - body);
}
