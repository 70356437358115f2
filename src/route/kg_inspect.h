/* kg_inspect — counts the errors a client sees in Produce, Fetch and OffsetCommit responses.
 *
 * Used only while an experiment watches a virtual cluster: inspecting means decoding the
 * response, which pass-through traffic never pays for.
 */
#ifndef KG_INSPECT_H
#define KG_INSPECT_H

#include <stddef.h>
#include <stdint.h>

/* True for the APIs whose responses kg_inspect_errors understands. */
int kg_inspect_wanted(int16_t api_key);

/* Decodes a response BODY (after the response header) and counts its partition-level results
 * and how many carry an error (a top-level error counts once). Returns 0, or -1 when the body
 * does not decode. */
int kg_inspect_errors(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                      uint32_t *results, uint32_t *errors);

#endif
