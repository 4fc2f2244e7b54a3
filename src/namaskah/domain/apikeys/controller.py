"""`/v1/api-keys`: create (the key is shown once), list without secrets, revoke."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from namaskah.db.session import service_provider
from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.apikeys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyRead
from namaskah.domain.apikeys.service import ApiKeyService
from namaskah.lib.pagination import Limit, Offset


class ApiKeyController(Controller):
    path = "/v1/api-keys"
    tags = ["api keys"]
    dependencies = {**account_dependencies, "api_keys": service_provider(ApiKeyService)}

    @post("/", status_code=HTTP_201_CREATED, summary="Create a key; its secret is in this answer only")
    async def create(
        self,
        data: JSONBody[ApiKeyCreate],
        principal: NamedDependency[Principal],
        api_keys: NamedDependency[ApiKeyService],
    ) -> ApiKeyCreated:
        principal.require_session()
        api_key, secret = await api_keys.issue(principal.user.id, data.name, data.scopes)
        return ApiKeyCreated(id=api_key.id, name=api_key.name, scopes=api_key.scopes, prefix=api_key.prefix, key=secret)

    @get("/", summary="The caller's live keys, without secrets")
    async def list_keys(
        self,
        principal: NamedDependency[Principal],
        api_keys: NamedDependency[ApiKeyService],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> ApiKeyList:
        principal.require_session()
        rows, total = await api_keys.list_for(principal.user.id, limit=limit, offset=offset)
        items = [
            ApiKeyRead(
                id=row.id,
                name=row.name,
                scopes=row.scopes,
                prefix=row.prefix,
                created_at=row.created_at,
                last_used_at=row.last_used_at,
            )
            for row in rows
        ]
        return ApiKeyList(items=items, total=total)

    @delete("/{api_key_id:uuid}", status_code=HTTP_204_NO_CONTENT, summary="Revoke a key at once")
    async def revoke(
        self,
        api_key_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        api_keys: NamedDependency[ApiKeyService],
    ) -> None:
        principal.require_session()
        await api_keys.revoke(principal.user.id, api_key_id)
