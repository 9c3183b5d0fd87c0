"""R-OPS-7: what deploy/ ships is what `make topology` runs; here, that nginx accepts it as
rendered (the whole layout under faults is `make topology`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.topology.hosts import DEPLOY, certificate, render
from tests.conftest import REQUIRE_SERVICES


def test_r_ops_7_the_nginx_site_in_deploy_passes_nginx_t(tmp_path: Path):
    if shutil.which("nginx") is None:
        if REQUIRE_SERVICES:
            pytest.fail("Debian's nginx is needed (apt-get install nginx)")
        pytest.skip("nginx is not installed")
    cert, key = certificate(tmp_path, "127.0.0.10")
    site = render(
        DEPLOY / "nginx" / "portico.conf",
        tmp_path / "site.conf",
        web_1="127.0.0.11:8000",
        web_2="127.0.0.12:8000",
        listen="127.0.0.10:8443",
        server_name="localhost",
        certificate=cert,
        certificate_key=key,
    )
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path};\n  proxy_temp_path {tmp_path};\n"
        f"  include {site};\n}}\n"
    )
    checked = subprocess.run(["nginx", "-t", "-c", str(main)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    text = site.read_text()
    for needed in ("X-Request-ID $request_id", "X-Forwarded-Proto $scheme", "client_max_body_size", "ssl"):
        assert needed in text
