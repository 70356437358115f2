/* kg_pq — libpq calls that never wait past a deadline, for the fleet's own connections
 * (kg_fleet's LISTEN and lease connection, kg_autofo's controller connection): a database that
 * stops answering (a cut network) must delay nothing past an instance's lease. */
#ifndef KG_PQ_H
#define KG_PQ_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* 1 when FD is ready (for writing when WRITE), 0 when DEADLINE_US (kg_now_us) passed, -1 on
 * error. */
int kg_pq_wait_fd(int fd, int write, uint64_t deadline_us);
/* MSG (a libpq message, may be multi-line) into ERR without its trailing newline. */
void kg_pq_copy_error(const char *msg, char *err, size_t errlen);
/* Connects without ever waiting past DEADLINE_US, non-blocking afterwards. CONNINFO is a
 * connection string or URL and is never put in a message: it may hold a password. NULL with
 * the reason in ERR. */
PGconn *kg_pq_connect(const char *conninfo, uint64_t deadline_us, char *err, size_t errlen);
/* Runs SQL with N text PARAMS on *CONNP, waiting no later than DEADLINE_US. Returns the result
 * (tuples or command ok), or NULL with ERR set; when the connection itself failed (or the
 * deadline passed: its state is unknown) it is closed and *CONNP set to NULL. */
PGresult *kg_pq_run(PGconn **connp, const char *sql, int n, const char *const *params,
                    uint64_t deadline_us, char *err, size_t errlen);
/* Consumes what arrived on C; returns how many notifications it held, -1 when C broke. */
int kg_pq_drain_notifies(PGconn *c);

#endif
