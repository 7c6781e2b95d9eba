"""What every resolver of one request may use; built per request, never shared."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.caller import Caller, RequestStats
from gateway.config import LimitSettings
from gateway.errors import ErrorKind, UpstreamError
from gateway.upstreams.clients import Upstreams
from schema.loaders import Loaders


@dataclass(slots=True)
class RequestCredentials:
    """The tokens a request brought: ``X-Auth-Token``, overridden per upstream by
    ``X-Oma-Auth-Token`` / ``X-Cbc-Auth-Token``."""

    oma: str | None = None
    cbc: str | None = None

    @classmethod
    def from_headers(
        cls, token: str | None, oma_token: str | None = None, cbc_token: str | None = None
    ) -> RequestCredentials:
        def clean(value: str | None) -> str | None:
            value = (value or "").strip()
            return value or None

        return cls(oma=clean(oma_token) or clean(token), cbc=clean(cbc_token) or clean(token))


@dataclass(slots=True)
class GatewayContext:
    upstreams: Upstreams
    limits: LimitSettings
    credentials: RequestCredentials
    fresh: bool = False
    stats: RequestStats = field(default_factory=RequestStats)
    operation_name: str | None = None
    error_codes: list[str] = field(default_factory=list)
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
        caller = Caller(token=token, fresh=self.fresh, stats=self.stats)
        self._callers[upstream] = caller
        return caller

    def close(self) -> None:
        """Let go of what the request loaded, at its end. The loaders hold this context
        (through ``caller``), a cycle only the garbage collector would otherwise free,
        and with it every record of the request."""
        self._loaders = None
        self._callers.clear()

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.upstreams, self.caller)
        return self._loaders
