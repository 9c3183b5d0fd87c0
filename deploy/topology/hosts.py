"""The hosts of `make topology` on one machine: each a process group on its own loopback address,
started from the files in deploy/ and stopped by pid (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def render(template: Path, out: Path, **values: object) -> Path:
    """deploy/'s files with their {{name}} places filled in."""
    text = template.read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", str(value))
    assert "{{" not in text, f"{template}: a place left unfilled"
    out.write_text(text)
    return out


def as_postgres(argv: list[str]) -> list[str]:
    """PgBouncer and PostgreSQL refuse to run as root."""
    if os.geteuid() != 0:
        return argv
    return ["su", "postgres", "-s", "/bin/sh", "-c", "exec " + shlex.join(argv)]


@dataclass
class Host:
    """One host: a command in a process group of its own, its output in a log file."""

    name: str
    address: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Host:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """The host dies: SIGKILL to every process of it, no goodbye."""
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 40) -> None:
        if not self.alive:
            return
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


def wait_for_port(host: str, port: int, timeout: float = 60, proc: Host | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if proc is not None and not proc.alive:
                raise RuntimeError(f"{proc.name} exited: {proc.log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout} s")


def certificate(workdir: Path, address: str) -> tuple[Path, Path]:
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", f"subjectAltName=DNS:localhost,IP:{address}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def nginx(workdir: Path, address: str, port: int, web: list[str]) -> Host:
    """Debian's nginx with deploy/nginx/portico.conf, TLS on address:port."""
    cert, key = certificate(workdir, address)
    site = render(
        DEPLOY / "nginx" / "portico.conf",
        workdir / "portico-site.conf",
        web_1=web[0],
        web_2=web[1],
        listen=f"{address}:{port}",
        server_name="localhost",
        certificate=cert,
        certificate_key=key,
    )
    temp = workdir / "nginx-temp"
    temp.mkdir()
    main = workdir / "nginx.conf"
    main.write_text(
        f"user root;\nworker_processes 2;\npid {workdir}/nginx.pid;\nerror_log {workdir}/nginx-error.log;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"  access_log {workdir}/nginx-access.log;\n"
        f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n"
        f"  scgi_temp_path {temp}/scgi;\n"
        f"  include {site};\n"
        "}\n"
    )
    host = Host("nginx", address, ["nginx", "-c", str(main), "-g", "daemon off;"], workdir / "nginx.log")
    host.start()
    wait_for_port(address, port, proc=host)
    return host


def pgbouncer(workdir: Path, address: str, port: int, pg_host: str, pg_port: int) -> Host:
    directory = workdir / "pgbouncer"
    directory.mkdir()
    (directory / "userlist.txt").write_text('"postgres" ""\n')
    ini = render(
        DEPLOY / "pgbouncer" / "pgbouncer.ini",
        directory / "pgbouncer.ini",
        pg_host=pg_host,
        pg_port=pg_port,
        listen_addr=address,
        listen_port=port,
        auth_type="trust",
        auth_file=directory / "userlist.txt",
        logfile=directory / "pgbouncer.log",
        pidfile=directory / "pgbouncer.pid",
    )
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres", str(directory)], check=True)
    host = Host("pgbouncer", address, as_postgres(["pgbouncer", str(ini)]), workdir / "pgbouncer.out")
    host.start()
    wait_for_port(address, port, proc=host)
    return host


def redis(workdir: Path, address: str, port: int) -> Host:
    argv = ["redis-server", "--bind", address, "--port", str(port), "--save", "", "--appendonly", "no"]
    host = Host("redis", address, argv, workdir / "redis.log").start()
    wait_for_port(address, port, proc=host)
    return host


def smtp_sink(workdir: Path, port: int, redis_url: str, key: str) -> Host:
    """bench/_smtp_sink.py: every message appended to a file, counted in Redis."""
    argv = [
        sys.executable,
        str(ROOT / "bench" / "_smtp_sink.py"),
        str(port),
        str(workdir / "mail.bin"),
        redis_url,
        key,
    ]
    host = Host("smtp", "127.0.0.1", argv, workdir / "smtp.log").start()
    wait_for_port("127.0.0.1", port, proc=host)
    return host


def flask_host(name: str, address: str, command: list[str], env: dict[str, str], workdir: Path) -> Host:
    """A web, worker or cron host: Portico from this checkout with the topology's environment."""
    instance = workdir / f"instance-{name}"
    instance.mkdir()
    host_env = {**env, "PORTICO_INSTANCE_PATH": str(instance)}
    return Host(name, address, command, workdir / f"{name}.log", host_env).start()


def gunicorn_argv() -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]


def flask_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *args]
