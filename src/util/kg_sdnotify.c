#include "util/kg_sdnotify.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/kg_log.h"

int kg_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return 0;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(addr.sun_path)) {
        kg_warn("NOTIFY_SOCKET %s: not a socket path", path);
        return -1;
    }
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@') addr.sun_path[0] = '\0'; /* abstract namespace */
    socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t sent =
        fd < 0 ? -1
               : sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
    int saved = errno;
    if (fd >= 0) close(fd);
    if (sent < 0) {
        static atomic_int reported;
        if (!atomic_exchange(&reported, 1))
            kg_warn("NOTIFY_SOCKET %s: cannot notify systemd: %s", path, strerror(saved));
        return -1;
    }
    return 1;
}

uint64_t kg_sd_watchdog_usec(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    if (!usec || !*usec) return 0;
    if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid()) return 0;
    char *end = NULL;
    unsigned long long v = strtoull(usec, &end, 10);
    return end && *end == '\0' ? (uint64_t)v : 0;
}
