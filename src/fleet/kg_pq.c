/* kg_pq — see kg_pq.h. */
#include "fleet/kg_pq.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "engine/kg_loop.h"

/* 1 when FD is ready (for writing when WRITE), 0 when DEADLINE_US passed, -1 on error. */
int kg_pq_wait_fd(int fd, int write, uint64_t deadline_us)
{
    for (;;) {
        uint64_t now = kg_now_us();
        if (now >= deadline_us) return 0;
        struct pollfd p = {.fd = fd, .events = write ? POLLOUT : POLLIN};
        int ms = (int)((deadline_us - now + 999) / 1000);
        int rc = poll(&p, 1, ms);
        if (rc > 0) return 1;
        if (rc < 0 && errno != EINTR) return -1;
    }
}

void kg_pq_copy_error(const char *msg, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", msg && *msg ? msg : "connection lost");
    size_t n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = '\0';
}

/* Connects without ever waiting past DEADLINE_US. CONNINFO is a connection string or URL and
 * is never put in a message: it may hold a password. */
PGconn *kg_pq_connect(const char *conninfo, uint64_t deadline_us, char *err, size_t errlen)
{
    /* Later keywords override earlier ones: the user's string can name its own application. */
    const char *const keys[] = {"application_name", "dbname", NULL};
    const char *const values[] = {"kgate-fleet", conninfo, NULL};
    PGconn *c = PQconnectStartParams(keys, values, 1);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        int rc = kg_pq_wait_fd(PQsocket(c), st == PGRES_POLLING_WRITING, deadline_us);
        if (rc <= 0) {
            snprintf(err, errlen, rc == 0 ? "connecting timed out" : "connecting: %s",
                     strerror(errno));
            PQfinish(c);
            return NULL;
        }
        st = PQconnectPoll(c);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        kg_pq_copy_error(PQerrorMessage(c), err, errlen);
        PQfinish(c);
        return NULL;
    }
    PQsetnonblocking(c, 1);
    return c;
}

/* Runs SQL with N text PARAMS on *CONNP, waiting no later than DEADLINE_US. Returns the result
 * (tuples or command ok), or NULL with ERR set; when the connection itself failed (or the
 * deadline passed: its state is unknown) it is closed and *CONNP set to NULL. */
PGresult *kg_pq_run(PGconn **connp, const char *sql, int n, const char *const *params,
                    uint64_t deadline_us, char *err, size_t errlen)
{
    PGconn *c = *connp;
    PGresult *last = NULL;
    int rc = 1;
    if (!PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0)) goto broken;
    int flushed;
    while ((flushed = PQflush(c)) == 1)
        if ((rc = kg_pq_wait_fd(PQsocket(c), 1, deadline_us)) <= 0) goto broken;
    if (flushed < 0) goto broken;
    for (;;) {
        while (PQisBusy(c)) {
            if ((rc = kg_pq_wait_fd(PQsocket(c), 0, deadline_us)) <= 0) goto broken;
            if (!PQconsumeInput(c)) goto broken;
        }
        PGresult *r = PQgetResult(c);
        if (!r) break;
        PQclear(last);
        last = r;
    }
    ExecStatusType st = last ? PQresultStatus(last) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return last;
    kg_pq_copy_error(last ? PQresultErrorMessage(last) : PQerrorMessage(c), err, errlen);
    PQclear(last);
    if (PQstatus(c) == CONNECTION_BAD) {
        PQfinish(c);
        *connp = NULL;
    }
    return NULL;
broken:
    if (rc == 0)
        snprintf(err, errlen, "no answer from the database in time");
    else
        kg_pq_copy_error(PQerrorMessage(c), err, errlen);
    PQclear(last);
    PQfinish(c);
    *connp = NULL;
    return NULL;
}

/* Consumes what arrived on C; returns how many notifications it held, -1 when C broke. */
int kg_pq_drain_notifies(PGconn *c)
{
    if (!PQconsumeInput(c)) return -1;
    int n = 0;
    PGnotify *nf;
    while ((nf = PQnotifies(c)) != NULL) {
        PQfreemem(nf);
        n++;
    }
    return n;
}
