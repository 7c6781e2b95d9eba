"""How the schema is assembled: documents parsed and validated once, not per request."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import schema.build as build_module
from gateway.config import LimitSettings
from schema.build import build_schema


async def test_a_repeated_document_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    validations = 0
    original = build_module.validate

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal validations
        validations += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(build_module, "validate", counting)
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


# Each kind of "Did you mean": (document, variables, what the message says without it,
# the suggestion development adds).
SUGGESTIONS = [
    pytest.param(
        "{ subscriptions { nodez { id } } }",
        None,
        "Cannot query field 'nodez' on type 'SoftwareSubscriptionConnection'.",
        "Did you mean 'nodes'?",
        id="field",
    ),
    pytest.param(
        "{ subscriptions(frist: 1) { totalCount } }",
        None,
        "Unknown argument 'frist' on field 'Query.subscriptions'.",
        "Did you mean 'first'?",
        id="argument",
    ),
    pytest.param(
        "{ subscriptions @skip(if: false, iff: true) { totalCount } }",
        None,
        "Unknown argument 'iff' on directive '@skip'.",
        "Did you mean 'if'?",
        id="directive argument",
    ),
    pytest.param(
        "{ resources(filter: { statuses: [PROVISIONE] }) { totalCount } }",
        None,
        "Value 'PROVISIONE' does not exist in 'ResourceStatus' enum.",
        "Did you mean the enum value 'PROVISIONED'?",
        id="enum value in a literal",
    ),
    pytest.param(
        "query($s: [ResourceStatus!]) { resources(filter: { statuses: $s }) { totalCount } }",
        {"s": ["PROVISIONE"]},
        "Value 'PROVISIONE' does not exist in 'ResourceStatus' enum.",
        "Did you mean the enum value 'PROVISIONED'?",
        id="enum value in a variable",
    ),
    pytest.param(
        "{ resources(filter: { statusse: [] }) { totalCount } }",
        None,
        "not to include unknown field 'statusse'",
        "Did you mean 'statuses'?",
        id="input field in a literal",
    ),
    pytest.param(
        "query($f: ResourceFilter) { resources(filter: $f) { totalCount } }",
        {"f": {"statusse": []}},
        "not to include unknown field 'statusse'",
        "Did you mean 'statuses'?",
        id="input field in a variable",
    ),
    pytest.param(
        "query($f: ResourceFiltr) { resources(filter: $f) { totalCount } }",
        None,
        "Unknown type 'ResourceFiltr'.",
        "Did you mean 'ResourceFilter' or 'ResourceStatus'?",
        id="type of a variable",
    ),
    pytest.param(
        "{ subscriptions { nodes { ... on SoftwareSubscriptio { id } } } }",
        None,
        "Unknown type 'SoftwareSubscriptio'.",
        "Did you mean 'SoftwareSubscription' or 'SoftwareSubscriptionEdge'?",
        id="type condition",
    ),
]


@pytest.mark.parametrize(("document", "variables", "problem", "suggestion"), SUGGESTIONS)
@pytest.mark.parametrize("production", [True, False], ids=["production", "development"])
async def test_only_development_suggests_what_the_client_may_have_meant(
    document: str,
    variables: dict[str, Any] | None,
    problem: str,
    suggestion: str,
    production: bool,
) -> None:
    """A production gateway does not read its schema out to a client guessing names."""
    result = await build_schema(production=production).execute(document, variables)
    (error,) = result.errors or ()
    assert problem in error.message
    assert (suggestion in error.message) is not production
    if production:
        assert "Did you mean" not in error.message
