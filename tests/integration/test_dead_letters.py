"""Dead letters on real Redis: real actors that fail, run by a real Dramatiq worker in this process, are listed
with their last error and their arguments without secrets, and requeued once (even by two operators at once)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
import redis

from namaskah.db.base import utcnow
from namaskah.lib.dead_letters import DeadLetters, summarize
from namaskah.lib.queue import build_broker
from tests.support.databases import REDIS_URL, make_settings, run_cli, settings_env

API_KEY = "nsk_live_Q2hhbmdlTWVQbGVhc2UxMjM0"
SEALED = "gAAAAABmZ3Jvb3Qtc2VhbGVkLXNlY3JldA=="


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    connection.close()


class Actors:
    """Actors on a broker of this test's namespace: one always fails, one fails until told to succeed."""

    def __init__(self, namespace: str) -> None:
        self.broker = build_broker(make_settings(REDIS_URL=REDIS_URL, DRAMATIQ_NAMESPACE=namespace))
        self.healed = False
        self.done: list[str] = []
        self.attempts = 0

        @dramatiq.actor(broker=self.broker, actor_name="tests.always_fails", max_retries=0)
        def always_fails(payload: dict[str, Any]) -> None:
            raise RuntimeError(f"provider refused the key {API_KEY}")

        @dramatiq.actor(broker=self.broker, actor_name="tests.fails_until_healed", max_retries=0)
        def fails_until_healed(payload: dict[str, Any]) -> None:
            if not self.healed:
                raise ConnectionError("provider down")
            self.done.append(payload["user_id"])

        @dramatiq.actor(broker=self.broker, actor_name="tests.retried", max_retries=1, min_backoff=10, max_backoff=20)
        def retried(payload: dict[str, Any]) -> None:
            self.attempts += 1
            raise ValueError(f"attempt {self.attempts}")

        self.always_fails, self.fails_until_healed, self.retried = always_fails, fails_until_healed, retried

    def run_until(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        worker = dramatiq.Worker(self.broker, worker_threads=1, worker_timeout=50)
        worker.start()
        try:
            deadline = time.monotonic() + timeout
            while not condition():
                assert time.monotonic() < deadline, "the worker did not get there in time"
                time.sleep(0.02)
        finally:
            worker.stop()


@pytest.fixture
def actors(redis_namespace: str) -> Iterator[Actors]:
    made = Actors(redis_namespace)
    yield made
    made.broker.close()


def payload() -> dict[str, Any]:
    return {"user_id": str(uuid.uuid4()), "purpose": "password_reset", "sealed": SEALED, "api_key": API_KEY}


def test_a_failed_job_is_listed_with_its_error_and_no_secret(
    actors: Actors, client: redis.Redis, redis_namespace: str
) -> None:
    body = payload()
    message = actors.always_fails.send(body)
    letters = DeadLetters(client, redis_namespace)
    actors.run_until(lambda: letters.count() == 1)

    [letter] = letters.latest()
    assert letter.id == message.message_id
    assert (letter.actor, letter.queue, letter.attempts) == ("tests.always_fails", "default", 1)
    assert utcnow() - timedelta(seconds=30) < letter.failed_at <= utcnow()
    assert letter.error == "RuntimeError: provider refused the key [REDACTED]"
    assert (
        letter.args == f"{{user_id={body['user_id']}, purpose=password_reset, sealed=<36 chars>, api_key=[REDACTED]}}"
    )
    assert letters.queues() == ["default"]
    assert DeadLetters(client, f"{redis_namespace}-other").latest() == []  # DRAMATIQ_NAMESPACE is honoured


def test_the_error_is_the_last_attempts(actors: Actors, client: redis.Redis, redis_namespace: str) -> None:
    actors.retried.send({"n": 1})
    letters = DeadLetters(client, redis_namespace)
    actors.run_until(lambda: letters.count() == 1)
    [letter] = letters.latest()
    # Dramatiq alone would keep the traceback of attempt 1 (the message as last enqueued), or none without retries.
    assert (letter.attempts, letter.error) == (2, "ValueError: attempt 2")


def test_a_retried_job_runs_again_once_and_leaves_the_dead_letters(
    actors: Actors, client: redis.Redis, redis_namespace: str
) -> None:
    body = payload()
    message = actors.fails_until_healed.send(body)
    letters = DeadLetters(client, redis_namespace)
    actors.run_until(lambda: letters.count() == 1)

    actors.healed = True  # the operator fixed the cause
    retried = letters.retry(message.message_id)
    assert retried is not None
    assert retried.id == message.message_id
    assert letters.count() == 0
    assert letters.retry(message.message_id) is None  # already requeued
    actors.run_until(lambda: actors.done == [body["user_id"]])
    assert client.llen(f"{redis_namespace}:default") == 0
    assert client.hlen(f"{redis_namespace}:default.msgs") == 0
    assert letters.count() == 0


def test_two_operators_retrying_at_once_requeue_the_job_once(
    actors: Actors, client: redis.Redis, redis_namespace: str
) -> None:
    message = actors.always_fails.send(payload())
    letters = DeadLetters(client, redis_namespace)
    actors.run_until(lambda: letters.count() == 1)

    barrier, results = threading.Barrier(8), []

    def retry() -> None:
        operator = DeadLetters(redis.Redis.from_url(REDIS_URL), redis_namespace)
        barrier.wait()
        results.append(operator.retry(message.message_id))

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([r for r in results if r is not None]) == 1
    assert client.lrange(f"{redis_namespace}:default", 0, -1) == [client.hkeys(f"{redis_namespace}:default.msgs")[0]]
    assert letters.count() == 0


def test_unknown_ids_are_not_found(actors: Actors, client: redis.Redis, redis_namespace: str) -> None:
    actors.always_fails.send(payload())
    letters = DeadLetters(client, redis_namespace)
    actors.run_until(lambda: letters.count() == 1)
    assert letters.retry(str(uuid.uuid4())) is None
    assert letters.count() == 1


def test_arguments_are_summarized() -> None:
    nested = {"args": [{"rental_id": "0190b7a2-1c2d-7e3f-8a9b-0c1d2e3f4a5b"}], "options": {"password": "hunter2"}}
    assert (
        summarize(nested) == "{args=[{rental_id=0190b7a2-1c2d-7e3f-8a9b-0c1d2e3f4a5b}], options={password=[REDACTED]}}"
    )
    assert summarize("Ada Lovelace <ada@example.com>") == "<30 chars>"
    assert summarize("2026-01-02T03:04:05.123456+00:00") == "2026-01-02T03:04:05.123456+00:00"
    assert summarize([1, 2.5, None, True]) == "[1, 2.5, null, true]"
    assert summarize({"a": {"b": {"c": {"d": 1}}}}) == "{a={b={c={...}}}}"


def test_the_cli_lists_and_retries(actors: Actors, client: redis.Redis, redis_namespace: str) -> None:
    message = actors.always_fails.send(payload())
    actors.run_until(lambda: DeadLetters(client, redis_namespace).count() == 1)
    env = settings_env(REDIS_URL=REDIS_URL, DRAMATIQ_NAMESPACE=redis_namespace, COLUMNS="250")

    listed = run_cli("jobs", "failed", env=env)
    assert listed.returncode == 0, listed.stderr
    assert message.message_id in listed.stdout
    assert "tests.always_fails" in listed.stdout
    assert "RuntimeError: provider refused the key [REDACTED]" in listed.stdout
    assert API_KEY not in listed.stdout
    assert SEALED not in listed.stdout
    assert "1 of 1" in listed.stdout

    retried = run_cli("jobs", "retry", message.message_id, env=env)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == f"requeued {message.message_id} (tests.always_fails) on default"
    again = run_cli("jobs", "retry", message.message_id, env=env)
    assert again.returncode == 1
    assert again.stderr.strip() == f"namaskah: no failed job {message.message_id}"
    assert run_cli("jobs", "failed", env=env).stdout.strip() == "no failed jobs"
