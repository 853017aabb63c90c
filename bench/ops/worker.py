"""One local worker process: `python -m bench.ops.worker '<RunRequest JSON>' i/n` (started by bench.ops.launch).

User errors print as one paragraph with exit code 2, as the CLI does.
"""

from __future__ import annotations

import logging
import sys

from bench.errors import BenchError


def main(argv: list[str]) -> int:
    from bench.api import run_worker
    from bench.ops.launch import parse_fraction
    from bench.request import RunRequest

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    request_json, which = argv
    index, count = parse_fraction(which, "worker")
    try:
        run_worker(RunRequest.from_json(request_json), index, count)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
