"""How the schema is assembled: documents parsed and validated once, not per request."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import strawberry.schema.schema as strawberry_schema

from gateway.config import LimitSettings
from schema.build import build_schema


async def test_a_repeated_document_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    validations = 0
    original = strawberry_schema.validate

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal validations
        validations += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counting)
    schema = build_schema()
    # A document no other test sends: the caches are shared by the whole process.
    document = f"{{ t{uuid.uuid4().hex}: __typename }}"
    for _ in range(3):
        result = await schema.execute(document)
        assert result.errors is None
    assert validations == 1


async def test_the_depth_limit_still_holds_with_cached_validation() -> None:
    schema = build_schema(LimitSettings(max_depth=2))
    deep = "{ subscriptions { nodes { resources { parent { id } } } } }"
    for _ in range(2):
        result = await schema.execute(deep)
        assert result.errors
        assert "exceeds maximum operation depth" in result.errors[0].message
