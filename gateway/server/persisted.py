"""Persisted operations: a request that names its document instead of sending it.

Two ways, as clients send them:

- Automatic persisted queries (Apollo's protocol, POST and GET): the request carries
  ``extensions.persistedQuery = {"version": 1, "sha256Hash": ...}``. Without ``query``, the
  gateway answers with the document it keeps under that hash, or ``PersistedQueryNotFound``
  (``PERSISTED_QUERY_NOT_FOUND``), on which Apollo Client and urql send the request again
  with the document. With ``query``, the hash must be the document's SHA-256
  (``PERSISTED_QUERY_HASH_MISMATCH`` otherwise); the document runs, and once it has run for
  a caller an upstream has vouched for, it is kept (``gateway.cache.pages.DocumentStore``:
  in Redis when configured, bounded either way). Kept per caller: one caller's documents
  are never another's, and nobody learns whether anyone sent a given document.
- Trusted documents (``GATEWAY_PERSISTED_DOCUMENTS``): a manifest written when the client
  was built, in graphql-codegen's format (``{"<id>": "<document>"}``) or Apollo's
  (``persisted-query-manifest.json``). A request names one by ``documentId`` (the
  GraphQL-over-HTTP persisted documents appendix: ``sha256:<hex>``, or the manifest's own
  id) or by the APQ hash. With ``GATEWAY_PERSISTED_DOCUMENTS_ONLY`` nothing else runs.

Every refusal is decided here, before the document is parsed, so before any upstream call.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import GraphQLError, parse, specified_rules
from strawberry.http import GraphQLRequestData

from gateway.cache.pages import DocumentStore, PageCache
from gateway.config import ConfigError, LimitSettings, PersistedSettings
from gateway.server.refusals import (
    INVALID_GRAPHQL_REQUEST,
    PERSISTED_QUERY_HASH_MISMATCH,
    PERSISTED_QUERY_ID_REQUIRED,
    PERSISTED_QUERY_NOT_FOUND,
    PERSISTED_QUERY_NOT_IN_LIST,
    PERSISTED_QUERY_NOT_SUPPORTED,
    Refusal,
)
from schema.build import GatewaySchema, validate_document
from schema.context import GatewayContext
from schema.validation import validation_rules

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_APOLLO_FORMAT = "apollo-persisted-query-manifest"
_SHOWN_ID = 80
"""Characters of a caller's document id quoted back in a refusal."""


@dataclass
class GatewayRequest(GraphQLRequestData):
    """Strawberry's request data, with what the gateway reads beyond it."""

    document_id: str | None = None
    """``documentId``: the GraphQL-over-HTTP name of a persisted document."""
    registration: tuple[str, str] | None = None
    """(store key, document) to keep once the document has run: an APQ request that sent
    the document with its hash."""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """The trusted documents: each under its manifest id and under its own SHA-256."""

    documents: Mapping[str, str]

    def get(self, identifier: str) -> str | None:
        return self.documents.get(identifier)

    def __len__(self) -> int:
        return len(set(self.documents.values()))

    @classmethod
    def load(cls, path: str, schema: GatewaySchema, limits: LimitSettings) -> Manifest:
        """Read and check the manifest at ``path``: every document must parse and validate
        against ``schema`` as a request's would; ``ConfigError`` lists what does not."""
        name = f"GATEWAY_PERSISTED_DOCUMENTS={path!r}"
        try:
            entries = _entries(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{name}: cannot be read: {exc}"]) from None
        except ValueError as exc:
            raise ConfigError([f"{name}: {exc}"]) from None
        problems: list[str] = []
        documents: dict[str, str] = {}
        rules = (*specified_rules, *validation_rules(limits))
        for identifier, document in entries:
            problem = _document_problem(identifier, document, schema, limits, rules)
            if problem is None and documents.get(identifier, document) != document:
                problem = "names two different documents"
            if problem is not None:
                problems.append(f"{name}: document {identifier!r} {problem}")
                continue
            documents[identifier] = document
            documents[sha256_hex(document)] = document
        if problems:
            raise ConfigError(problems)
        return cls(documents)


def _entries(manifest: Any) -> list[tuple[str, str]]:
    """(id, document) of either format, or ValueError saying what is wrong with its shape."""
    if isinstance(manifest, dict) and manifest.get("format") == _APOLLO_FORMAT:
        if manifest.get("version") != 1:
            raise ValueError(f"{_APOLLO_FORMAT} version {manifest.get('version')!r} is not 1")
        operations = manifest.get("operations")
        if not isinstance(operations, list):
            raise ValueError("its `operations` are not a list")
        entries = []
        for index, operation in enumerate(operations):
            if not isinstance(operation, dict) or not all(
                isinstance(operation.get(key), str) for key in ("id", "body")
            ):
                raise ValueError(f"operation {index} has no string `id` and `body`")
            entries.append((operation["id"], operation["body"]))
        return entries
    if isinstance(manifest, dict) and all(
        isinstance(key, str) and isinstance(value, str) for key, value in manifest.items()
    ):
        return list(manifest.items())
    raise ValueError(
        "is neither a map of id to document (graphql-codegen's persisted-documents.json) "
        f"nor an {_APOLLO_FORMAT}"
    )


def _document_problem(
    identifier: str,
    document: str,
    schema: GatewaySchema,
    limits: LimitSettings,
    rules: tuple[Any, ...],
) -> str | None:
    hexadecimal = identifier.removeprefix("sha256:")
    if SHA256_HEX.fullmatch(hexadecimal) and hexadecimal != sha256_hex(document):
        return "is named by a SHA-256 that is not its own"
    try:
        ast = parse(document, max_tokens=limits.max_tokens)
    except GraphQLError as error:
        return f"does not parse: {error.message}"
    errors = validate_document(schema._schema, ast, rules, False)
    if errors:
        return f"does not validate: {errors[0].message}"
    return None


class PersistedOperations:
    """Finds the document a request names, and keeps the ones APQ clients send."""

    def __init__(
        self, settings: PersistedSettings, manifest: Manifest | None, store: DocumentStore
    ) -> None:
        self.manifest = manifest
        self.store = store
        self.only = settings.documents_only
        self.apq = settings.apq_enabled and not self.only

    @classmethod
    def from_settings(
        cls,
        settings: PersistedSettings,
        schema: GatewaySchema,
        limits: LimitSettings,
        cache: PageCache,
    ) -> PersistedOperations:
        manifest = None
        if settings.documents_path is not None:
            manifest = Manifest.load(settings.documents_path, schema, limits)
        store = cache.documents(settings.apq_max_entries, settings.apq_max_document_bytes)
        return cls(settings, manifest, store)

    def involved(self, request: GatewayRequest) -> bool:
        """Whether this request is one for ``resolve`` (most are not: nothing to do)."""
        return (
            self.only
            or request.document_id is not None
            or (request.extensions is not None and "persistedQuery" in request.extensions)
        )

    async def resolve(self, request: GatewayRequest, context: GatewayContext) -> GatewayRequest:
        """The request with the document it names as its ``query``; a ``Refusal`` when the
        gateway will not run it."""
        if request.document_id is not None:
            return await self._by_document_id(request, context)
        extensions = request.extensions or {}
        if "persistedQuery" in extensions:
            return await self._by_apq(request, extensions["persistedQuery"], context)
        # Only persisted documents: a document sent whole runs only when it is one of them.
        if request.query is not None and self._listed(sha256_hex(request.query)) is not None:
            return request
        raise Refusal(
            400,
            PERSISTED_QUERY_ID_REQUIRED,
            "Only persisted documents run here: name one by `documentId` "
            "(or the `persistedQuery` extension)",
        )

    async def _by_document_id(
        self, request: GatewayRequest, context: GatewayContext
    ) -> GatewayRequest:
        document_id = request.document_id
        assert document_id is not None
        if request.query is not None or "persistedQuery" in (request.extensions or {}):
            raise Refusal(
                400,
                INVALID_GRAPHQL_REQUEST,
                "A request names its document once: `documentId`, `query` or the "
                "`persistedQuery` extension",
            )
        prefix, colon, payload = document_id.partition(":")
        if colon and prefix == "sha256":
            if not SHA256_HEX.fullmatch(payload):
                raise Refusal(
                    400,
                    INVALID_GRAPHQL_REQUEST,
                    "A `documentId` of prefix sha256: is 64 lower-case hexadecimal digits",
                )
            key = payload
        elif colon and not prefix.startswith("x-"):
            raise Refusal(
                400,
                INVALID_GRAPHQL_REQUEST,
                f"Unsupported `documentId` prefix {_shown(prefix)!r}: use sha256:",
            )
        else:
            key = document_id
        document = self._listed(key)
        if document is None and self.apq and SHA256_HEX.fullmatch(key):
            document = await self.store.get(_store_key(key, context))
        if document is None:
            code = PERSISTED_QUERY_NOT_IN_LIST if self.only else PERSISTED_QUERY_NOT_FOUND
            raise Refusal(404, code, f"Persisted document {_shown(document_id)!r} not found")
        return _with_query(request, document)

    async def _by_apq(
        self, request: GatewayRequest, extension: object, context: GatewayContext
    ) -> GatewayRequest:
        if not isinstance(extension, dict) or extension.get("version") != 1:
            raise Refusal(
                400,
                INVALID_GRAPHQL_REQUEST,
                "Unsupported persisted query version: `persistedQuery` is "
                '{"version": 1, "sha256Hash": "<64 hexadecimal digits>"}',
            )
        digest = extension.get("sha256Hash")
        if not isinstance(digest, str) or not SHA256_HEX.fullmatch(digest.lower()):
            raise Refusal(
                400,
                INVALID_GRAPHQL_REQUEST,
                "`persistedQuery.sha256Hash` is 64 hexadecimal digits",
            )
        digest = digest.lower()
        if request.query is not None and sha256_hex(request.query) != digest:
            # Apollo Router's answer: the client's hash function or document is wrong.
            raise Refusal(400, PERSISTED_QUERY_HASH_MISMATCH, "provided sha does not match query")
        listed = self._listed(digest)
        if listed is not None:
            return request if request.query is not None else _with_query(request, listed)
        if self.only:
            raise Refusal(
                404,
                PERSISTED_QUERY_NOT_IN_LIST,
                f"Persisted query {digest!r} is not in the list of persisted documents",
            )
        if not self.apq:
            # Apollo Client and urql then send every request whole, without the hash.
            raise Refusal(400, PERSISTED_QUERY_NOT_SUPPORTED, "PersistedQueryNotSupported")
        key = _store_key(digest, context)
        if request.query is not None:
            request.registration = (key, request.query)
            return request
        document = await self.store.get(key)
        if document is None:
            # The message is the protocol's: Apollo Client and urql match it exactly.
            raise Refusal(404, PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound")
        return _with_query(request, document)

    def _listed(self, identifier: str) -> str | None:
        return self.manifest.get(identifier) if self.manifest is not None else None

    async def register(self, request: GatewayRequest, context: GatewayContext) -> None:
        """Keep the document of an APQ request that has run, when an upstream has answered
        its caller: a caller nobody vouched for (an invented token) cannot fill the store."""
        if request.registration is None or not context.vouched_for():
            return
        key, document = request.registration
        await self.store.put(key, document)


def _store_key(digest: str, context: GatewayContext) -> str:
    """The hash, and the caller: the fingerprints of the tokens the request carries."""
    credentials = context.credentials
    fingerprints = [
        context.credential_key.fingerprint(token)
        if token is not None and upstream not in credentials.problems
        else "-"
        for upstream, token in (("oma", credentials.oma), ("cbc", credentials.cbc))
    ]
    return f"{digest}:{':'.join(fingerprints)}"


def _with_query(request: GatewayRequest, document: str) -> GatewayRequest:
    request.query = document
    return request


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_ID else text[:_SHOWN_ID] + "..."
