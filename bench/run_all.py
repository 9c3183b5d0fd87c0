"""`make bench`: run every benchmark in bench/ and print one table of all their figures
(figure, Portico, reference, ratio, target, met or missed).

Every benchmark is a script `bench/<name>.py` that prints its own table and, with BENCH_JSON
set, appends its figures there; a new benchmark is picked up by being listed in BENCHMARKS.

    .venv/bin/python bench/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Figure, table  # noqa: E402

# (script, full arguments, quick arguments)
BENCHMARKS = [
    ("mail_throughput.py", [], ["--count", "2000"]),
    ("portal_home.py", [], ["--seconds", "5"]),
    ("account_list.py", [], ["--sizes", "1000,10000", "--repeat", "15"]),
    ("bulk_update.py", [], ["--accounts", "2000"]),
    ("import_csv.py", [], ["--rows", "10000"]),
    ("inbound_email.py", [], ["--messages", "2000"]),
    ("reminders.py", [], ["--accounts", "4000"]),
    ("upload.py", [], ["--files", "5", "--mb", "20"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    args = parser.parse_args()
    results = tempfile.mktemp(suffix=".jsonl")
    failed = []
    for script, full, quick in BENCHMARKS:
        print(f"\n== {script}", flush=True)
        started = time.monotonic()
        code = subprocess.call(
            [sys.executable, str(ROOT / "bench" / script), *(quick if args.quick else full)],
            env={**os.environ, "BENCH_JSON": results},
        )
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
        if code:
            failed.append(script)
    figures = []
    if os.path.exists(results):
        with open(results, encoding="utf-8") as lines:
            figures = [Figure(**json.loads(line)) for line in lines]
        os.unlink(results)
    print("\n== All figures\n")
    print(table(figures))
    targets = [f for f in figures if not f.target.startswith("(")]
    missed = [f.name for f in targets if not f.met]
    print(
        f"\n{len(targets) - len(missed)} met, {len(missed)} missed"
        + (f"; failed: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
