"""The check registry: monitor type -> `run` function, looked up here and nowhere else.

Check modules are imported when the registry is loaded, not at import time of this package: the
optional ones (ping, dns, ssl, browser) may be missing or unable to run on this host. A module is a
`CheckModule` (its `run`); it may also meet `AvailabilityHook` (`available() -> bool`, plain, run in a
worker thread since probes such as an ICMP echo block, or async) and `CloseHook` (`async aclose()` to
release shared resources, sessions or a browser, at shutdown). The protocols live in base.py; the
registry checks a module against them when it loads it. `probe()` asks each available() once at agent
start and leaves out the types that cannot run, so they are not among the capabilities and the control
plane does not assign them.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from dataclasses import dataclass, field
from types import ModuleType

from agent.checks.base import (
    AvailabilityHook,
    CheckModule,
    CheckResult,
    CheckRunner,
    CheckSpec,
    CloseHook,
    ErrorKind,
    Status,
)
from traxo_protocol.capabilities import CAPABILITY_FOR_TYPE

__all__ = ["CheckRegistry", "load_registry"]

log = logging.getLogger(__name__)

_MODULE_FOR_TYPE = {
    "HTTP": "agent.checks.http",
    "TCP": "agent.checks.tcp",
    "PING": "agent.checks.ping",
    "DNS": "agent.checks.dns",
    "SSL": "agent.checks.ssl",
    "BROWSER": "agent.checks.browser",
}
# type -> (module, capability name announced to the control plane). The capability comes from the
# protocol's map, the one the control plane assigns by: a type missing there fails here, at import.
CHECK_MODULES: dict[str, tuple[str, str]] = {
    monitor_type: (module_name, CAPABILITY_FOR_TYPE[monitor_type])
    for monitor_type, module_name in _MODULE_FOR_TYPE.items()
}

# A probe that hangs (a browser that never comes up) costs its type, not the agent's start.
PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class _Candidate:
    monitor_type: str
    capability: str
    module_name: str
    module: CheckModule


@dataclass
class CheckRegistry:
    runners: dict[str, CheckRunner] = field(default_factory=dict)
    # Read by the control plane connection at each registration: filled in place by probe().
    capabilities: list[str] = field(default_factory=list)
    modules: list[ModuleType] = field(default_factory=list)  # every imported check module, for aclose()
    _pending: list[_Candidate] = field(default_factory=list)

    def runner(self, monitor_type: str) -> CheckRunner:
        return self.runners.get(monitor_type.upper(), _unsupported)

    async def probe(self) -> None:
        """Asks each loaded module whether it can run here, concurrently; later calls do nothing."""
        pending, self._pending = self._pending, []
        usable = await asyncio.gather(*(_is_available(candidate) for candidate in pending))
        for candidate, ok in zip(pending, usable, strict=True):
            if not ok:
                log.info("%s checks are not available on this host", candidate.monitor_type)
                continue
            self.runners[candidate.monitor_type] = candidate.module.run
            self.capabilities.append(candidate.capability)

    async def aclose(self) -> None:
        """Lets modules release shared resources (sessions, browsers) at shutdown."""
        for module in self.modules:
            if not isinstance(module, CloseHook):
                continue
            try:
                await module.aclose()
            except Exception:  # one module failing to close must not keep the others open
                log.exception("closing %s failed", module.__name__)


def load_registry(types: dict[str, tuple[str, str]] | None = None) -> CheckRegistry:
    """Imports the check modules; their types become runnable once `await registry.probe()` says so."""
    registry = CheckRegistry()
    for monitor_type, (module_name, capability) in (CHECK_MODULES if types is None else types).items():
        module = _import_check(module_name)
        if module is None:
            continue
        registry.modules.append(module)
        if not isinstance(module, CheckModule):
            log.warning("check module %s has no run(); %s checks are unsupported", module_name, monitor_type)
            continue
        registry._pending.append(_Candidate(monitor_type, capability, module_name, module))
    return registry


async def _is_available(candidate: _Candidate) -> bool:
    module = candidate.module
    if not isinstance(module, AvailabilityHook):
        return True
    available = module.available
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            if inspect.iscoroutinefunction(available):
                return bool(await available())
            return bool(await asyncio.to_thread(available))
    except TimeoutError:
        log.warning("%s.available() took over %gs", candidate.module_name, PROBE_TIMEOUT_S)
    except Exception:  # a broken probe of the host must not stop the agent
        log.exception("%s.available() failed", candidate.module_name)
    return False


def _import_check(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        log.info("check module %s not importable: %s", module_name, exc)
    except Exception:  # written in parallel by others; a broken module costs only its own type
        log.exception("check module %s failed to import", module_name)
    return None


async def _unsupported(check: CheckSpec) -> CheckResult:
    return CheckResult(
        status=Status.DOWN,
        response_time_ms=0.0,
        error_kind=ErrorKind.UNSUPPORTED,
        error_message=f"this agent cannot run {check.type} checks (capability missing)",
    )
