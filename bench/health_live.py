"""Requests/second of our GET /health/live against a bare Litestar app, same uvicorn settings, via wrk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import harness

ROUTE = "/health/live"
TARGET_RATIO = 0.8
# Our production logging defaults (one JSON access line per request), dev mode without Redis or Postgres.
OUR_ENV = {"APP_ENV": "development", "OUTBOX_SWEEP_INTERVAL": "0", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-every-request",
        action="store_true",
        help="set LOG_QUIET_PATHS empty so each probe writes an access line (the worst case)",
    )


def targets(args: argparse.Namespace) -> list[harness.Target]:
    env = {**OUR_ENV, "LOG_QUIET_PATHS": ""} if args.log_every_request else OUR_ENV
    return [harness.Target("ours", harness.OUR_APP_ARGS, env), harness.Target("bare", harness.BARE_APP_ARGS)]


def run(args: argparse.Namespace, workdir: Path) -> int:
    measured = harness.run_rounds(harness.ensure_wrk(), targets(args), args, workdir, ROUTE)
    summary = harness.summarize(measured.results, TARGET_RATIO)
    access_lines = harness.count_lines(measured.servers[0].stdout_path)
    environment = harness.environment(measured, args, our_env=OUR_ENV, log_every_request=args.log_every_request)
    results_path = harness.write_results(
        "health_live", {**summary, "our_log_lines": access_lines, "environment": environment}
    )
    harness.print_medians(summary)
    ours, bare = summary["median"]["ours"], summary["median"]["bare"]
    verdict = "met" if summary["target_met"] else "NOT met"
    print(f"target ratio >= {TARGET_RATIO}: {verdict};  our access log lines written: {access_lines}")
    print(f"results: {harness.relative(results_path)}")
    print(f"health_live ratio={summary['ratio']:.2f} (ours {ours['rps']:.0f} rps / bare {bare['rps']:.0f} rps)")
    return 2 if args.strict and not summary["target_met"] else 0


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_args(
        __doc__, target=f"the ratio is below {TARGET_RATIO}", connections=32, argv=argv, add_arguments=add_arguments
    )
    return harness.in_workdir(args, run)


if __name__ == "__main__":
    sys.exit(main())
