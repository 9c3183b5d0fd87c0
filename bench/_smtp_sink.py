"""An SMTP sink for the benchmarks, in a process of its own so that it does not share the GIL
with what is measured: every message is appended to a file (length-prefixed) and counted in Redis.

    python bench/_smtp_sink.py PORT OUTFILE REDIS_URL COUNTER_KEY
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from aiosmtpd.controller import Controller
from redis import Redis


def main() -> None:
    port, outfile, redis_url, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    redis = Redis.from_url(redis_url)
    out = open(outfile, "ab", buffering=0)  # noqa: SIM115 - open for the process's life

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            data = envelope.original_content or envelope.content
            out.write(len(data).to_bytes(8, "big") + data)
            redis.incr(key)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (controller.stop(), sys.exit(0)))
    while True:
        time.sleep(3600)


def read_messages(path: str) -> list[bytes]:
    data = open(path, "rb").read()  # noqa: SIM115
    messages, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 8], "big")
        messages.append(data[at + 8 : at + 8 + size])
        at += 8 + size
    return messages


if __name__ == "__main__":
    main()
