"""A PostgreSQL primary and its streaming replica, started for a test and stopped by pid.

The machine's own PostgreSQL allows no replication connections, so the test makes a small primary
of its own (``initdb``) in a temporary directory, copies it with ``pg_basebackup -R`` (which writes
the standby's ``primary_conninfo``) and starts both on free loopback ports. PostgreSQL refuses to
run as root: as root, its programs run as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"))
    return Path(found[-1]).parent if found else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _run(*argv: str | Path) -> None:
    words = [str(a) for a in argv]
    if os.geteuid() == 0:
        words = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(words)]
    subprocess.run(words, check=True, capture_output=True, timeout=120)


@dataclass
class Node:
    data: Path
    port: int
    host: str = "127.0.0.1"

    def url(self, database: str = "portico") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def sql(self, statement: str, database: str = "portico") -> list[tuple]:
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []


@dataclass
class ReplicatedCluster:
    root: Path
    bin: Path
    hosts: tuple[str, str] = ("127.0.0.1", "127.0.0.1")  # the primary's and the replica's address
    primary: Node = field(init=False)
    replica: Node = field(init=False)

    def start(self) -> ReplicatedCluster:
        self.primary = Node(self.root / "primary", free_port(self.hosts[0]), self.hosts[0])
        self.replica = Node(self.root / "replica", free_port(self.hosts[1]), self.hosts[1])
        _run(self.bin / "initdb", "-D", self.primary.data, "-A", "trust", "-U", "postgres", "--no-sync")
        self._configure(self.primary)
        self._pg_ctl(self.primary, "start")
        self.primary.sql("CREATE DATABASE portico", database="postgres")
        _run(
            self.bin / "pg_basebackup", "-h", self.primary.host, "-p", str(self.primary.port),
            "-U", "postgres", "-D", self.replica.data, "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
        )  # fmt: skip
        self._configure(self.replica)
        self._pg_ctl(self.replica, "start")
        return self

    def _configure(self, node: Node) -> None:
        with open(node.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {node.port}\nlisten_addresses = '{node.host}'\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\nmax_connections = 100\n"
                "shared_buffers = 16MB\n"
            )
        with open(node.data / "pg_hba.conf", "a") as hba:  # every loopback address (127.0.0.x hosts)
            hba.write("host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n")

    def _pg_ctl(self, node: Node, action: str, *extra: str) -> None:
        _run(self.bin / "pg_ctl", "-D", node.data, "-l", node.data / "server.log", "-w", action, *extra)

    def stop_replica(self) -> None:
        self._pg_ctl(self.replica, "stop", "-m", "immediate")

    def wait_for_replay(self, timeout: float = 20) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        target = self.primary.sql("SELECT pg_current_wal_lsn()::text")[0][0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replayed = self.replica.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")[0][0]
            if replayed:
                return
            time.sleep(0.05)
        raise AssertionError(f"the replica did not replay up to {target} within {timeout} s")

    def stop(self) -> None:
        for node in (getattr(self, "replica", None), getattr(self, "primary", None)):
            if node is None or not (node.data / "postmaster.pid").exists():
                continue
            try:
                self._pg_ctl(node, "stop", "-m", "immediate")
            except subprocess.CalledProcessError:
                pid = (node.data / "postmaster.pid").read_text().split()[0]
                subprocess.run(["kill", "-9", pid], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(hosts: tuple[str, str] = ("127.0.0.1", "127.0.0.1")) -> ReplicatedCluster:
    binaries = pg_bin()
    assert binaries is not None, "PostgreSQL's server programs are not installed"
    root = Path(tempfile.mkdtemp(prefix="portico-pg-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = ReplicatedCluster(root, binaries, hosts)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise
