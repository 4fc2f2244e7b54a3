"""Mail templates: one typed context per template, rendered by Jinja2 into a `Mail` with a text and an HTML part.

How to send one (from a service, in the transaction that causes it)::

    from namaskah.lib.mail import SendMail
    from namaskah.lib.mail_templates import LowBalance, render

    mail = render(LowBalance(balance=4_250, top_up_url=f"{settings.public_base_url}/wallet"), to=user.email)
    # or, by name: render("low_balance", to=user.email, balance=4_250, top_up_url=...)
    job = SendMail.seal(mail, purpose="low_balance", user_id=user.id, secret_key=settings.secret_key)
    await OutboxService(session=session).request(job)

The templates and their context (every field required unless a default is shown; URLs must be http(s)):

- `email_verification`: `link: str`, `expires_in: timedelta`
- `password_reset`: `link: str`, `expires_in: timedelta`
- `rental_expiring`: `number: str`, `ends_at: datetime` (timezone-aware), `auto_renew: bool`, `manage_url: str`
- `webhook_endpoint_disabled`: `endpoint_url: str` (the partner's, shown as text, never as a link),
  `failing_since: datetime` (timezone-aware), `manage_url: str`
- `low_balance`: `balance: int` (minor units), `top_up_url: str`, `currency: str = "NGN"`

A missing, unknown or mistyped value raises `MailContextError` at render time; a template that names a variable
its context lacks raises Jinja's `UndefinedError` (StrictUndefined). HTML parts autoescape every value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, ClassVar

import msgspec
from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from namaskah.lib.mail import Mail
from namaskah.lib.money import CURRENCY, MINOR_UNITS, format_money

# Links we make (from PUBLIC_BASE_URL): a `javascript:` value must never become a clickable href.
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]+$")]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Address = Annotated[str, msgspec.Meta(pattern=r"^[^\s@<>]+@[^\s@<>]+$")]


class MailTemplate(StrEnum):
    EMAIL_VERIFICATION = "email_verification"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a template's name, not a password
    RENTAL_EXPIRING = "rental_expiring"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"
    LOW_BALANCE = "low_balance"


class MailContextError(ValueError):
    """The values given to a template are missing, unknown or of the wrong type."""


class MailContext(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one template needs; `template` names its files, `subject` is a one-line Jinja template."""

    template: ClassVar[MailTemplate]
    subject: ClassVar[str]


class EmailVerification(MailContext, frozen=True, kw_only=True):
    template = MailTemplate.EMAIL_VERIFICATION
    subject = "Confirm your email address"

    link: HttpUrl
    expires_in: timedelta


class PasswordReset(MailContext, frozen=True, kw_only=True):
    template = MailTemplate.PASSWORD_RESET
    subject = "Reset your Namaskah SMS password"

    link: HttpUrl
    expires_in: timedelta


class RentalExpiring(MailContext, frozen=True, kw_only=True):
    template = MailTemplate.RENTAL_EXPIRING
    subject = "Your rental of {{ number }} ends {{ ends_at | utc }}"

    number: str
    ends_at: AwareDatetime
    auto_renew: bool
    manage_url: HttpUrl


class WebhookEndpointDisabled(MailContext, frozen=True, kw_only=True):
    template = MailTemplate.WEBHOOK_ENDPOINT_DISABLED
    subject = "A webhook endpoint of yours was disabled"

    endpoint_url: str
    failing_since: AwareDatetime
    manage_url: HttpUrl


class LowBalance(MailContext, frozen=True, kw_only=True):
    template = MailTemplate.LOW_BALANCE
    subject = "Your Namaskah SMS balance is low: {{ balance | money(currency) }}"

    balance: int
    top_up_url: HttpUrl
    currency: str = CURRENCY

    def __post_init__(self) -> None:
        if self.currency not in MINOR_UNITS:
            raise ValueError(f"unknown currency {self.currency!r}")


_KINDS: tuple[type[MailContext], ...] = (
    EmailVerification,
    PasswordReset,
    RentalExpiring,
    WebhookEndpointDisabled,
    LowBalance,
)
CONTEXTS: dict[MailTemplate, type[MailContext]] = {kind.template: kind for kind in _KINDS}


def render(template: MailTemplate | str | MailContext, /, *, to: str, **context: Any) -> Mail:
    """The mail of `template` for `to`: either a context Struct, or a template name and its context as keywords."""
    if isinstance(template, MailContext):
        if context:
            raise MailContextError("pass a context Struct or keyword values, not both")
        kind, values = type(template), msgspec.structs.asdict(template)
    else:
        try:
            kind = CONTEXTS[MailTemplate(template)]
        except ValueError:
            raise MailContextError(f"no mail template named {template!r}") from None
        values = context
    try:
        # Through convert even for a Struct: its constructor checks neither patterns nor time zones.
        checked = msgspec.convert(values, kind)
        msgspec.convert({"to": to}, _Recipient)
    except msgspec.ValidationError as exc:
        raise MailContextError(f"{kind.template}: {exc}") from None
    environment = _environment()
    variables = msgspec.structs.asdict(checked)
    # One line whatever a value holds: a newline in a header would be refused (or worse, start another header).
    subject = " ".join(_subject(kind.subject).render(variables).split())
    variables["subject"] = subject
    return Mail(
        to=to,
        subject=subject,
        text=environment.get_template(f"{kind.template}.txt").render(variables),
        html=environment.get_template(f"{kind.template}.html").render(variables),
    )


class _Recipient(msgspec.Struct, frozen=True):
    to: Address


def _duration(value: timedelta) -> str:
    """`3600 s` as `1 hour`, `172800 s` as `48 hours`, `1800 s` as `30 minutes`."""
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "1 hour" if hours == 1 else f"{hours} hours"
    minutes = round(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("namaskah", "templates/mail"),
        # Escaped in HTML files only: the text part shows a value as it is, the HTML part can not run it.
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(duration=_duration, utc=_utc, money=format_money)
    return environment


@cache
def _subject(source: str) -> Template:
    return _environment().from_string(source)
