"""The check registry: monitor type -> `run` function, looked up here and nowhere else.

Check modules are imported on first use, not at import time: the optional ones (ping, dns, ssl,
browser) may be missing or unable to run on this host. A module may define `available() -> bool`;
when it returns False (no raw-socket privilege, no browser installed...) its type is left out of
the agent's capabilities and the control plane does not assign it.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from types import ModuleType

from agent.checks.base import CheckResult, CheckRunner, CheckSpec, ErrorKind, Status

__all__ = ["CheckRegistry", "load_registry"]

log = logging.getLogger(__name__)

# type -> (module, capability name announced to the control plane)
CHECK_MODULES: dict[str, tuple[str, str]] = {
    "HTTP": ("agent.checks.http", "http"),
    "TCP": ("agent.checks.tcp", "tcp"),
    "PING": ("agent.checks.ping", "icmp"),
    "DNS": ("agent.checks.dns", "dns"),
    "SSL": ("agent.checks.ssl", "ssl"),
    "BROWSER": ("agent.checks.browser", "browser"),
}


@dataclass
class CheckRegistry:
    runners: dict[str, CheckRunner] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    modules: list[ModuleType] = field(default_factory=list)

    def runner(self, monitor_type: str) -> CheckRunner:
        return self.runners.get(monitor_type.upper(), _unsupported)

    async def aclose(self) -> None:
        """Lets modules release shared resources (sessions, browsers) at shutdown."""
        for module in self.modules:
            close = getattr(module, "aclose", None)
            if close is not None:
                await close()


def load_registry(types: dict[str, tuple[str, str]] | None = None) -> CheckRegistry:
    registry = CheckRegistry()
    for monitor_type, (module_name, capability) in (CHECK_MODULES if types is None else types).items():
        module = _import_check(module_name)
        if module is None:
            continue
        runner = getattr(module, "run", None)
        if runner is None:
            log.warning("check module %s has no run(); %s checks are unsupported", module_name, monitor_type)
            continue
        available = getattr(module, "available", None)
        try:
            usable = available() if available is not None else True
        except Exception:  # a broken probe of the host must not stop the agent
            log.exception("%s.available() failed; %s checks are unsupported", module_name, monitor_type)
            usable = False
        if not usable:
            log.info("%s checks are not available on this host", monitor_type)
            continue
        registry.runners[monitor_type] = runner
        registry.capabilities.append(capability)
        registry.modules.append(module)
    return registry


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
