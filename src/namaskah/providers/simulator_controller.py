"""Dev-mode route through which the simulator delivers an SMS to a number it sold (404 in production)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from namaskah.providers.simulator import SimulatorProvider

# E.164: "+", a country code, at most 15 digits. The lookahead refuses a trailing newline, which "$" alone lets
# through (msgspec searches the pattern rather than matching all of it).
PhoneNumber = Annotated[
    str, msgspec.Meta(pattern=r"^\+[1-9][0-9]{7,14}(?!\n)$", examples=["+14155550123"], max_length=16)
]
SmsText = Annotated[str, msgspec.Meta(min_length=1, max_length=1600)]


class SimulatedSms(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    phone_number: PhoneNumber
    text: SmsText


class SimulatedDelivery(msgspec.Struct, frozen=True):
    reservation_id: str
    code: str | None


def provide_simulator(state: State) -> SimulatorProvider:
    # The simulator is whatever its tables say, so one built per request sees what every process wrote.
    return SimulatorProvider(state.session_factory)


class SimulatorController(Controller):
    path = "/v1/dev/simulator"
    tags = ["dev"]
    dependencies = {"simulator": Provide(provide_simulator, sync_to_thread=False)}

    @post(
        "/messages",
        status_code=HTTP_201_CREATED,
        summary="Deliver an SMS to a simulated number",
        description="404 `unknown_number` unless a pending verification or an active rental holds the number.",
    )
    async def deliver(
        self, data: JSONBody[SimulatedSms], simulator: NamedDependency[SimulatorProvider]
    ) -> SimulatedDelivery:
        delivery = await simulator.deliver(data.phone_number, data.text)
        return SimulatedDelivery(reservation_id=delivery.reservation_id, code=delivery.message.code)
