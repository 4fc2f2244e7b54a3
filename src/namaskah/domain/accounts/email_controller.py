"""Mailed links and passwords: verify the email address, forgot and reset the password, change it signed in."""

from __future__ import annotations

from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.email_tokens import AccountEmailService
from namaskah.domain.accounts.login_throttle import LoginThrottle
from namaskah.domain.accounts.models import User
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.accounts.schemas import (
    ChangePasswordRequest,
    EmailTokenRequest,
    EmailVerified,
    ForgotPasswordRequest,
    MailAccepted,
    ResetPasswordRequest,
)
from namaskah.lib.middleware import client_ip


class AccountEmailController(Controller):
    """The routes a mailed link leads to: they need its token, not a session."""

    path = "/v1/auth"
    tags = ["auth"]
    dependencies = account_dependencies

    @post("/email/verify", status_code=HTTP_200_OK, summary="Verify the email address with a mailed link's token")
    async def verify_email(
        self, data: JSONBody[EmailTokenRequest], account_emails: NamedDependency[AccountEmailService]
    ) -> EmailVerified:
        await account_emails.verify_email(data.token)
        return EmailVerified(email_verified=True)

    @post(
        "/password/forgot",
        status_code=HTTP_202_ACCEPTED,
        summary="Mail a password reset link; the same answer whether or not the address has an account",
    )
    async def forgot_password(
        self, data: JSONBody[ForgotPasswordRequest], account_emails: NamedDependency[AccountEmailService]
    ) -> MailAccepted:
        await account_emails.request_password_reset(data.email)
        return MailAccepted(detail="If an account uses this address, a password reset link is on its way to it.")

    @post(
        "/password/reset",
        status_code=HTTP_204_NO_CONTENT,
        summary="Set a new password with a reset link's token; every session is signed out",
    )
    async def reset_password(
        self, data: JSONBody[ResetPasswordRequest], account_emails: NamedDependency[AccountEmailService]
    ) -> None:
        await account_emails.reset_password(data.token, data.new_password)


class MePasswordController(Controller):
    path = "/v1/me"
    tags = ["accounts"]
    dependencies = account_dependencies

    @post("/email/verification", status_code=HTTP_202_ACCEPTED, summary="Mail a new email verification link")
    async def resend_verification(
        self,
        principal: NamedDependency[Principal],
        account: NamedDependency[User],
        account_emails: NamedDependency[AccountEmailService],
    ) -> MailAccepted:
        principal.require_session("ask for a verification email")
        await account_emails.request_verification(account)
        return MailAccepted(detail="A verification link is on its way to the account's email address.")

    @post(
        "/password",
        status_code=HTTP_204_NO_CONTENT,
        summary="Change the password; other sessions are signed out (send refresh_token to keep your own)",
    )
    async def change_password(
        self,
        *,
        request: Request[object, object, State],
        data: JSONBody[ChangePasswordRequest],
        principal: NamedDependency[Principal],
        account: NamedDependency[User],
        account_emails: NamedDependency[AccountEmailService],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> None:
        principal.require_session("change the password")
        user = account
        # A stolen access token must not become a way to guess the password: wrong guesses count as failed logins.
        async with login_throttle.attempt(user.email, client_ip(request)):
            await account_emails.change_password(
                user, data.current_password, data.new_password, keep_refresh_token=data.refresh_token
            )
