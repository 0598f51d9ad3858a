"""Live processes of the deployment tests: a worker pool serving /metrics and the HTTP service, as deployed."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from cep_automation.testing import CLI, wait_for
from cep_automation.testing.ports import free_port

API_TOKEN = "test-deploy-token-4b7c1e"  # CEP_API_TOKEN of every deployed process in these tests


def get(url: str, token: str | None = None) -> tuple[int, str]:
    """Status and body of ``GET url`` (errors included), with a bearer token when given."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Live:
    """A long-running process (``argv``) with its log in a file, stopped with SIGTERM."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path, self.port = log, int(env.get("CEP_METRICS_PORT", "0"))
        with log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_answers(self, url: str, token: str | None = None) -> Live:
        """Wait until ``url`` answers anything over HTTP (fail early if the process died)."""

        def answered() -> bool:
            assert self.proc.poll() is None, f"process exited:\n{self.log}"
            try:
                get(url, token)
            except OSError:
                return False
            return True

        wait_for(answered, timeout=90, what=url)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def pool(env: dict[str, str], log: Path, *queues: str, modules: tuple[str, ...] = ()) -> Live:
    """A worker pool as the systemd unit starts it, with its /metrics on a free port of ``env``'s host."""
    env = {"CEP_METRICS_PORT": str(free_port()), **env}
    argv = [sys.executable, "-m", "dramatiq", "cep_automation.actors", *modules, "--processes", "1",
            "--threads", "2", "--queues", *(queues or ("leads",))]
    return Live(argv, env, log)


def http_service(env: dict[str, str], log: Path) -> tuple[Live, str]:
    """``cep-automation serve`` on a free port; returns the process and its base URL."""
    port = free_port()
    live = Live([*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    return live, f"http://127.0.0.1:{port}"
