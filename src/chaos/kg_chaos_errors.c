/* Kafka error names and codes, and which codes a partition of each API can carry.
 *
 * The codes are the protocol's (the "Error Codes" table of the Kafka protocol guide). The
 * per-API sets list what a broker really puts in a partition's error_code of that response,
 * with the first version whose clients know the code (e.g. KAFKA_STORAGE_ERROR appeared in
 * Produce v4 and Fetch v6): fabricating an error a client cannot meet from a real broker would
 * test nothing real. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chaos/kg_chaos_internal.h"

typedef struct error_name {
    int16_t code;
    const char *name;
} error_name;

static const error_name error_names[] = {
    {-1, "UNKNOWN_SERVER_ERROR"},
    {0, "NONE"},
    {1, "OFFSET_OUT_OF_RANGE"},
    {2, "CORRUPT_MESSAGE"},
    {3, "UNKNOWN_TOPIC_OR_PARTITION"},
    {4, "INVALID_FETCH_SIZE"},
    {5, "LEADER_NOT_AVAILABLE"},
    {6, "NOT_LEADER_OR_FOLLOWER"},
    {7, "REQUEST_TIMED_OUT"},
    {8, "BROKER_NOT_AVAILABLE"},
    {9, "REPLICA_NOT_AVAILABLE"},
    {10, "MESSAGE_TOO_LARGE"},
    {11, "STALE_CONTROLLER_EPOCH"},
    {12, "OFFSET_METADATA_TOO_LARGE"},
    {13, "NETWORK_EXCEPTION"},
    {14, "COORDINATOR_LOAD_IN_PROGRESS"},
    {15, "COORDINATOR_NOT_AVAILABLE"},
    {16, "NOT_COORDINATOR"},
    {17, "INVALID_TOPIC_EXCEPTION"},
    {18, "RECORD_LIST_TOO_LARGE"},
    {19, "NOT_ENOUGH_REPLICAS"},
    {20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND"},
    {21, "INVALID_REQUIRED_ACKS"},
    {22, "ILLEGAL_GENERATION"},
    {23, "INCONSISTENT_GROUP_PROTOCOL"},
    {24, "INVALID_GROUP_ID"},
    {25, "UNKNOWN_MEMBER_ID"},
    {26, "INVALID_SESSION_TIMEOUT"},
    {27, "REBALANCE_IN_PROGRESS"},
    {28, "INVALID_COMMIT_OFFSET_SIZE"},
    {29, "TOPIC_AUTHORIZATION_FAILED"},
    {30, "GROUP_AUTHORIZATION_FAILED"},
    {31, "CLUSTER_AUTHORIZATION_FAILED"},
    {32, "INVALID_TIMESTAMP"},
    {33, "UNSUPPORTED_SASL_MECHANISM"},
    {34, "ILLEGAL_SASL_STATE"},
    {35, "UNSUPPORTED_VERSION"},
    {36, "TOPIC_ALREADY_EXISTS"},
    {37, "INVALID_PARTITIONS"},
    {38, "INVALID_REPLICATION_FACTOR"},
    {39, "INVALID_REPLICA_ASSIGNMENT"},
    {40, "INVALID_CONFIG"},
    {41, "NOT_CONTROLLER"},
    {42, "INVALID_REQUEST"},
    {43, "UNSUPPORTED_FOR_MESSAGE_FORMAT"},
    {44, "POLICY_VIOLATION"},
    {45, "OUT_OF_ORDER_SEQUENCE_NUMBER"},
    {46, "DUPLICATE_SEQUENCE_NUMBER"},
    {47, "INVALID_PRODUCER_EPOCH"},
    {48, "INVALID_TXN_STATE"},
    {49, "INVALID_PRODUCER_ID_MAPPING"},
    {50, "INVALID_TRANSACTION_TIMEOUT"},
    {51, "CONCURRENT_TRANSACTIONS"},
    {52, "TRANSACTION_COORDINATOR_FENCED"},
    {53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"},
    {54, "SECURITY_DISABLED"},
    {55, "OPERATION_NOT_ATTEMPTED"},
    {56, "KAFKA_STORAGE_ERROR"},
    {57, "LOG_DIR_NOT_FOUND"},
    {58, "SASL_AUTHENTICATION_FAILED"},
    {59, "UNKNOWN_PRODUCER_ID"},
    {60, "REASSIGNMENT_IN_PROGRESS"},
    {61, "DELEGATION_TOKEN_AUTH_DISABLED"},
    {62, "DELEGATION_TOKEN_NOT_FOUND"},
    {63, "DELEGATION_TOKEN_OWNER_MISMATCH"},
    {64, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED"},
    {65, "DELEGATION_TOKEN_AUTHORIZATION_FAILED"},
    {66, "DELEGATION_TOKEN_EXPIRED"},
    {67, "INVALID_PRINCIPAL_TYPE"},
    {68, "NON_EMPTY_GROUP"},
    {69, "GROUP_ID_NOT_FOUND"},
    {70, "FETCH_SESSION_ID_NOT_FOUND"},
    {71, "INVALID_FETCH_SESSION_EPOCH"},
    {72, "LISTENER_NOT_FOUND"},
    {73, "TOPIC_DELETION_DISABLED"},
    {74, "FENCED_LEADER_EPOCH"},
    {75, "UNKNOWN_LEADER_EPOCH"},
    {76, "UNSUPPORTED_COMPRESSION_TYPE"},
    {77, "STALE_BROKER_EPOCH"},
    {78, "OFFSET_NOT_AVAILABLE"},
    {79, "MEMBER_ID_REQUIRED"},
    {80, "PREFERRED_LEADER_NOT_AVAILABLE"},
    {81, "GROUP_MAX_SIZE_REACHED"},
    {82, "FENCED_INSTANCE_ID"},
    {83, "ELIGIBLE_LEADERS_NOT_AVAILABLE"},
    {84, "ELECTION_NOT_NEEDED"},
    {85, "NO_REASSIGNMENT_IN_PROGRESS"},
    {86, "GROUP_SUBSCRIBED_TO_TOPIC"},
    {87, "INVALID_RECORD"},
    {88, "UNSTABLE_OFFSET_COMMIT"},
    {89, "THROTTLING_QUOTA_EXCEEDED"},
    {90, "PRODUCER_FENCED"},
    {91, "RESOURCE_NOT_FOUND"},
    {92, "DUPLICATE_RESOURCE"},
    {93, "UNACCEPTABLE_CREDENTIAL"},
    {94, "INCONSISTENT_VOTER_SET"},
    {95, "INVALID_UPDATE_VERSION"},
    {96, "FEATURE_UPDATE_FAILED"},
    {97, "PRINCIPAL_DESERIALIZATION_FAILURE"},
    {98, "SNAPSHOT_NOT_FOUND"},
    {99, "POSITION_OUT_OF_RANGE"},
    {100, "UNKNOWN_TOPIC_ID"},
    {101, "DUPLICATE_BROKER_REGISTRATION"},
    {102, "BROKER_ID_NOT_REGISTERED"},
    {103, "INCONSISTENT_TOPIC_ID"},
    {104, "INCONSISTENT_CLUSTER_ID"},
    {105, "TRANSACTIONAL_ID_NOT_FOUND"},
    {106, "FETCH_SESSION_TOPIC_ID_ERROR"},
    {107, "INELIGIBLE_REPLICA"},
    {108, "NEW_LEADER_ELECTED"},
    {109, "OFFSET_MOVED_TO_TIERED_STORAGE"},
    {110, "FENCED_MEMBER_EPOCH"},
    {111, "UNRELEASED_INSTANCE_ID"},
    {112, "UNSUPPORTED_ASSIGNOR"},
    {113, "STALE_MEMBER_EPOCH"},
    {114, "MISMATCHED_ENDPOINT_TYPE"},
    {115, "UNSUPPORTED_ENDPOINT_TYPE"},
    {116, "UNKNOWN_CONTROLLER_ID"},
    {117, "UNKNOWN_SUBSCRIPTION_ID"},
    {118, "TELEMETRY_TOO_LARGE"},
    {119, "INVALID_REGISTRATION"},
    {120, "TRANSACTION_ABORTABLE"},
};

#define N_NAMES (sizeof(error_names) / sizeof(error_names[0]))

int kg_chaos_error_code(const char *name, int16_t *code)
{
    for (size_t i = 0; i < N_NAMES; i++)
        if (strcasecmp(error_names[i].name, name) == 0) {
            *code = error_names[i].code;
            return 0;
        }
    /* The pre-2.4 name of NOT_LEADER_OR_FOLLOWER, still what many clients print. */
    if (strcasecmp(name, "NOT_LEADER_FOR_PARTITION") == 0) {
        *code = 6;
        return 0;
    }
    return -1;
}

const char *kg_chaos_error_name(int16_t code)
{
    for (size_t i = 0; i < N_NAMES; i++)
        if (error_names[i].code == code) return error_names[i].name;
    return NULL;
}

/* A code an API's partitions can carry, from MIN_VERSION of that API on. */
typedef struct api_error {
    int16_t code;
    int16_t min_version;
} api_error;

/* ProduceResponse partition errors (write path: validation, replication, idempotence,
 * transactions). */
static const api_error produce_errors[] = {
    {-1, 0},  /* UNKNOWN_SERVER_ERROR */
    {2, 0},   /* CORRUPT_MESSAGE */
    {3, 0},   /* UNKNOWN_TOPIC_OR_PARTITION */
    {5, 0},   /* LEADER_NOT_AVAILABLE */
    {6, 0},   /* NOT_LEADER_OR_FOLLOWER */
    {7, 0},   /* REQUEST_TIMED_OUT */
    {10, 0},  /* MESSAGE_TOO_LARGE */
    {17, 0},  /* INVALID_TOPIC_EXCEPTION */
    {18, 0},  /* RECORD_LIST_TOO_LARGE */
    {19, 0},  /* NOT_ENOUGH_REPLICAS */
    {20, 0},  /* NOT_ENOUGH_REPLICAS_AFTER_APPEND */
    {21, 0},  /* INVALID_REQUIRED_ACKS */
    {29, 0},  /* TOPIC_AUTHORIZATION_FAILED */
    {32, 2},  /* INVALID_TIMESTAMP (timestamps came with v2) */
    {43, 0},  /* UNSUPPORTED_FOR_MESSAGE_FORMAT */
    {45, 3},  /* OUT_OF_ORDER_SEQUENCE_NUMBER (idempotence: record batches, v3+) */
    {46, 3},  /* DUPLICATE_SEQUENCE_NUMBER */
    {47, 3},  /* INVALID_PRODUCER_EPOCH */
    {48, 3},  /* INVALID_TXN_STATE */
    {49, 3},  /* INVALID_PRODUCER_ID_MAPPING */
    {53, 3},  /* TRANSACTIONAL_ID_AUTHORIZATION_FAILED */
    {56, 4},  /* KAFKA_STORAGE_ERROR */
    {59, 3},  /* UNKNOWN_PRODUCER_ID */
    {87, 8},  /* INVALID_RECORD */
    {120, 11} /* TRANSACTION_ABORTABLE (KIP-890) */
};

/* FetchResponse partition errors. */
static const api_error fetch_errors[] = {
    {-1, 0},   /* UNKNOWN_SERVER_ERROR */
    {1, 0},    /* OFFSET_OUT_OF_RANGE */
    {2, 0},    /* CORRUPT_MESSAGE */
    {3, 0},    /* UNKNOWN_TOPIC_OR_PARTITION */
    {5, 0},    /* LEADER_NOT_AVAILABLE */
    {6, 0},    /* NOT_LEADER_OR_FOLLOWER */
    {9, 0},    /* REPLICA_NOT_AVAILABLE */
    {29, 0},   /* TOPIC_AUTHORIZATION_FAILED */
    {56, 6},   /* KAFKA_STORAGE_ERROR */
    {74, 9},   /* FENCED_LEADER_EPOCH (KIP-320) */
    {75, 9},   /* UNKNOWN_LEADER_EPOCH */
    {76, 10},  /* UNSUPPORTED_COMPRESSION_TYPE (zstd, v10) */
    {100, 13}, /* UNKNOWN_TOPIC_ID (topic ids, v13) */
    {103, 13}, /* INCONSISTENT_TOPIC_ID */
};

/* ListOffsets, OffsetForLeaderEpoch and DeleteRecords: leadership, existence, authorization. */
static const api_error list_offsets_errors[] = {
    {-1, 0}, {3, 0}, {5, 0}, {6, 0}, {29, 0}, {56, 0}, {74, 4}, {75, 4}, {78, 5},
};
static const api_error offset_for_leader_epoch_errors[] = {
    {-1, 0}, {3, 0}, {5, 0}, {6, 0}, {29, 0}, {56, 0}, {74, 2}, {75, 2},
};
static const api_error delete_records_errors[] = {
    {-1, 0}, {1, 0}, {3, 0}, {5, 0}, {6, 0}, {7, 0}, {29, 0}, {44, 0}, {56, 0},
};

/* What a client meets while partition leadership moves. */
static const int16_t leadership_errors[] = {5, 6, 8, 9, 74, 75};

static const api_error *errors_of(int16_t api_key, size_t *n)
{
#define RETURN_SET(set)                                                                            \
    do {                                                                                           \
        *n = sizeof(set) / sizeof(set[0]);                                                         \
        return set;                                                                                \
    } while (0)
    switch (api_key) {
    case KG_API_PRODUCE:
        RETURN_SET(produce_errors);
    case KG_API_FETCH:
        RETURN_SET(fetch_errors);
    case KG_API_LIST_OFFSETS:
        RETURN_SET(list_offsets_errors);
    case KG_API_OFFSET_FOR_LEADER_EPOCH:
        RETURN_SET(offset_for_leader_epoch_errors);
    case KG_API_DELETE_RECORDS:
        RETURN_SET(delete_records_errors);
    default:
        *n = 0;
        return NULL;
    }
#undef RETURN_SET
}

bool kg_chaos_error_allowed(int16_t api_key, int16_t code, int16_t *min_version)
{
    size_t n;
    const api_error *set = errors_of(api_key, &n);
    for (size_t i = 0; i < n; i++)
        if (set[i].code == code) {
            if (min_version) *min_version = set[i].min_version;
            return true;
        }
    return false;
}

bool kg_chaos_error_is_leadership(int16_t code)
{
    for (size_t i = 0; i < sizeof(leadership_errors) / sizeof(leadership_errors[0]); i++)
        if (leadership_errors[i] == code) return true;
    return false;
}

void kg_chaos_error_list(int16_t api_key, char *buf, size_t len)
{
    size_t n, used = 0;
    const api_error *set = errors_of(api_key, &n);
    if (len) buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                         kg_chaos_error_name(set[i].code));
        if (w < 0) break;
        used += (size_t)w;
    }
}
