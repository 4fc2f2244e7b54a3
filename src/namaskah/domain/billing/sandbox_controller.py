"""Dev-mode checkout page of the Paystack sandbox (absent in production): look at a transaction and pay it."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from litestar import Controller, MediaType, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK

from namaskah.db.session import service_provider
from namaskah.domain.billing.models import SandboxTransaction
from namaskah.domain.billing.sandbox import SandboxService
from namaskah.domain.billing.sandbox_api import CHECKOUT_PATH
from namaskah.lib.money import MINOR_UNITS, to_decimal_text


@cache
def _page() -> Template:
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).resolve().parent), autoescape=True, undefined=StrictUndefined
    )
    return environment.get_template("sandbox_checkout.html")


def _render(tx: SandboxTransaction) -> Response[str]:
    major = to_decimal_text(tx.amount, tx.currency) if tx.currency in MINOR_UNITS else str(tx.amount)
    html = _page().render(
        email=tx.email, currency=tx.currency, major=major, reference=tx.reference, paid=tx.status == "success"
    )
    # The page is the service's own and holds no script; it must not be framed by another site.
    headers = {"X-Frame-Options": "DENY", "Cache-Control": "no-store"}
    return Response(html, media_type=MediaType.HTML, headers=headers)


class SandboxCheckoutController(Controller):
    path = CHECKOUT_PATH
    tags = ["dev"]
    dependencies = {"sandbox": service_provider(SandboxService)}
    include_in_schema = False

    @get("/{reference:str}", summary="The sandbox's checkout page")
    async def page(self, reference: FromPath[str], sandbox: NamedDependency[SandboxService]) -> Response[str]:
        return _render(await sandbox.find(reference))

    @post("/{reference:str}", status_code=HTTP_200_OK, summary="Pay: sends a signed charge.success to the webhook")
    async def pay(self, reference: FromPath[str], sandbox: NamedDependency[SandboxService]) -> Response[str]:
        tx, _ = await sandbox.pay(reference)
        return _render(tx)
