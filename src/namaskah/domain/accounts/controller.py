"""`/v1/auth/*` and `/v1/me`: register, log in, rotate and end sessions, read the current account."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.models import User
from namaskah.domain.accounts.schemas import LoginRequest, Me, RefreshRequest, RegisterRequest, TokenPair, UserCreated
from namaskah.domain.accounts.service import AccountService, SessionService

# Until the ledger exists (the money-path issue) no account can hold credits: every balance is zero.
WALLET_CURRENCY = "NGN"


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["auth"]
    dependencies = account_dependencies

    @post("/register", status_code=HTTP_201_CREATED, summary="Create an account")
    async def register(self, data: JSONBody[RegisterRequest], accounts: NamedDependency[AccountService]) -> UserCreated:
        user = await accounts.register(data.email, data.password)
        return UserCreated(id=user.id, email=user.email, tier=user.tier)

    @post("/login", status_code=HTTP_200_OK, summary="Exchange email and password for tokens")
    async def login(
        self,
        data: JSONBody[LoginRequest],
        accounts: NamedDependency[AccountService],
        sessions: NamedDependency[SessionService],
    ) -> TokenPair:
        user = await accounts.authenticate(data.email, data.password)
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
    dependencies = account_dependencies

    @get("/", summary="The authenticated account")
    async def me(self, current_user: NamedDependency[User]) -> Me:
        return Me(
            id=current_user.id,
            email=current_user.email,
            tier=current_user.tier,
            balance=0,
            currency=WALLET_CURRENCY,
            totp_enabled=False,
            kyc_level="none",
        )
