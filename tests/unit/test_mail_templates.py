"""Mail templates: each renders a text and an escaped HTML part from its typed context, and refuses bad context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import jinja2
import pytest
from jinja2 import meta

from namaskah.lib.mail import Mail, SendMail
from namaskah.lib.mail_templates import (
    CONTEXTS,
    EmailVerification,
    LowBalance,
    MailContext,
    MailContextError,
    MailTemplate,
    PasswordReset,
    RentalExpiring,
    WebhookEndpointDisabled,
    _environment,
    render,
)

TO = "ada@example.com"
WHEN = datetime(2025, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=1)))  # 13:30 UTC
LINK = "https://app.example/verify-email#token=ev_abc"

# Each template with a full context and what both of its parts must say.
CASES: list[tuple[MailContext, str, list[str]]] = [
    (
        EmailVerification(link=LINK, expires_in=timedelta(hours=48)),
        "Confirm your email address",
        [LINK, "expires in 48 hours"],
    ),
    (
        PasswordReset(link="https://app.example/reset-password#token=pr_x", expires_in=timedelta(minutes=30)),
        "Reset your Namaskah SMS password",
        ["https://app.example/reset-password#token=pr_x", "expires in 30 minutes"],
    ),
    (
        RentalExpiring(number="+15551234567", ends_at=WHEN, auto_renew=False, manage_url="https://app.example/r/1"),
        "Your rental of +15551234567 ends 2025-03-01 13:30 UTC",
        ["+15551234567", "2025-03-01 13:30 UTC", "extend the rental", "https://app.example/r/1"],
    ),
    (
        RentalExpiring(number="+15551234567", ends_at=WHEN, auto_renew=True, manage_url="https://app.example/r/1"),
        "Your rental of +15551234567 ends 2025-03-01 13:30 UTC",
        ["renews automatically", "top up"],
    ),
    (
        WebhookEndpointDisabled(
            endpoint_url="https://partner.example/hooks", failing_since=WHEN, manage_url="https://app.example/w"
        ),
        "A webhook endpoint of yours was disabled",
        ["https://partner.example/hooks", "since 2025-03-01 13:30 UTC", "https://app.example/w"],
    ),
    (
        LowBalance(balance=123_456_789, top_up_url="https://app.example/wallet"),
        "Your Namaskah SMS balance is low: NGN 1,234,567.89",
        ["NGN 1,234,567.89", "https://app.example/wallet"],
    ),
]


class _Text(HTMLParser):
    """The text a reader of the HTML part sees, and the links it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value or "" for name, value in attrs if tag == "a" and name == "href"]


def html_text(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    return parser


@pytest.mark.parametrize(("context", "subject", "says"), CASES, ids=lambda case: getattr(case, "template", None))
def test_each_template_renders_a_text_and_an_html_part(context: MailContext, subject: str, says: list[str]) -> None:
    mail = render(context, to=TO)
    assert (mail.to, mail.subject) == (TO, subject)
    assert mail.html is not None
    seen = " ".join(" ".join(html_text(mail.html).text).split())
    for fragment in says:
        assert fragment in mail.text
        assert fragment.lower() in seen.lower()
    assert f"<title>{subject}</title>" in mail.html
    # The same mail by name and keywords, as callers without the Struct write it.
    assert render(context.template, to=TO, **_fields(context)) == mail
    assert render(str(context.template), to=TO, **_fields(context)) == mail


def test_the_account_mails_keep_their_wording() -> None:
    mail = render(EmailVerification(link=LINK, expires_in=timedelta(hours=1)), to=TO)
    assert mail.text == (
        "Hello,\n\nPlease confirm that this address belongs to your Namaskah SMS account by opening this link:\n\n"
        f"{LINK}\n\nThe link works once and expires in 1 hour. "
        "If you did not create an account, you can ignore this email.\n"
    )
    assert html_text(mail.html or "").links == [LINK]


def test_every_template_uses_only_its_context() -> None:
    environment = _environment()
    assert set(CONTEXTS) == set(MailTemplate)
    for template, kind in CONTEXTS.items():
        for part in ("txt", "html"):
            source = environment.loader.get_source(environment, f"{template}.{part}")[0]
            used = meta.find_undeclared_variables(environment.parse(source))
            assert used <= {*kind.__struct_fields__, "subject"}, (template, part)
            assert used >= set(kind.__struct_fields__) - {"currency"}, (template, part)


def test_an_undefined_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(jinja2.UndefinedError):
        _environment().from_string("Hello {{ nmae }}").render(name="Ada")


def test_user_values_are_escaped_in_html_and_left_alone_in_text() -> None:
    url = 'https://evil.example/"><script>alert(1)</script><a href="javascript:x'
    mail = render(
        WebhookEndpointDisabled(endpoint_url=url, failing_since=WHEN, manage_url="https://app.example/w"), to=TO
    )
    assert mail.html is not None
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    parsed = html_text(mail.html)
    assert parsed.links == ["https://app.example/w"]  # the partner's URL is shown, never made a link
    assert url in "".join(parsed.text)
    assert url in mail.text
    # A quote in one of our links can not leave its attribute either.
    quoted = render(PasswordReset(link='https://app.example/r#"onmouseover="x', expires_in=timedelta(hours=1)), to=TO)
    assert html_text(quoted.html or "").links == ['https://app.example/r#"onmouseover="x']
    assert 'onmouseover="x' not in (quoted.html or "")


def test_a_subject_is_one_line_whatever_a_value_holds() -> None:
    number = "+1555\r\nBcc: everyone@example.com"
    mail = render(RentalExpiring(number=number, ends_at=WHEN, auto_renew=True, manage_url="https://a.example"), to=TO)
    assert "\n" not in mail.subject
    assert "\r" not in mail.subject
    assert mail.subject.startswith("Your rental of +1555 Bcc: everyone@example.com ends")


@pytest.mark.parametrize(
    ("template", "context", "complaint"),
    [
        ("password_reset", {"link": LINK}, "missing required field `expires_in`"),
        ("password_reset", {"link": LINK, "expires_in": timedelta(hours=1), "name": "Ada"}, "unknown field `name`"),
        ("password_reset", {"link": "javascript:alert(1)", "expires_in": timedelta(hours=1)}, "$.link"),
        ("low_balance", {"balance": "1200", "top_up_url": LINK}, "Expected `int`, got `str`"),
        ("low_balance", {"balance": 1.5, "top_up_url": LINK}, "Expected `int`, got `float`"),
        ("low_balance", {"balance": 100, "top_up_url": LINK, "currency": "XYZ"}, "unknown currency 'XYZ'"),
        (
            "rental_expiring",
            {"number": "+1", "ends_at": datetime(2025, 3, 1), "auto_renew": True, "manage_url": LINK},  # noqa: DTZ001
            "timezone",
        ),
        ("webhook_endpoint_disabled", {"endpoint_url": "https://p.example", "manage_url": LINK}, "failing_since"),
        ("birthday", {}, "no mail template named 'birthday'"),
    ],
)
def test_bad_context_is_refused_at_render_time(template: str, context: dict[str, Any], complaint: str) -> None:
    with pytest.raises(MailContextError) as raised:
        render(template, to=TO, **context)
    assert complaint in str(raised.value)


def test_a_struct_built_by_hand_is_checked_too() -> None:
    # The constructor checks neither patterns nor time zones; render does.
    naive = RentalExpiring(number="+1", ends_at=datetime(2025, 3, 1), auto_renew=True, manage_url=LINK)  # noqa: DTZ001
    with pytest.raises(MailContextError, match="timezone"):
        render(naive, to=TO)
    with pytest.raises(MailContextError, match="not both"):
        render(EmailVerification(link=LINK, expires_in=timedelta(hours=1)), to=TO, link=LINK)


@pytest.mark.parametrize("to", ["", "ada", "ada@example.com\r\nBcc: x@example.com", "Ada <ada@example.com>"])
def test_a_bad_recipient_is_refused(to: str) -> None:
    with pytest.raises(MailContextError, match=r"\$\.to"):
        render(EmailVerification(link=LINK, expires_in=timedelta(hours=1)), to=to)


@pytest.mark.parametrize(
    ("balance", "shown"), [(0, "NGN 0.00"), (5, "NGN 0.05"), (100_000, "NGN 1,000.00"), (-123_456, "NGN -1,234.56")]
)
def test_balances_are_formatted_from_minor_units(balance: int, shown: str) -> None:
    mail = render(LowBalance(balance=balance, top_up_url=LINK), to=TO)
    assert shown in mail.text
    assert mail.subject.endswith(shown)


def test_times_are_shown_in_utc() -> None:
    lagos = datetime(2025, 12, 31, 23, 59, tzinfo=UTC).astimezone(timezone(timedelta(hours=1)))
    mail = render(RentalExpiring(number="+1", ends_at=lagos, auto_renew=True, manage_url=LINK), to=TO)
    assert "2025-12-31 23:59 UTC" in mail.text


def test_a_rendered_mail_survives_the_sealed_job() -> None:
    mail = render(LowBalance(balance=4_250, top_up_url=LINK), to=TO)
    job = SendMail.seal(mail, purpose="low_balance", user_id=None, secret_key="k" * 40)
    assert SendMail.decode(job.to_payload()).open("k" * 40) == mail
    assert isinstance(mail, Mail)
    assert mail.html


def _fields(context: MailContext) -> dict[str, Any]:
    return {name: getattr(context, name) for name in context.__struct_fields__}
