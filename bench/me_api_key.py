"""Requests/second of our GET /v1/me with an API key (PostgreSQL, Redis) against a bare Litestar app, via wrk."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import redis
from redis.exceptions import RedisError

import harness
from namaskah.lib.security.passwords import PasswordHasher
from namaskah.settings import Settings

ROUTE = "/v1/me"
TARGET_RATIO = 0.40
TARGET_P99_MS = 25.0
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/8"
PASSWORD = "bench-staple-horse-battery-7"  # >= 10 characters and not a common one
ARGON2_VERIFIES = 20
# The per-key limit still runs its Redis check on every request; at this limit it never answers 429.
ENTERPRISE_LIMIT = 1_000_000_000


@dataclass(frozen=True)
class Backing:
    """The throwaway database and Redis namespace of one run, both named after this process."""

    admin_dsn: str
    redis_url: str
    pid: int

    @property
    def database(self) -> str:
        return f"namaskah_bench_{self.pid}"

    @property
    def namespace(self) -> str:
        return f"bench-{self.pid}"

    @property
    def email(self) -> str:
        return f"bench-{self.pid}@example.com"

    def dsn(self, scheme: str = "postgresql") -> str:
        """The admin DSN pointed at the throwaway database."""
        return urlsplit(self.admin_dsn)._replace(scheme=scheme, path=f"/{self.database}").geturl()

    def our_env(self) -> dict[str, str]:
        """Production code paths (test mode accepts the dev secret) on real PostgreSQL and Redis."""
        return {
            "APP_ENV": "test",
            "DATABASE_URL": self.dsn("postgresql+asyncpg"),
            "REDIS_URL": self.redis_url,
            "DRAMATIQ_NAMESPACE": self.namespace,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "OUTBOX_SWEEP_INTERVAL": "0",
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--postgres", default=ADMIN_DSN, help=f"DSN allowed to create and drop databases (default {ADMIN_DSN})"
    )
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis our app uses (default {REDIS_URL})")


async def execute(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def make_enterprise(dsn: str, email: str) -> str:
    """The user's tier to enterprise, and that tier's limit lifted so the run never meets a 429 (the limiter
    still counts every request in Redis)."""
    connection = await asyncpg.connect(dsn)
    try:
        updated: str = await connection.execute("UPDATE users SET tier = 'enterprise' WHERE email = $1", email)
        limit = "UPDATE tiers SET rate_limit_per_minute = $1 WHERE name = 'enterprise'"
        await connection.execute(limit, ENTERPRISE_LIMIT)
        return updated
    finally:
        await connection.close()


def create_database(backing: Backing) -> None:
    asyncio.run(execute(backing.admin_dsn, f'CREATE DATABASE "{backing.database}"'))


def drop_database(backing: Backing) -> None:
    try:
        asyncio.run(execute(backing.admin_dsn, f'DROP DATABASE IF EXISTS "{backing.database}" WITH (FORCE)'))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"warning: could not drop database {backing.database}: {exc}", file=sys.stderr)


def delete_redis_keys(backing: Backing) -> None:
    client = redis.Redis.from_url(backing.redis_url)
    try:
        keys = [backing.namespace, *client.scan_iter(match=f"{backing.namespace}:*", count=1000)]
        client.delete(*keys)
    except RedisError as exc:
        print(f"warning: could not delete the Redis keys {backing.namespace}:*: {exc}", file=sys.stderr)
    finally:
        client.close()


def migrate(target: harness.Target, workdir: Path) -> None:
    """`python -m namaskah database upgrade` with the environment the server gets, from the temp dir."""
    done = subprocess.run(
        [sys.executable, "-m", "namaskah", "database", "upgrade"],
        cwd=workdir,
        env=harness.server_env(target, workdir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"error: migrating the bench database failed ({done.returncode}):\n{done.stderr or done.stdout}")


def expect(server: harness.Server, answer: tuple[int, Any], status: int, what: str) -> Any:
    if answer[0] != status:
        harness.fail_with_logs(server, f"answered {answer[0]} to {what}: {answer[1]}")
    return answer[1]


def provision(backing: Backing, servers: list[harness.Server]) -> list[str]:
    """Through our API: register, log in, make the account enterprise (SQL), create a key; check both /v1/me."""
    ours, bare = servers
    credentials = {"email": backing.email, "password": PASSWORD}
    expect(ours, harness.http_json("POST", ours.url("/v1/auth/register"), credentials), 201, "register")
    tokens = expect(ours, harness.http_json("POST", ours.url("/v1/auth/login"), credentials), 200, "log in")
    updated = asyncio.run(make_enterprise(backing.dsn(), backing.email))
    if updated != "UPDATE 1":
        harness.fail_with_logs(ours, f"setting the tier updated no user ({updated})")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    body = {"name": "bench", "scopes": ["wallet:read"]}
    created = harness.http_json("POST", ours.url("/v1/api-keys"), body, bearer)
    key = expect(ours, created, 201, "POST /v1/api-keys")["key"]
    header = {"X-API-Key": key}
    me = expect(ours, harness.http_json("GET", ours.url(ROUTE), headers=header), 200, f"GET {ROUTE} with the key")
    if me.get("email") != backing.email or me.get("tier") != "enterprise":
        harness.fail_with_logs(ours, f"answered GET {ROUTE} with another account: {me}")
    baseline = expect(bare, harness.http_json("GET", bare.url(ROUTE), headers=header), 200, f"GET {ROUTE}")
    if baseline.keys() != me.keys():
        harness.fail_with_logs(bare, f"answers {sorted(baseline)} where ours answers {sorted(me)}")
    return [f"X-API-Key: {key}"]


def argon2_verify_ms(settings: Settings) -> float:
    """Median wall time of one argon2id verify with the default cost, in this (otherwise idle) process."""
    hasher = PasswordHasher.from_settings(settings)
    password_hash = hasher.hash(PASSWORD)
    timings = []
    for _ in range(ARGON2_VERIFIES):
        started = time.perf_counter()
        if not hasher.verify(password_hash, PASSWORD):
            sys.exit("error: argon2 verify refused the password it hashed")
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def argon2_figures(settings: Settings) -> dict[str, Any]:
    return {
        "time_cost": settings.argon2_time_cost,
        "memory_cost": settings.argon2_memory_cost,
        "parallelism": settings.argon2_parallelism,
        "verify_ms": round(argon2_verify_ms(settings), 1),
    }


def failures(results: dict[str, list[harness.WrkResult]]) -> list[str]:
    """Any non-2xx answer or socket error during the rounds makes the run void."""
    return [
        f"{name}: {sum(r.non_2xx for r in rounds)} non-2xx answers, {sum(r.errors - r.non_2xx for r in rounds)} "
        "socket errors"
        for name, rounds in results.items()
        if any(r.errors for r in rounds)
    ]


def run(args: argparse.Namespace, workdir: Path) -> int:
    wrk = harness.ensure_wrk()
    argon2 = argon2_figures(Settings())  # the defaults, not the environment's
    backing = Backing(admin_dsn=args.postgres, redis_url=args.redis_url, pid=os.getpid())
    ours = harness.Target("ours", harness.OUR_APP_ARGS, backing.our_env(), ready_path="/health/ready")
    create_database(backing)
    try:
        migrate(ours, workdir)
        targets = [ours, harness.Target("bare", harness.BARE_APP_ARGS)]
        measured = harness.run_rounds(wrk, targets, args, workdir, ROUTE, partial(provision, backing))
    finally:
        drop_database(backing)
        delete_redis_keys(backing)
    return report(measured, args, backing, argon2)


def report(measured: harness.Run, args: argparse.Namespace, backing: Backing, argon2: dict[str, Any]) -> int:
    summary = harness.summarize(measured.results, TARGET_RATIO)
    ours, bare = summary["median"]["ours"], summary["median"]["bare"]
    ratio_met, p99_met = summary["target_met"], ours["p99_ms"] is not None and ours["p99_ms"] < TARGET_P99_MS
    void = failures(measured.results)
    access_lines = harness.count_lines(measured.servers[0].stdout_path)
    extra = {"ratio_met": ratio_met, "target_p99_ms": TARGET_P99_MS, "p99_met": p99_met, "failed": void}
    environment = harness.environment(measured, args, our_env=backing.our_env())
    results_path = harness.write_results(
        "me_api_key",
        {
            **summary,
            **extra,
            "target_met": ratio_met and p99_met and not void,
            "argon2id": argon2,
            "our_log_lines": access_lines,
            "environment": environment,
        },
    )
    harness.print_medians(summary)
    print(f"target ratio >= {TARGET_RATIO}: {'met' if ratio_met else 'NOT met'};  ", end="")
    print(f"target our p99 < {TARGET_P99_MS:.0f} ms: {'met' if p99_met else 'NOT met'}")
    print(f"our access log lines written: {access_lines}")
    verify = f"argon2id verify {argon2['verify_ms']:.0f} ms"
    print(f"{verify} (t={argon2['time_cost']}, m={argon2['memory_cost']} KiB, p={argon2['parallelism']}; ", end="")
    print(f"median of {ARGON2_VERIFIES}, measured before the load, not on this route)")
    print(f"results: {harness.relative(results_path)}")
    if void:
        print(f"me_api_key FAILED: errors during the rounds ({'; '.join(void)})")
        return 1
    p99 = f"{ours['p99_ms']:.1f}ms" if ours["p99_ms"] is not None else "?"
    print(
        f"me_api_key ratio={summary['ratio']:.2f} p99={p99} (ours {ours['rps']:.0f} rps / bare {bare['rps']:.0f} rps)"
        f"; {verify}"
    )
    return 2 if args.strict and not (ratio_met and p99_met) else 0


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_args(
        __doc__,
        target=f"a target is missed (ratio >= {TARGET_RATIO}, our p99 < {TARGET_P99_MS:.0f} ms)",
        connections=64,
        argv=argv,
        add_arguments=add_arguments,
    )
    return harness.in_workdir(args, run)


if __name__ == "__main__":
    sys.exit(main())
