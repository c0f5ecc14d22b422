"""The `traxo-agent` command."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from agent.runtime import Agent, AuthenticationFailed
from agent.settings import AgentSettings, parse_settings

EXIT_UNAUTHENTICATED = 3


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
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
