"""`lib.received_sms.unseen`: one SMS under two ids (pushed and listed) is stored once; a repeat of the text later is
another SMS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from namaskah.lib.received_sms import unseen
from namaskah.providers.base import ProviderMessage

AT = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


def sms(key: str, text: str, at: datetime = AT) -> ProviderMessage:
    return ProviderMessage(provider_id=key, text=text, code=None, received_at=at)


def test_a_listed_sms_already_stored_as_pushed_is_not_new() -> None:
    stored = [("push-abc", "Code 1234", AT)]
    assert unseen([sms("tv_1", "Code 1234", AT + timedelta(milliseconds=400))], stored) == []


def test_the_same_id_is_not_new_whatever_its_text() -> None:
    assert unseen([sms("tv_1", "edited")], [("tv_1", "Code 1234", AT)]) == []


def test_the_same_text_a_little_later_or_another_text_is_new() -> None:
    later, other = sms("tv_2", "Code 1234", AT + timedelta(seconds=2)), sms("tv_3", "Code 9999")
    assert unseen([later, other], [("push-abc", "Code 1234", AT)]) == [later, other]


def test_one_batch_holding_an_sms_twice_keeps_the_first() -> None:
    first, twin = sms("tv_1", "Code 1234"), sms("push-abc", "Code 1234")
    assert unseen([first, twin], []) == [first]
