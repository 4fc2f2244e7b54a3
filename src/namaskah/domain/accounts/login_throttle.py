"""Failed-login limits per account and per client IP, kept apart from request rate limits."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from namaskah.domain.accounts.errors import InvalidCredentials, TotpRequired
from namaskah.lib.errors import DomainError
from namaskah.lib.ratelimit import RateLimiter
from namaskah.settings import Settings


class LoginThrottled(DomainError):
    status_code = 429
    code = "login_throttled"
    title = "Too many failed logins"


class LoginThrottle:
    """Only failures count; a success clears the account's count. Checked before the password is verified,
    so a throttled guesser learns nothing and costs us no argon2 work."""

    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self.limiter = limiter
        self.per_account = settings.login_max_failures
        self.per_ip = settings.login_max_failures_per_ip

    @asynccontextmanager
    async def attempt(self, email: str, ip: str) -> AsyncIterator[None]:
        """Around anything that checks this account's password (or second factor): refused while throttled,
        a refusal counts as a failure, a success clears the account's count."""
        await self.check(email, ip)
        try:
            yield
        except (InvalidCredentials, TotpRequired):
            await self.failed(email, ip)
            raise
        await self.succeeded(email)

    async def check(self, email: str, ip: str) -> None:
        for key, limit in ((self._account(email), self.per_account), (f"ip:{ip}", self.per_ip)):
            decision = await self.limiter.peek(key, limit)
            if decision.remaining <= 0:
                raise LoginThrottled(
                    f"Too many failed logins; retry in {decision.reset} s",
                    headers={"Retry-After": str(decision.reset)},
                )

    async def failed(self, email: str, ip: str) -> None:
        await self.limiter.hit(self._account(email), self.per_account)
        await self.limiter.hit(f"ip:{ip}", self.per_ip)

    async def succeeded(self, email: str) -> None:
        await self.limiter.reset(self._account(email))

    @staticmethod
    def _account(email: str) -> str:
        # Keys name a digest, not the address: Redis holds no personal data.
        return "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
