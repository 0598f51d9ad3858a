"""A Redis primary, its replica and three sentinels of one test, on free ports, for failover tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis
from processkit import redis_binary

from cep_automation.testing import wait_for
from cep_automation.testing.ports import free_port

SERVICE = "cep-primary"


class SentinelGroup:
    """``redis-server`` primary + replica (append-only files on) watched by three ``redis-server --sentinel``."""

    def __init__(self, root: Path) -> None:
        self.root, self.binary = root, redis_binary()
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _spawn(self, *args: str) -> None:
        self.procs.append(subprocess.Popen([self.binary, *args], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, start_new_session=True))

    def start(self) -> SentinelGroup:
        primary, replica = self.data_ports
        for port in self.data_ports:
            data = self.root / f"redis-{port}"
            data.mkdir(parents=True)
            follow = ["--replicaof", "127.0.0.1", str(primary)] if port == replica else []
            self._spawn("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
                        "--save", "", "--logfile", str(data / "redis.log"), *follow)
        for port in self.sentinel_ports:
            conf = self.root / f"sentinel-{port}.conf"  # a sentinel rewrites its own file: one each
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {self.root}\nlogfile {self.root}/sentinel-{port}.log\n"
                            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
                            f"sentinel down-after-milliseconds {SERVICE} 2000\n"
                            f"sentinel failover-timeout {SERVICE} 10000\n")
            self._spawn(str(conf), "--sentinel")
        wait_for(self._watching_replica, timeout=60, what="the sentinels to see the primary and its replica")
        return self

    def sentinel(self, index: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[index], socket_timeout=5, decode_responses=True)

    def _watching_replica(self) -> bool:
        try:
            return all(any(r.get("master-link-status") == "ok" for r in self.sentinel(i).sentinel_slaves(SERVICE))
                       and len(self.sentinel(i).sentinel_sentinels(SERVICE)) == 2 for i in range(3))
        except redis.RedisError:
            return False

    def primary_port(self) -> int:
        host, port = self.sentinel().sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def failover(self) -> int:
        """``SENTINEL FAILOVER``: the replica becomes the primary; returns the new primary's port."""
        before = self.primary_port()
        self.sentinel().execute_command("SENTINEL", "FAILOVER", SERVICE)
        wait_for(lambda: self.primary_port() != before, timeout=60, what="the sentinels to promote the replica")
        return self.primary_port()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
