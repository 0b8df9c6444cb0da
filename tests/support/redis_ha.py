"""Redis with Sentinel on loopback: a primary, a replica and three sentinels, each a real redis-server."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis as redis_sync

from devstack.anvil import free_port
from devstack.local import LocalStackError, RedisServer

SERVICE = "pm"


class Sentinels:
    """`redis-server <conf> --sentinel` × `count`, monitoring `SERVICE` at the primary's address."""

    def __init__(self, root: Path, primary_port: int, *, count: int = 3, down_after_ms: int = 1000) -> None:
        self.root = root
        self.primary_port = primary_port
        self.ports = [free_port() for _ in range(count)]
        self.down_after_ms = down_after_ms
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The service's view: `redis+sentinel://` every sentinel `/SERVICE/0`."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self, timeout_s: float = 15.0) -> Sentinels:
        binary = shutil.which("redis-server")
        if binary is None:
            raise LocalStackError("redis-server is not installed; run `make install`")
        for index, port in enumerate(self.ports):
            folder = self.root / f"sentinel-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"  # a sentinel rewrites its file: one each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\nlogfile sentinel.log\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self.processes.append(
                subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
        deadline = time.monotonic() + timeout_s
        for port in self.ports:  # each knows the primary, its replica and the other sentinels
            client = redis_sync.Redis(port=port, socket_connect_timeout=0.2, decode_responses=True)
            try:
                while True:
                    try:
                        master = client.sentinel_master(SERVICE)
                        if int(master["num-slaves"]) >= 1 and int(master["num-other-sentinels"]) >= 2:
                            break
                    except (redis_sync.ConnectionError, redis_sync.ResponseError):
                        pass
                    if time.monotonic() > deadline:
                        self.stop()
                        raise LocalStackError("the sentinels did not see the primary, its replica and each other")
                    time.sleep(0.1)
            finally:
                client.close()
        return self

    def primary(self) -> tuple[str, int]:
        client = redis_sync.Redis(port=self.ports[0], decode_responses=True)
        try:
            host, port = client.sentinel_get_master_addr_by_name(SERVICE)
            return str(host), int(port)
        finally:
            client.close()

    def failover(self) -> None:
        """`SENTINEL FAILOVER`: the replica becomes the primary, the old primary its replica."""
        client = redis_sync.Redis(port=self.ports[0])
        try:
            client.execute_command("SENTINEL", "FAILOVER", SERVICE)
        finally:
            client.close()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


class SentinelRedis:
    """A primary, one replica of it and three sentinels; `url` is what the service is given."""

    def __init__(self, root: Path) -> None:
        self.primary = RedisServer(root / "primary")
        self.replica = RedisServer(root / "replica", extra_args=("--replicaof", "127.0.0.1", str(self.primary.port)))
        self.sentinels = Sentinels(root, self.primary.port)

    @property
    def url(self) -> str:
        return self.sentinels.url

    def nodes(self) -> dict[int, RedisServer]:
        return {self.primary.port: self.primary, self.replica.port: self.replica}

    def start(self) -> SentinelRedis:
        self.primary.start()
        try:
            self.replica.start()
            _wait_in_sync(self.primary.port)
            self.sentinels.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.sentinels.stop()
        self.replica.stop()
        self.primary.stop()

    def __enter__(self) -> SentinelRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_in_sync(primary_port: int, timeout_s: float = 15.0) -> None:
    client = redis_sync.Redis(port=primary_port, decode_responses=True)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            info = client.info("replication")
            replica = info.get("slave0")
            if isinstance(replica, dict) and replica.get("state") == "online":
                return
            if time.monotonic() > deadline:
                raise LocalStackError(f"the replica did not sync: {info}")
            time.sleep(0.05)
    finally:
        client.close()
