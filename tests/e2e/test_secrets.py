"""Walk every credential flow against a real server and check no secret reaches a log line or an error body."""

from __future__ import annotations

import time

import pyotp

from tests.support.processes import Server

PASSWORD = "violet-harbour-lantern-7"


def test_credential_flows_leave_no_secret_behind(server: Server) -> None:
    secrets: list[str] = [PASSWORD]
    bodies: list[str] = []
    with server.client() as client:

        def call(method: str, path: str, **kwargs: object) -> dict:
            response = client.request(method, path, **kwargs)
            bodies.append(response.text)
            return response.json() if response.content else {}

        call("POST", "/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
        call("POST", "/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})  # 409
        call("POST", "/v1/auth/register", json={"email": "eve@example.com", "password": "qwertyuiop"})  # 422
        call("POST", "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD + "x"})  # 401
        tokens = call("POST", "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
        secrets += [tokens["access_token"], tokens["refresh_token"]]
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

        rotated = call("POST", "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        secrets += [rotated["access_token"], rotated["refresh_token"]]
        call("POST", "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})  # reuse: 401

        bearer = {"Authorization": f"Bearer {rotated['access_token']}"}
        setup = call("POST", "/v1/me/2fa/setup", headers=bearer)
        totp = pyotp.TOTP(setup["secret"])
        secrets.append(setup["secret"])
        codes = call("POST", "/v1/me/2fa/enable", json={"code": totp.now()}, headers=bearer)["recovery_codes"]
        secrets += codes
        call("POST", "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})  # totp_required
        call("POST", "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "totp_code": codes[0]})

        key = call("POST", "/v1/api-keys", json={"name": "shop", "scopes": ["wallet:read"]}, headers=bearer)["key"]
        secrets.append(key)
        call("GET", "/v1/me", headers={"X-API-Key": key})
        call("GET", "/v1/me", headers={"X-API-Key": key[:-3] + "xyz"})  # 401
        call("POST", "/v1/api-keys", json={"name": "x", "scopes": ["wallet:read"]}, headers={"X-API-Key": key})
        call("POST", "/v1/auth/logout", json={"refresh_token": rotated["refresh_token"]})
        time.sleep(0.3)  # let the access log's batched flush happen before we stop

    server.process.stop()
    output = server.process.output()
    assert '"event":"request"' in output  # the flows were logged, so the check below means something
    # Secrets we handed out legitimately appear once, in the answer that created them; never in errors or logs.
    error_bodies = [body for body in bodies if '"code"' in body]
    for secret in secrets:
        assert secret not in output, f"a secret ({secret[:6]}...) reached the logs"
        for body in error_bodies:
            assert secret not in body, f"a secret ({secret[:6]}...) reached an error body"
