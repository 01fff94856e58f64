"""Running the app under uvicorn with a graceful drain.

uvicorn, asked to stop (SIGTERM, SIGINT), first closes its listening sockets and then waits for open
connections. :class:`DrainingServer` drains the gateway *before* that: for up to ``LLMOPS_DRAIN_SECONDS`` the
port stays open, ``/readyz`` answers 503 (so a load balancer stops sending traffic) and new generation
requests get 503 ``server_shutting_down`` with ``Retry-After`` (so clients retry on another replica), while
in-flight requests and streams finish. Then uvicorn closes its sockets and the app's lifespan stops the
engines (aborting whatever is still running).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

log = logging.getLogger("llmops.api")

#: How long uvicorn waits for connections after the drain (requests that are not generation: uploads, pages).
AFTER_DRAIN_SECONDS = 5.0


class DrainingServer(uvicorn.Server):
    """A uvicorn server that awaits ``drain()`` before it stops accepting connections."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[Any]]) -> None:
        super().__init__(config)
        self._drain = drain

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await self._drain()
        except Exception:
            log.exception("drain failed; shutting down anyway")
        await super().shutdown(sockets)


def draining_server(app: Any, *, host: str, port: int, log_level: str, drain_seconds: float) -> DrainingServer:
    """The server ``llmops serve`` runs: ``app.state.openai`` drains for up to ``drain_seconds`` on shutdown."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=int(AFTER_DRAIN_SECONDS)
    )
    return DrainingServer(config, lambda: app.state.openai.drain(drain_seconds))


__all__ = ["DrainingServer", "draining_server"]
