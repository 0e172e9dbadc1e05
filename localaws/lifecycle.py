"""Start, find and stop the local AWS process (``localaws.server``); state lives in ``.cache/localaws/``.

One instance per state directory: ``state.json`` holds its pid, ports and log file. The process runs in its
own session (process group), so ``stop()`` also ends the Lambda workers it started.

Example:
    >>> info = start()                     # doctest: +SKIP
    >>> info.endpoint                      # doctest: +SKIP
    'http://127.0.0.1:41234'
    >>> stop()                             # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class LocalAws:
    pid: int
    port: int
    api_port: int
    log_file: str
    state_dir: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def client_env(self) -> dict[str, str]:
        """Environment that points boto3 / the aws CLI / taskcat at this instance."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                **CREDENTIALS}

    def api_url(self, api_id: str) -> str:
        """Local base URL of an HTTP API (the ``ApiUrl`` AWS would give as https://<id>.execute-api...)."""
        return f"{self.api_endpoint}/{api_id}"


def default_state_dir() -> Path:
    return Path(os.environ.get("LOCALAWS_HOME", REPO_ROOT / ".cache" / "localaws"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited child not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def responds(port: int, *, timeout: float = 5.0) -> bool:
    """Whether the server answers a cheap request (S3 ListBuckets; /moto-api/data.json dumps every model)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def status(*, state_dir: Path | None = None) -> LocalAws | None:
    """The running instance for this state directory, or None (a stale state file is removed)."""
    state_dir = state_dir or default_state_dir()
    path = _state_file(state_dir)
    try:
        info = LocalAws(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if pid_alive(info.pid) and responds(info.port):
        return info
    if not pid_alive(info.pid):
        path.unlink(missing_ok=True)
    return None


def start(*, state_dir: Path | None = None, stock: bool = False, ready_timeout_s: float = 60.0) -> LocalAws:
    """Start the local AWS (or return the one already running for this state directory)."""
    state_dir = state_dir or default_state_dir()
    running = status(state_dir=state_dir)
    if running is not None:
        return running
    state_dir.mkdir(parents=True, exist_ok=True)
    port, api_port = free_port(), (0 if stock else free_port())
    log_file = state_dir / ("moto-stock.log" if stock else "server.log")
    command = [sys.executable, "-m", "localaws.server", "--port", str(port), "--api-port", str(api_port)]
    if stock:
        command.append("--stock")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
           "LOCALAWS_HOME": str(state_dir)}
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        env.pop(key, None)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=REPO_ROOT, env=env, start_new_session=True)
    info = LocalAws(pid=process.pid, port=port, api_port=api_port, log_file=str(log_file), state_dir=str(state_dir))
    deadline = time.monotonic() + ready_timeout_s
    while not responds(port):
        if process.poll() is not None or time.monotonic() > deadline:
            _terminate_group(process.pid)
            tail = log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"local AWS did not start (see {log_file}):\n{tail}")
        time.sleep(0.2)
    if not stock:
        _state_file(state_dir).write_text(json.dumps(asdict(info)))
    return info


def _terminate_group(pid: int, *, grace_s: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not _group_alive(pid):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().split(") ", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def group_pids(pgid: int) -> list[int]:
    """Live processes in a process group (the server and its Lambda workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().split(") ", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def stop(*, state_dir: Path | None = None, info: LocalAws | None = None) -> bool:
    """Stop the instance (server and its workers); True when one was running."""
    state_dir = state_dir or default_state_dir()
    if info is None:
        path = _state_file(state_dir)
        try:
            info = LocalAws(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return False
    _terminate_group(info.pid)
    path = _state_file(Path(info.state_dir))
    try:
        if json.loads(path.read_text()).get("pid") == info.pid:
            path.unlink()
    except (OSError, ValueError):
        pass
    return True
