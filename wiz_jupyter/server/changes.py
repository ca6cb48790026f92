"""Long-poll support: wait until the workspace database changes.

Every open sidebar holds one ``GET /wiz/api/changes`` request. However many
there are, one poller reads the store's change counter (a lock and a
``PRAGMA data_version``: microseconds) every ``interval`` seconds, and only
while somebody waits; commits made by this server (an action from the
sidebar) wake the waiters at once through :meth:`ChangeFeed.poke`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .backend import Backend

log = logging.getLogger("wiz_jupyter.server")


class ChangeFeed:
    """``await feed.wait(since, timeout)`` returns ``(token, changed)``: the current
    token as soon as it differs from ``since``, or after ``timeout`` seconds."""

    def __init__(self, backend: Backend, interval: float = 0.15):
        self.backend = backend
        self.interval = interval
        self.token: str | None = None
        self._waiters = 0
        self._changed: asyncio.Future[None] | None = None
        self._poke: asyncio.Event | None = None
        self._poller: asyncio.Task[None] | None = None

    async def current(self) -> str:
        return await self.backend.run(self.backend.token)

    async def wait(
        self, since: str | None, timeout: float, closed: asyncio.Event | None = None
    ) -> tuple[str, bool]:
        """Wait for a token other than ``since`` (or for ``closed``: the client left)."""
        token = await self.current()
        if token != since:
            return token, True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._waiters += 1
        self._ensure_poller()
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    return token, False
                assert self._changed is not None
                waits: set[asyncio.Future] = {asyncio.ensure_future(asyncio.shield(self._changed))}
                if closed is not None:
                    waits.add(asyncio.ensure_future(closed.wait()))
                _, pending = await asyncio.wait(
                    waits, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                for f in pending:
                    f.cancel()
                if closed is not None and closed.is_set():
                    return token, False
                if self.token is not None and self.token != since:
                    return self.token, True
        finally:
            self._waiters -= 1

    def poke(self) -> None:
        """Check now (after a commit made by this server)."""
        if self._poke is not None:
            self._poke.set()

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    # -- the poller ----------------------------------------------------------------------------

    def _publish(self, token: str) -> None:
        # only the poller publishes, so the published token never goes back in time
        if token == self.token:
            return
        self.token = token
        fut, self._changed = self._changed, asyncio.get_running_loop().create_future()
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _ensure_poller(self) -> None:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        if self._poke is None:
            self._poke = asyncio.Event()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="wiz-changes")

    async def _poll(self) -> None:
        assert self._poke is not None
        while self._waiters > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.interval)
            self._poke.clear()
            try:
                self._publish(await self.current())
            except Exception as e:  # a busy or vanished file: try again next tick
                log.debug("wiz: change check failed: %s", e)
