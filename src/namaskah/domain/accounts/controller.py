"""`/v1/auth/*` and `/v1/me`: register, log in, rotate and end sessions, read the account, manage its 2FA."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.email_tokens import AccountEmailService
from namaskah.domain.accounts.login_throttle import LoginThrottle
from namaskah.domain.accounts.models import User
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.accounts.schemas import (
    LoginRequest,
    Me,
    RecoveryCodes,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
    TotpCodeRequest,
    TotpSetup,
    UserCreated,
)
from namaskah.domain.accounts.service import AccountService, SessionService
from namaskah.domain.accounts.two_factor import TwoFactorService
from namaskah.domain.wallet.deps import provide_balance
from namaskah.lib.middleware import client_ip
from namaskah.lib.money import CURRENCY


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["auth"]
    dependencies = account_dependencies

    @post("/register", status_code=HTTP_201_CREATED, summary="Create an account and mail its verification link")
    async def register(
        self,
        data: JSONBody[RegisterRequest],
        accounts: NamedDependency[AccountService],
        account_emails: NamedDependency[AccountEmailService],
    ) -> UserCreated:
        user = await accounts.register(data.email, data.password)
        await account_emails.request_verification(user)
        return UserCreated(id=user.id, email=user.email, tier=user.tier)

    @post("/login", status_code=HTTP_200_OK, summary="Exchange email, password and (with 2FA) a code for tokens")
    async def login(
        self,
        request: Request[object, object, State],
        data: JSONBody[LoginRequest],
        accounts: NamedDependency[AccountService],
        sessions: NamedDependency[SessionService],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> TokenPair:
        # Wrong second factors count too: they are guesses at a 6-digit code.
        async with login_throttle.attempt(data.email, client_ip(request)):
            user = await accounts.authenticate(data.email, data.password, data.totp_code)
        return await sessions.start(user)

    @post("/refresh", status_code=HTTP_200_OK, summary="Spend a refresh token for a new pair")
    async def refresh(self, data: JSONBody[RefreshRequest], sessions: NamedDependency[SessionService]) -> TokenPair:
        return await sessions.rotate(data.refresh_token)

    @post("/logout", status_code=HTTP_204_NO_CONTENT, summary="Revoke the session of a refresh token")
    async def logout(self, data: JSONBody[RefreshRequest], sessions: NamedDependency[SessionService]) -> None:
        await sessions.end(data.refresh_token)


class MeController(Controller):
    path = "/v1/me"
    tags = ["accounts"]
    dependencies = {**account_dependencies, "balance": Provide(provide_balance)}

    @get("/", summary="The authenticated account")
    async def me(self, current_user: NamedDependency[User], balance: NamedDependency[int]) -> Me:
        # The balance changes with every purchase: read now, never from the cached caller.
        return Me(
            id=current_user.id,
            email=current_user.email,
            tier=current_user.tier,
            balance=balance,
            currency=CURRENCY,
            totp_enabled=current_user.totp_enabled,
            kyc_level="none",
        )

    @post("/2fa/setup", status_code=HTTP_200_OK, summary="Start 2FA setup: a new TOTP secret for the app")
    async def setup_two_factor(
        self,
        principal: NamedDependency[Principal],
        account: NamedDependency[User],
        two_factor: NamedDependency[TwoFactorService],
    ) -> TotpSetup:
        principal.require_session("change two-factor authentication")
        return await two_factor.setup(account)

    @post("/2fa/enable", status_code=HTTP_200_OK, summary="Turn 2FA on with a code; returns the recovery codes")
    async def enable_two_factor(
        self,
        data: JSONBody[TotpCodeRequest],
        principal: NamedDependency[Principal],
        account: NamedDependency[User],
        two_factor: NamedDependency[TwoFactorService],
    ) -> RecoveryCodes:
        principal.require_session("change two-factor authentication")
        return await two_factor.enable(account, data.code)

    @post("/2fa/disable", status_code=HTTP_204_NO_CONTENT, summary="Turn 2FA off with a code or a recovery code")
    async def disable_two_factor(
        self,
        data: JSONBody[TotpCodeRequest],
        principal: NamedDependency[Principal],
        account: NamedDependency[User],
        two_factor: NamedDependency[TwoFactorService],
    ) -> None:
        principal.require_session("change two-factor authentication")
        await two_factor.disable(account, data.code)
