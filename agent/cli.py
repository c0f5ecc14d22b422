"""The `traxo-agent` command."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from agent.runtime import Agent, AuthenticationFailed
from agent.settings import AgentSettings, parse_settings

EXIT_UNAUTHENTICATED = 3


def _masked(line: str, token: str) -> str:
    return line.replace(token, "***") if token else line


class _TextFormatter(logging.Formatter):
    """The default: a line of text; the agent's token, should a message or traceback carry it, masked."""

    def __init__(self, token: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._token = token

    def format(self, record: logging.LogRecord) -> str:
        return _masked(super().format(record), self._token)


class _JsonFormatter(logging.Formatter):
    """One JSON object a line, as the control plane's (which the agent may not import)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        entry = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _masked(json.dumps(entry, default=str), self._token)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    logging.basicConfig(level=settings.log_level)
    formatter = _JsonFormatter if settings.log_format == "json" else _TextFormatter
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(settings.token))
    try:
        asyncio.run(_run(settings))
    except AuthenticationFailed as exc:
        print(
            f"traxo-agent: the control plane at {settings.control_plane} refused the agent token "
            f"(UNAUTHENTICATED: {exc}). Check --token / TRAXO_AGENT_TOKEN; create one with "
            f"`traxo agents create-token --region {settings.region}`.",
            file=sys.stderr,
        )
        return EXIT_UNAUTHENTICATED
    return 0


async def _run(settings: AgentSettings) -> None:
    agent = Agent(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.request_stop)
    await agent.run()


if __name__ == "__main__":
    sys.exit(main())
