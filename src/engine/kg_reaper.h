/* kg_reaper — closes sockets on a thread of its own.
 *
 * Closing thousands of TCP sockets at once (a switch) costs real kernel time: on loopback the
 * peer's side of each close runs inline. Backend sockets of closed connections go here, so the
 * workers are free to serve reconnecting clients at once. */
#ifndef KG_REAPER_H
#define KG_REAPER_H

typedef struct kg_reaper kg_reaper;

kg_reaper *kg_reaper_start(void);
/* Takes ownership of FD; closes it soon. Falls back to closing it now if queueing fails. */
void kg_reaper_close(kg_reaper *r, int fd);
/* Closes whatever is still queued and joins the thread. */
void kg_reaper_stop(kg_reaper *r);

#endif
