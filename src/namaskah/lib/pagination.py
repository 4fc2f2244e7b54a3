"""The contract's list parameters: `limit` (1-100, default 50) and `offset`, answered as `{items, total}`."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=100)]
Offset = Annotated[int, QueryParameter(name="offset", ge=0)]
DEFAULT_LIMIT = 50
