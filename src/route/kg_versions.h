/* kg_versions — ApiVersions: what a backend supports, what kgate can decode, and the answer a
 * client gets (the intersection), built here so that the engine never forwards ApiVersions.
 */
#ifndef KG_VERSIONS_H
#define KG_VERSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kp_msgs.h"
#include "proto/kp_prim.h"

#define KG_VERSIONS_UNSUPPORTED_VERSION 35 /* Kafka error code UNSUPPORTED_VERSION */

/* Per api key: the supported version range; min -1 (and max -1) = not supported. */
typedef struct kg_version_ranges {
    int16_t min[KP_API_MAX];
    int16_t max[KP_API_MAX];
} kg_version_ranges;

/* Marks every api key unsupported. */
void kg_versions_clear(kg_version_ranges *out);

/* Parses a backend's ApiVersions response BODY (after the response header, which is always
 * v0 for ApiVersions) sent for a request of `version`. A broker that did not support that
 * version answers in v0 format, so a body that does not decode at `version` is retried as v0.
 * Api keys kgate does not know are ignored. *error_code (may be NULL) gets the response's error
 * code. Returns 0 when the body decoded (even if error_code != 0), -1 when malformed. */
int kg_versions_parse(const uint8_t *body, size_t len, int16_t version, kg_version_ranges *out,
                      int16_t *error_code);

/* acc = acc ∩ other, per api key; an empty intersection is unsupported. */
void kg_versions_intersect(kg_version_ranges *acc, const kg_version_ranges *other);

/* What kgate can offer clients: every client-facing api key in the generated table (see
 * kp_api_client_facing), its full version range. */
void kg_versions_from_codecs(kg_version_ranges *out);

bool kg_versions_supported(const kg_version_ranges *ranges, int16_t api_key, int16_t version);

/* Highest ApiVersions request version kgate answers; the engine answers a newer request with
 * kg_versions_build_response(..., 0, ..., KG_VERSIONS_UNSUPPORTED_VERSION, 0). */
int16_t kg_versions_max_apiversions(void);

/* Appends a COMPLETE response frame for the client to `out`: 4-byte size, response header v0
 * (correlation id), ApiVersions response body at request_version listing every supported key
 * of `ranges` (features fields left empty). Returns 0, or -1 if request_version is not one kgate
 * can encode or the writer failed. */
int kg_versions_build_response(kp_writer *out, int16_t request_version, int32_t correlation_id,
                               const kg_version_ranges *ranges, int16_t error_code,
                               int32_t throttle_ms);

#endif
