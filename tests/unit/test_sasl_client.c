/* kgate's own SASL login to brokers (kg_sasl_client): the RFC 7677 SCRAM-SHA-256 exchange byte
 * for byte, PLAIN, the broker's refusals, and brokers that are not who they claim to be. */
#include <string.h>

#include "engine/kg_wire.h"
#include "kp_msgs.h"
#include "kt.h"
#include "security/kg_sasl_client.h"

static kg_sasl_cfg cfg(enum kg_sasl_mechanism m, const char *user, const char *password)
{
    kg_sasl_cfg c = {.mechanism = m};
    snprintf(c.username, sizeof(c.username), "%s", user);
    snprintf(c.password, sizeof(c.password), "%s", password);
    return c;
}

/* The request in W: its API key, and its SASL bytes (SaslAuthenticate) or mechanism. */
static int16_t request_api(const kp_writer *w, char *out, size_t cap)
{
    kp_reader r;
    kp_reader_init(&r, w->buf + 4, w->len - 4);
    int16_t api = kp_read_i16(&r), version = kp_read_i16(&r);
    kp_read_i32(&r);
    int32_t client_id = kp_read_i16(&r);
    kp_read_skip(&r, (size_t)client_id);
    if (kp_api_request_header_version(api, version) >= 2) kp_read_uvarint(&r);
    kp_arena a;
    kp_arena_init(&a);
    if (api == KG_API_SASL_HANDSHAKE) {
        kp_sasl_handshake_request m;
        kp_sasl_handshake_request_decode(&r, &a, version, &m);
        snprintf(out, cap, "%.*s", (int)m.mechanism.len, m.mechanism.ptr);
    } else {
        kp_sasl_authenticate_request m;
        kp_sasl_authenticate_request_decode(&r, &a, version, &m);
        memcpy(out, m.auth_bytes.ptr, (size_t)m.auth_bytes.len);
        out[m.auth_bytes.len] = '\0';
    }
    kp_arena_free(&a);
    return r.err ? -1 : api;
}

static int32_t request_correlation(const kp_writer *w)
{
    return (int32_t)kg_wire_get_u32(w->buf + 8);
}

/* A broker's answer to the request in W (the response frame after its size). */
static kp_writer handshake_answer(const kp_writer *req, int16_t error)
{
    kp_writer w;
    kp_writer_init(&w, 64);
    kg_wire_response_header(&w, KG_API_SASL_HANDSHAKE, 1, request_correlation(req));
    kp_sasl_handshake_response m;
    kp_sasl_handshake_response_init(&m);
    kp_str mechs[] = {kp_str_c("PLAIN"), kp_str_c("SCRAM-SHA-256")};
    m.error_code = error;
    m.mechanisms.count = 2;
    m.mechanisms.items = mechs;
    kp_sasl_handshake_response_encode(&w, 1, &m);
    return w;
}

static kp_writer auth_answer(const kp_writer *req, int16_t version, int16_t error,
                             const char *bytes, int64_t lifetime)
{
    kp_writer w;
    kp_writer_init(&w, 64);
    kg_wire_response_header(&w, KG_API_SASL_AUTHENTICATE, version, request_correlation(req));
    kp_sasl_authenticate_response m;
    kp_sasl_authenticate_response_init(&m);
    m.error_code = error;
    m.error_message =
        error ? kp_str_c("Authentication failed: Invalid username or password") : KP_STR_NULL;
    m.auth_bytes = (kp_bytes){(const uint8_t *)bytes, (int32_t)strlen(bytes)};
    m.session_lifetime_ms = lifetime;
    kp_sasl_authenticate_response_encode(&w, version, &m);
    return w;
}

/* Feeds ANSWER to S; the next request (if any) replaces *REQ. */
static int feed(kg_sasl_client *s, kp_writer *req, kp_writer answer)
{
    kp_writer_reset(req);
    int rc = kg_sasl_client_next(s, answer.buf, answer.len, req);
    kp_writer_free(&answer);
    return rc;
}

#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_FIRST                                                                           \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                                                                           \
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"                                 \
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* Runs the RFC 7677 exchange up to the server-final message, returning what the client did. */
static int rfc_exchange(kg_sasl_creds *creds, const char *server_final, int16_t version,
                        char *client_final, kg_sasl_client *s)
{
    kg_sasl_client_init(s, creds, version);
    snprintf(s->nonce, sizeof(s->nonce), "%s", RFC_NONCE);
    kp_writer req;
    kp_writer_init(&req, 64);
    char bytes[1024];
    KT_CHECK_EQ_INT(kg_sasl_client_start(s, &req), 0);
    KT_CHECK_EQ_INT(request_api(&req, bytes, sizeof(bytes)), KG_API_SASL_HANDSHAKE);
    KT_CHECK(strcmp(bytes, "SCRAM-SHA-256") == 0);
    KT_CHECK_EQ_INT(feed(s, &req, handshake_answer(&req, 0)), KG_SASL_CLIENT_SEND);
    KT_CHECK_EQ_INT(request_api(&req, bytes, sizeof(bytes)), KG_API_SASL_AUTHENTICATE);
    KT_CHECK(strcmp(bytes, "n,,n=user,r=" RFC_NONCE) == 0);
    KT_CHECK_EQ_INT(feed(s, &req, auth_answer(&req, version, 0, RFC_SERVER_FIRST, 0)),
                    KG_SASL_CLIENT_SEND);
    request_api(&req, client_final, 1024);
    int rc = feed(s, &req, auth_answer(&req, version, 0, server_final, 60000));
    kp_writer_free(&req);
    return rc;
}

KT_TEST(rfc7677_scram_sha256_exchange)
{
    kg_sasl_cfg c = cfg(KG_SASL_SCRAM_SHA_256, "user", "pencil");
    kg_sasl_creds creds;
    kg_sasl_creds_init(&creds, &c);
    for (int16_t version = 0; version <= 2; version++) {
        kg_sasl_client s;
        char final[1024];
        KT_CHECK_EQ_INT(rfc_exchange(&creds, RFC_SERVER_FINAL, version, final, &s),
                        KG_SASL_CLIENT_DONE);
        KT_CHECK(strcmp(final, RFC_CLIENT_FINAL) == 0);
        KT_CHECK(s.session_lifetime_ms == (version >= 1 ? 60000 : 0));
        kg_sasl_client_free(&s);
    }
    KT_CHECK(creds.cached); /* derived once, reused by the later exchanges */
    kg_sasl_creds_destroy(&creds);
}

KT_TEST(a_broker_without_the_password_is_not_trusted)
{
    kg_sasl_cfg c = cfg(KG_SASL_SCRAM_SHA_256, "user", "pencil");
    kg_sasl_creds creds;
    kg_sasl_creds_init(&creds, &c);
    kg_sasl_client s;
    char final[1024];
    KT_CHECK_EQ_INT(
        rfc_exchange(&creds, "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1, final, &s),
        KG_SASL_CLIENT_FAILED);
    KT_CHECK(strstr(s.error, "signature is wrong") != NULL);
    kg_sasl_client_free(&s);
    KT_CHECK_EQ_INT(rfc_exchange(&creds, "e=invalid-proof", 1, final, &s), KG_SASL_CLIENT_FAILED);
    KT_CHECK(strstr(s.error, "invalid-proof") != NULL);
    kg_sasl_client_free(&s);
    kg_sasl_creds_destroy(&creds);
}

KT_TEST(server_nonce_must_extend_ours)
{
    kg_sasl_cfg c = cfg(KG_SASL_SCRAM_SHA_512, "a=b,c", "pw");
    kg_sasl_creds creds;
    kg_sasl_creds_init(&creds, &c);
    kg_sasl_client s;
    kg_sasl_client_init(&s, &creds, 2);
    kp_writer req;
    kp_writer_init(&req, 64);
    char bytes[1024];
    kg_sasl_client_start(&s, &req);
    KT_CHECK_EQ_INT(feed(&s, &req, handshake_answer(&req, 0)), KG_SASL_CLIENT_SEND);
    request_api(&req, bytes, sizeof(bytes));
    KT_CHECK(strncmp(bytes, "n,,n=a=3Db=2Cc,r=", 17) == 0); /* the name escaped */
    KT_CHECK_EQ_INT(feed(&s, &req, auth_answer(&req, 2, 0, "r=other,s=c2FsdA==,i=4096", 0)),
                    KG_SASL_CLIENT_FAILED);
    KT_CHECK(strstr(s.error, "nonce") != NULL);
    kg_sasl_client_free(&s);
    kp_writer_free(&req);
    kg_sasl_creds_destroy(&creds);
}

KT_TEST(plain_and_the_brokers_refusals)
{
    kg_sasl_cfg c = cfg(KG_SASL_PLAIN, "kgate", "secret");
    kg_sasl_creds creds;
    kg_sasl_creds_init(&creds, &c);
    kg_sasl_client s;
    kg_sasl_client_init(&s, &creds, 1);
    kp_writer req;
    kp_writer_init(&req, 64);
    char bytes[1024];
    kg_sasl_client_start(&s, &req);
    KT_CHECK_EQ_INT(feed(&s, &req, handshake_answer(&req, 0)), KG_SASL_CLIENT_SEND);
    request_api(&req, bytes, sizeof(bytes));
    KT_CHECK(bytes[0] == '\0' && strcmp(bytes + 1, "kgate") == 0 &&
             strcmp(bytes + 7, "secret") == 0);
    KT_CHECK_EQ_INT(feed(&s, &req, auth_answer(&req, 1, 58, "", 0)), KG_SASL_CLIENT_FAILED);
    KT_CHECK(strstr(s.error, "Invalid username or password") != NULL);
    KT_CHECK(strstr(s.error, "secret") == NULL);
    kg_sasl_client_free(&s);

    kg_sasl_client_init(&s, &creds, 1);
    kp_writer_reset(&req);
    kg_sasl_client_start(&s, &req);
    KT_CHECK_EQ_INT(feed(&s, &req, handshake_answer(&req, 33)), KG_SASL_CLIENT_FAILED);
    KT_CHECK(strstr(s.error, "it offers: PLAIN, SCRAM-SHA-256") != NULL);
    kg_sasl_client_free(&s);

    kg_sasl_client_init(&s, &creds, 1);
    kp_writer_reset(&req);
    kg_sasl_client_start(&s, &req);
    kp_writer wrong = handshake_answer(&req, 0);
    wrong.buf[3] ^= 1; /* another correlation id */
    KT_CHECK_EQ_INT(feed(&s, &req, wrong), KG_SASL_CLIENT_FAILED);
    kg_sasl_client_free(&s);
    kp_writer_free(&req);
    kg_sasl_creds_destroy(&creds);
}

KT_MAIN()
