"""The open-file limit: raised to what the system allows, and the connections that fit under it.

systemd starts services with a soft limit of 1,024 open files (the hard limit is far higher),
and every connection is one. Running out makes `accept()` fail in a loop; keeping the number
of connections below the limit means it never does.
"""

from __future__ import annotations

import logging
import os
import resource

log = logging.getLogger("edge_server")

# Files the process may still open beside its connections: the model, logs, /proc reads,
# the event loop's own descriptors, sockets being accepted but not yet counted.
RESERVED_FILES = 64


def raise_open_files() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit in force after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError) as exc:
            # A seccomp filter may forbid setrlimit (the unit sets LimitNOFILE instead).
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft


def open_files() -> int:
    """Descriptors this process has open now (0 where /proc does not tell)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def connection_cap(wanted: int, file_limit: int, in_use: int, backlog: int) -> int:
    """The connections allowed: `wanted`, lowered so that they and the reserve fit the limit.

    asyncio accepts up to `backlog` sockets at each wake-up, and wakes up to three times
    before the server sees the first of them (a task, then a callback, per socket). Running
    out of files makes it stop accepting for a whole second.
    """
    if file_limit == resource.RLIM_INFINITY:
        return wanted
    room = file_limit - in_use - 3 * backlog - RESERVED_FILES
    return max(1, min(wanted, room))
