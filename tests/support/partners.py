"""A partner set up over the real API for end-to-end tests: a customer promoted to a tier with webhooks, an
endpoint pointing at a local receiver, and credits granted by an operator."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from standardwebhooks import Webhook

from tests.e2e.test_dev_walkthrough import sign_in
from tests.support.webhook_receiver import Receiver

# Not production: receivers are plain http on loopback, which these two settings allow.
RECEIVER_SETTINGS = {"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE_HOSTS": "true"}


@dataclass(frozen=True)
class Partner:
    id: str
    headers: dict[str, str]
    endpoint_id: str
    secret: str

    def deliveries(self, client: httpx.Client) -> list[dict]:
        path = f"/v1/webhook-endpoints/{self.endpoint_id}/deliveries"
        response = client.get(path, headers=self.headers)
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def verified(self, receiver: Receiver, index: int = 0) -> dict:
        """The body of the receiver's `index`th request, after the Standard Webhooks signature checks out."""
        request = receiver.requests[index]
        return Webhook(self.secret).verify(request.body, request.headers)  # type: ignore[no-any-return]


def partner(client: httpx.Client, operator: dict[str, str], receiver: Receiver, events: list[str]) -> Partner:
    """A new customer on `pro` with an endpoint for `events` at the receiver."""
    headers = sign_in(client, f"partner-{uuid.uuid4().hex[:8]}@example.com")
    user_id = client.get("/v1/me", headers=headers).json()["id"]
    promoted = client.patch(f"/v1/admin/users/{user_id}", json={"tier": "pro"}, headers=operator)
    assert promoted.status_code == 200, promoted.text
    created = client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url("/namaskah"), "events": events}, headers=headers
    )
    assert created.status_code == 201, created.text
    return Partner(user_id, headers, created.json()["id"], created.json()["secret"])


def grant(client: httpx.Client, operator: dict[str, str], user_id: str, amount: int) -> None:
    granted = client.post(
        f"/v1/admin/users/{user_id}/credits", json={"amount": amount, "reason": "e2e credit"}, headers=operator
    )
    assert granted.status_code == 201, granted.text
