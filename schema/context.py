"""What every resolver of one request may use; built per request, never shared."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.caller import Caller, RequestStats
from gateway.config import LimitSettings, SecuritySettings
from gateway.credentials import PROCESS_KEY, CredentialKey, token_problem
from gateway.errors import ErrorKind, UpstreamError
from gateway.upstreams.clients import Upstreams
from schema.loaders import Loaders


@dataclass(slots=True)
class RequestCredentials:
    """The tokens a request brought: ``X-Auth-Token``, overridden per upstream by
    ``X-Oma-Auth-Token`` / ``X-Cbc-Auth-Token``; and, per upstream, why its token cannot
    be one (too long, characters no token holds), so that none is sent."""

    oma: str | None = None
    cbc: str | None = None
    problems: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_headers(
        cls,
        token: str | None,
        oma_token: str | None = None,
        cbc_token: str | None = None,
        *,
        max_bytes: int = SecuritySettings().max_token_bytes,
    ) -> RequestCredentials:
        def clean(value: str | None) -> str | None:
            value = (value or "").strip()
            return value or None

        credentials = cls(
            oma=clean(oma_token) or clean(token), cbc=clean(cbc_token) or clean(token)
        )
        for upstream, value in (("oma", credentials.oma), ("cbc", credentials.cbc)):
            problem = None if value is None else token_problem(value, max_bytes)
            if problem is not None:
                credentials.problems[upstream] = problem
        return credentials


@dataclass(slots=True)
class GatewayContext:
    upstreams: Upstreams
    limits: LimitSettings
    credentials: RequestCredentials
    fresh: bool = False
    origin: str = ""
    """The client's address, through the trusted proxies."""
    credential_key: CredentialKey = PROCESS_KEY
    stats: RequestStats = field(default_factory=RequestStats)
    operation_name: str | None = None
    error_codes: list[str] = field(default_factory=list)
    incremental_delivery: bool = True
    """Whether the request's transport can carry an answer in parts (@defer, @stream):
    the HTTP view says no for a client accepting neither multipart/mixed nor
    text/event-stream, and for a batch (``schema.delivery``)."""
    estimated_calls: int = 0
    """Upstream calls the operations let through are estimated to make: a batch's
    together, against one budget (``schema.limits.CostLimit``)."""
    _callers: dict[str, Caller] = field(default_factory=dict)
    _loaders: Loaders | None = None

    def caller(self, upstream: str) -> Caller:
        """The caller for one upstream, or UNAUTHENTICATED when the request has no token
        for it (raised before any upstream call; other fields still answer)."""
        caller = self._callers.get(upstream)
        if caller is not None:
            return caller
        token = self.credentials.oma if upstream == "oma" else self.credentials.cbc
        if token is None:
            header = "X-Oma-Auth-Token" if upstream == "oma" else "X-Cbc-Auth-Token"
            raise UpstreamError(
                ErrorKind.UNAUTHENTICATED,
                upstream,
                f"no token for {upstream}: send X-Auth-Token or {header}",
            )
        problem = self.credentials.problems.get(upstream)
        if problem is not None:
            raise UpstreamError(ErrorKind.UNAUTHENTICATED, upstream, f"{problem}: not sent")
        caller = Caller(
            token=token,
            fresh=self.fresh,
            stats=self.stats,
            origin=self.origin,
            key=self.credential_key,
        )
        self._callers[upstream] = caller
        return caller

    def close(self) -> None:
        """Let go of what the request loaded, at its end. The loaders hold this context
        (through ``caller``), a cycle only the garbage collector would otherwise free,
        and with it every record of the request. Batches still loading are stopped."""
        if self._loaders is not None:
            self._loaders.cancel()
        self._loaders = None
        self._callers.clear()

    def vouched_for(self) -> bool:
        """Whether an upstream has answered any credential of this request: an operation
        name from such a caller may have a metric series of its own."""
        key = self.credential_key
        for upstream, token in (("oma", self.credentials.oma), ("cbc", self.credentials.cbc)):
            if token is None or upstream in self.credentials.problems:
                continue
            if self.upstreams.vouched_for(key.fingerprint(token)):
                return True
        return False

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.upstreams, self.caller)
        return self._loaders
