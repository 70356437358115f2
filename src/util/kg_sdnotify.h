/* kg_sdnotify — systemd's readiness protocol (sd_notify) by hand: a datagram of "KEY=VALUE"
 * lines to the unix socket named by $NOTIFY_SOCKET (a path, or "@name" for the abstract
 * namespace). No libsystemd: it is a few lines, and kgate runs the same without systemd. */
#ifndef KG_SDNOTIFY_H
#define KG_SDNOTIFY_H

#include <stdint.h>

/* Sends STATE ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=..."). 1 sent, 0 when there is no
 * $NOTIFY_SOCKET (not run by systemd), -1 when sending failed (the reason is logged once). */
int kg_sd_notify(const char *state);

/* $WATCHDOG_USEC when systemd asks for watchdog pings (and $WATCHDOG_PID, when set, is this
 * process), else 0. */
uint64_t kg_sd_watchdog_usec(void);

#endif
