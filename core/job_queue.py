"""At most N heavy jobs (explain, evaluate, train) at once; the others wait their turn, first come first served.

One :class:`JobQueue` per server process. A job :meth:`~JobQueue.join`\\ s it and gets a
:class:`Ticket`, waits (:meth:`~JobQueue.wait`) until it is admitted, runs, and
:meth:`~JobQueue.leave`\\ s. While it waits, :meth:`~JobQueue.ahead` is how many jobs are in
line before it, which is what a page shows ("waiting: 2 jobs ahead"). Pure threading, no
Streamlit, so it is tested on its own.

Example::

    queue = JobQueue(capacity=2)
    with queue.slot("explain", owner="alice@example.com", cancel=event) as ticket:
        ...  # runs only once fewer than 2 other jobs are running
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from core.errors import Cancelled

POLL_SECONDS = 0.25
"""How often a waiting job checks its cancel event and reports its place in line."""


@dataclass(eq=False)
class Ticket:
    """One job's place: in line, then running, then gone.

    Attributes:
        kind: ``explain``, ``evaluate`` or ``train``.
        owner: who started it (a signed-in e-mail, or ``local``).
        label: what to call it on a page (a run id, a checkpoint name).
    """

    kind: str
    owner: str
    label: str = ""
    number: int = field(default=0)
    running: bool = False


class JobQueue:
    """A first-in, first-out admission queue with ``capacity`` jobs running at once.

    Args:
        capacity: jobs admitted at once (at least 1; ``FUSION_MAX_JOBS``).
    """

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self._waiting: deque[Ticket] = deque()
        self._running: list[Ticket] = []
        self._changed = threading.Condition()
        self._numbers = itertools.count(1)

    def join(self, kind: str, owner: str, label: str = "") -> Ticket:
        """Get in line; the ticket is admitted at once when a slot is free and nobody waits."""
        with self._changed:
            ticket = Ticket(kind, owner, label, next(self._numbers))
            self._waiting.append(ticket)
            self._admit()
            return ticket

    def ahead(self, ticket: Ticket) -> int:
        """Jobs in line before ``ticket`` (0 once it runs, or when it is next)."""
        with self._changed:
            if ticket.running or ticket not in self._waiting:
                return 0
            return self._waiting.index(ticket)

    def wait(
        self,
        ticket: Ticket,
        cancel: threading.Event | None = None,
        on_wait: Callable[[int], None] | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Block until ``ticket`` runs (True), or ``cancel`` is set or ``timeout`` passes (False).

        A ticket that gives up stays in line; call :meth:`leave` to drop it. ``on_wait``
        receives the number of jobs ahead each time it is checked.
        """
        waited = 0.0
        with self._changed:
            while not ticket.running:
                if cancel is not None and cancel.is_set():
                    return False
                if timeout is not None and waited >= timeout:
                    return False
                if on_wait is not None:
                    on_wait(self._waiting.index(ticket) if ticket in self._waiting else 0)
                step = POLL_SECONDS if timeout is None else min(POLL_SECONDS, timeout - waited)
                self._changed.wait(step)
                waited += step
            return True

    def leave(self, ticket: Ticket) -> None:
        """Give the slot back (a running ticket) or get out of line (a waiting one)."""
        with self._changed:
            if ticket in self._running:
                self._running.remove(ticket)
            elif ticket in self._waiting:
                self._waiting.remove(ticket)
            ticket.running = False
            self._admit()

    @contextmanager
    def slot(
        self,
        kind: str,
        owner: str,
        label: str = "",
        cancel: threading.Event | None = None,
        on_wait: Callable[[int], None] | None = None,
    ) -> Iterator[Ticket]:
        """Run the ``with`` block once admitted; the slot is given back however the block ends.

        Raises:
            Cancelled: ``cancel`` was set while the job waited.
        """
        ticket = self.join(kind, owner, label)
        try:
            if not self.wait(ticket, cancel, on_wait):
                raise Cancelled("The job was cancelled while it waited for its turn.")
            yield ticket
        finally:
            self.leave(ticket)

    def running(self) -> list[Ticket]:
        """The jobs running now, oldest first."""
        with self._changed:
            return list(self._running)

    def waiting(self) -> list[Ticket]:
        """The jobs in line, next first."""
        with self._changed:
            return list(self._waiting)

    def _admit(self) -> None:
        while self._waiting and len(self._running) < self.capacity:
            ticket = self._waiting.popleft()
            ticket.running = True
            self._running.append(ticket)
        self._changed.notify_all()
