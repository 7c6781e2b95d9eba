"""The simulator's data: one deterministic tenant per token, indexed for cheap answers.

A tenant's records are generated from ``(seed, token)``, so the same token sees
the same data in every run and every replica. Every id carries the tenant's
``tag`` (eight digits of a hash of seed and token), so a test can tell whose
data a record is. The seed pages' own example records are part of every tenant,
quirks included. Times are coherent with the config's ``today`` (the day the
simulator starts, by default): the data ends then, what expired before it is expired,
what was renewed is historical. The same seed, token and day give the same data; on
another day it is the same data moved by the days between (the seed examples, dated
as their pages date them, stay where they are).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, TypeVar

Record = dict[str, Any]
T = TypeVar("T")

SEED_ORDER_ID: Final = "251679538126441114"

# The OMA page's example record, field for field (no status, remark null, times as numbers).
SEED_SUBSCRIPTION: Final[Record] = {
    "orderId": SEED_ORDER_ID,
    "opType": "newInstance",
    "remark": None,
    "skuName": "telemarketing agent",
    "modifyTime": 1679558854000,
    "orderAmount": "36000",
    "procutName": "monthly",
    "vdnId": "131",
    "customerId": "20220727032236821699",
    "company": "ttttttttttttt",
    "id": "1638814724192780290",
    "manualStatus": "0",
    "cecTenantId": "202303232614",
    "amount": "1",
    "periodNumber": "2",
    "productId": "0GbV000000wG80TFeSlU",
    "autoStatus": "2",
    "customerName": "zhangsan",
    "cecExpireTime": 1684829253000,
    "cecTenantName": "Tenant07323220",
    "createSource": "GTS",
    "periodType": "month",
    "expireTime": 1684722289000,
    "createTime": 1679558853000,
    "skuCode": "d52b28fa-e0a7-a8f7-8356-0f0aea54b862",
}

# The CBC page's example record, field for field: a primary resource that names a
# parent, and still "provisioned" long after its expiry. It belongs to the seed order.
SEED_RESOURCE: Final[Record] = {
    "id": "01154-54600027-0",
    "resource_id": "0A063A11905F42BC8548E65D0089A905",
    "resource_name": "0A063A11905F42BC8548E65D0089A905name",
    "region_code": "cn-south-1",
    "service_type_code": "hws.service.type.ebs",
    "resource_type_code": "hws.resource.type.volume",
    "resource_spec_code": "SSD",
    "project_id": "1dd89a5fe99e4cca80edca61e737477a",
    "product_id": "2fd338aca5ae4a01aac81deaa900e441",
    "parent_resource_id": "9ad02e1ad3394d1bb3da48890fbc4c06",
    "is_main_resource": 1,
    "status": 2,
    "effective_time": "2020-05-03T09:11:10Z",
    "expire_time": "2020-06-03T09:11:10Z",
    "expire_policy": 0,
}

VISIBLE_STATUSES: Final = frozenset((2, 4, 5))
"""CBC resource statuses a customer sees; 3 (closed) is "not visible to customers"."""

_DAY_MS: Final = 86_400_000
_HISTORY_MS: Final = 882 * _DAY_MS
"""How far back the first subscriptions were created: about two years and five months."""
_CBC_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
_OPTIONAL_FIELDS: Final = ("cecFeatureType", "trialFlag", "retryTimes", "status", "manualStatus")
_TIME_FIELDS: Final = ("modifyTime", "createTime", "expireTime", "cecExpireTime")
_REGIONS: Final = (
    "cn-north-4",
    "cn-south-1",
    "cn-east-3",
    "ap-southeast-1",
    "ap-southeast-3",
    "af-south-1",
)


class _Sku(NamedTuple):
    name: str
    code: str
    monthly_price: int


_SKUS: Final = (
    _Sku("telemarketing agent", "d52b28fa-e0a7-a8f7-8356-0f0aea54b862", 18_000),
    _Sku("intelligent IVR", "5c1e0f7a-93b2-4d0e-a1f3-7e2c8b9d6a41", 9_000),
    _Sku("quality inspection seat", "a7f3c2d1-0b4e-4f6a-9c8d-2e1b3a5f7c90", 6_000),
    _Sku("outbound robot", "3e9d7b5c-1a2f-4c8e-b6d4-9f0a2c4e6b81", 12_000),
    _Sku("customer service workbench", "f1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", 3_000),
)


class _Kind(NamedTuple):
    service: str
    resource_type: str
    specs: tuple[str, ...]
    name_prefix: str


class _Product(NamedTuple):
    primary: _Kind
    attached: _Kind | None
    max_attached: int


# What the CBC page describes: an ECS vm carries EVS volumes; a shared bandwidth
# carries EIPs; an exclusive bandwidth is attached to its EIP.
_PRODUCTS: Final = (
    _Product(
        _Kind(
            "hws.service.type.ec2",
            "hws.resource.type.vm",
            ("s6.large.2.linux", "c7.xlarge.2.linux", "s6.xlarge.2.win"),
            "ecs",
        ),
        _Kind("hws.service.type.ebs", "hws.resource.type.volume", ("SSD", "SAS", "GPSSD"), "evs"),
        3,
    ),
    _Product(
        _Kind("hws.service.type.vpc", "hws.resource.type.bandwidth", ("19_share",), "bandwidth"),
        _Kind("hws.service.type.vpc", "hws.resource.type.ip", ("5_bgp", "5_sbgp"), "eip"),
        3,
    ),
    _Product(
        _Kind("hws.service.type.vpc", "hws.resource.type.ip", ("5_bgp",), "eip"),
        _Kind("hws.service.type.vpc", "hws.resource.type.bandwidth", ("19_bgp",), "bandwidth"),
        1,
    ),
    _Product(
        _Kind(
            "hws.service.type.rds",
            "hws.resource.type.rds.vm",
            ("rds.mysql.c6.large.2", "rds.pg.c6.xlarge.4"),
            "rds",
        ),
        _Kind("hws.service.type.rds", "hws.resource.type.rds.volume", ("CLOUDSSD",), "rds-disk"),
        1,
    ),
    _Product(
        _Kind("hws.service.type.dcs", "hws.resource.type.dcs", ("redis.ha.xu1.large.r2.2",), "dcs"),
        None,
        0,
    ),
)
# Weighted: ECS most, then shared bandwidths and RDS.
_PRODUCT_POOL: Final = tuple(
    product
    for product, weight in zip(_PRODUCTS, (4, 2, 1, 2, 1), strict=True)
    for _ in range(weight)
)
_PRIMARIES_PER_ORDER: Final = (0, 1, 1, 1, 1, 2, 2, 3)
_LIVE_STATUSES: Final = (2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 4, 3)
_ENDED_STATUSES: Final = (5, 5, 5, 5, 5, 5, 4, 3)


def utc_today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    seed: int = 7
    subscriptions: int = 300
    """Generated subscriptions per tenant; the seed example comes on top."""
    max_tenants: int = 512
    """Tenants kept generated (least recently used dropped, regenerated when asked again)."""
    max_calls: int = 10_000
    """Calls kept in the call log."""
    today: datetime.date = field(default_factory=utc_today)
    """The day the data ends (UTC; the data is generated up to its start): by default the
    day the config is made, so that queries about the last month find data."""

    def __post_init__(self) -> None:
        if self.subscriptions < 0 or self.max_tenants < 1 or self.max_calls < 1:
            raise ValueError("subscriptions must be >= 0, max_tenants and max_calls >= 1")

    @property
    def now_ms(self) -> int:
        """The start of ``today``, in epoch milliseconds: what is "now" in the data."""
        return (self.today - datetime.date(1970, 1, 1)).days * _DAY_MS


@dataclass(frozen=True, slots=True)
class SubscriptionQuery:
    """A validated OMA request: one page of the modifyTime window, inclusive both ends."""

    limit: int
    offset: int
    start_ms: int | None = None
    end_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ResourceQuery:
    """A validated CBC request; times are ``yyyy-MM-ddTHH:mm:ssZ`` strings."""

    resource_ids: tuple[str, ...] = ()
    order_id: str | None = None
    only_main_resource: bool = False
    statuses: frozenset[int] = VISIBLE_STATUSES
    offset: int = 0
    limit: int = 10
    expire_time_begin: str | None = None
    expire_time_end: str | None = None


@dataclass(slots=True)
class Tenant:
    """One token's data, as the APIs serve it, and the indexes that answer queries.

    ``subscriptions`` is in OMA's order (createTime descending, then id).
    ``resources`` is in CBC's order (orders as their newest subscription comes,
    each primary followed by its attached ones) and includes closed (status 3)
    resources, which the API never serves; ``visible_resources`` is what it serves.
    Treat the records as read-only: answers are served from these very dicts.
    """

    tag: str
    subscriptions: list[Record]
    resources: list[Record]
    order_of: dict[str, str]
    """resource_id -> order_id (CBC's records do not carry their order)."""
    modify_times: list[int] = field(init=False)
    by_id: dict[str, Record] = field(init=False)
    by_order: dict[str, list[Record]] = field(init=False)
    children: dict[str, list[Record]] = field(init=False)
    """primary resource_id -> its attached resources."""
    position: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.modify_times = [int(s["modifyTime"]) for s in self.subscriptions]
        self.by_id = {}
        self.by_order = {}
        self.children = {}
        self.position = {}
        for index, resource in enumerate(self.resources):
            resource_id = resource["resource_id"]
            self.by_id[resource_id] = resource
            self.position[resource_id] = index
            self.by_order.setdefault(self.order_of[resource_id], []).append(resource)
            if resource["is_main_resource"] == 0:
                self.children.setdefault(resource["parent_resource_id"], []).append(resource)

    @property
    def visible_resources(self) -> list[Record]:
        """What CBC serves to a query without filters, in its order."""
        return [r for r in self.resources if r["status"] in VISIBLE_STATUSES]

    def find_subscriptions(self, query: SubscriptionQuery) -> list[Record]:
        """Every subscription in the query's window, in OMA's order (paging is the caller's)."""
        start, end = query.start_ms, query.end_ms
        if start is None and end is None:
            return self.subscriptions
        low = start if start is not None else -(2**63)
        high = end if end is not None else 2**63
        return [
            record
            for record, modified in zip(self.subscriptions, self.modify_times, strict=True)
            if low <= modified <= high
        ]

    def find_resources(self, query: ResourceQuery) -> list[Record]:
        """Every resource the query matches, in CBC's order (paging is the caller's)."""
        if query.resource_ids:
            chosen: dict[str, Record] = {}
            for resource_id in query.resource_ids:
                named = self.by_id.get(resource_id)
                if named is None:
                    continue
                chosen[resource_id] = named
                # A named attached resource is served itself even with only_main_resource 1,
                # as the page says; with 0 the named primaries bring their attached ones.
                if not query.only_main_resource:
                    for child in self.children.get(resource_id, ()):
                        chosen[child["resource_id"]] = child
            candidates = sorted(chosen.values(), key=lambda r: self.position[r["resource_id"]])
            if query.order_id is not None:
                candidates = [
                    r for r in candidates if self.order_of[r["resource_id"]] == query.order_id
                ]
        else:
            if query.order_id is not None:
                candidates = self.by_order.get(query.order_id, [])
            else:
                candidates = self.resources
            if query.only_main_resource:
                candidates = [r for r in candidates if r["is_main_resource"] == 1]
        statuses = query.statuses & VISIBLE_STATUSES
        begin, end = query.expire_time_begin, query.expire_time_end
        # One fixed-width UTC format: string order is time order.
        return [
            r
            for r in candidates
            if r["status"] in statuses
            and (begin is None or r["expire_time"] >= begin)
            and (end is None or r["expire_time"] <= end)
        ]


class _Draw:
    """Draws from one seeded stream; ``random.choice`` and ``randrange`` cost several times more."""

    __slots__ = ("_random", "bits")

    def __init__(self, seed: bytes) -> None:
        generator = random.Random(seed)
        self._random = generator.random
        self.bits = generator.getrandbits

    def chance(self, probability: float) -> bool:
        return self._random() < probability

    def below(self, bound: int) -> int:
        return int(self._random() * bound)

    def between(self, low: int, high: int) -> int:
        """Inclusive both ends."""
        return low + int(self._random() * (high - low + 1))

    def seconds(self, low_ms: int, high_ms: int) -> int:
        """Whole seconds (as milliseconds) in ``[low_ms, high_ms)``."""
        return low_ms + int(self._random() * ((high_ms - low_ms) // 1000)) * 1000

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self._random() * len(items))]


def tenant_digest(seed: int, token: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{token}".encode()).digest()


def tenant_tag(seed: int, token: str) -> str:
    """Eight digits every id of the token's tenant carries."""
    return f"{int.from_bytes(tenant_digest(seed, token)[:8], 'big') % 10**8:08d}"


def build_tenant(config: SimulatorConfig, token: str) -> Tenant:
    digest = tenant_digest(config.seed, token)
    tag = tenant_tag(config.seed, token)
    rng = _Draw(digest)
    now_ms = config.now_ms
    subscriptions, order_spans = _subscriptions(rng, tag, config.subscriptions, now_ms)
    subscriptions.append(dict(SEED_SUBSCRIPTION))
    subscriptions.sort(key=lambda s: (-int(s["createTime"]), s["id"]))
    resources: list[Record] = []
    order_of: dict[str, str] = {}
    listed: set[str] = set()
    factory = _ResourceFactory(rng, tag, now_ms)
    for subscription in subscriptions:
        order_id = subscription["orderId"]
        if order_id in listed:
            continue  # a renewed order's resources come with its newest subscription
        listed.add(order_id)
        if order_id == SEED_ORDER_ID:
            order_resources = [dict(SEED_RESOURCE)]
        else:
            order_resources = factory.order(*order_spans[order_id])
        for resource in order_resources:
            order_of[resource["resource_id"]] = order_id
        resources.extend(order_resources)
    return Tenant(tag=tag, subscriptions=subscriptions, resources=resources, order_of=order_of)


class _Plan(NamedTuple):
    """What a subscription is before its details are drawn."""

    order_id: str
    created_ms: int
    sku: _Sku
    monthly: bool
    renews: bool


def _subscriptions(
    rng: _Draw, tag: str, count: int, now_ms: int
) -> tuple[list[Record], dict[str, tuple[int, int]]]:
    """The generated subscriptions, and each order's span: first creation, last expiry."""
    customer = {
        "vdnId": str(100 + int(tag) % 900),
        "customerId": f"2022{tag}00000000",
        "company": f"Company {tag[:4]}",
        "cecTenantId": f"2023{tag}",
        "cecTenantName": f"Tenant{tag}",
        "customerName": f"customer-{tag[4:]}",
    }
    records: list[Record] = []
    spans: dict[str, tuple[int, int]] = {}
    renewable: list[Record] = []  # subscriptions whose order has one subscription so far
    for n in range(count):
        plan = _new_order(rng, tag, n, now_ms)
        if renewable and rng.chance(0.05):
            index = rng.below(len(renewable))
            renewal = _renewal(rng, renewable[index], now_ms)
            if renewal is not None:
                plan = renewal
                previous = renewable.pop(index)
                if "status" in previous:
                    previous["status"] = "9"  # the renewed period is history
        record = _subscription(rng, tag, n, customer, plan, now_ms)
        first, _ = spans.get(plan.order_id, (plan.created_ms, 0))
        spans[plan.order_id] = (first, int(record["expireTime"]))
        if not plan.renews:
            renewable.append(record)
        records.append(record)
    return records, spans


def _new_order(rng: _Draw, tag: str, n: int, now_ms: int) -> _Plan:
    created = rng.seconds(now_ms - _HISTORY_MS, now_ms)
    return _Plan(f"25{tag}{n:08d}", created, rng.pick(_SKUS), rng.chance(0.7), False)


def _renewal(rng: _Draw, previous: Record, now_ms: int) -> _Plan | None:
    """A second subscription of the same order, shortly before the first one ends."""
    created = int(previous["expireTime"]) - rng.seconds(0, 7 * _DAY_MS)
    if created >= now_ms:
        return None  # not yet due
    sku = next(s for s in _SKUS if s.name == previous["skuName"])
    return _Plan(previous["orderId"], created, sku, previous["periodType"] == "month", True)


def _subscription(
    rng: _Draw, tag: str, n: int, customer: Record, plan: _Plan, now_ms: int
) -> Record:
    created, sku, monthly = plan.created_ms, plan.sku, plan.monthly
    modified = min(created + rng.seconds(0, 30 * _DAY_MS), now_ms - 1000)
    if modified == SEED_SUBSCRIPTION["modifyTime"]:
        modified += 1000  # the seed example stays alone in its documented window
    periods = rng.between(1, 12) if monthly else rng.between(1, 3)
    expires = created + periods * (30 if monthly else 365) * _DAY_MS
    amount = rng.between(1, 20)
    record: Record = {
        "orderId": plan.order_id,
        "opType": "renew" if plan.renews else rng.pick(("newInstance", "newInstance", "modify")),
        "remark": rng.pick((None, None, "", "auto-provisioned", "renewed by customer")),
        "skuName": sku.name,
        "modifyTime": modified,
        "orderAmount": str(sku.monthly_price * amount * periods * (1 if monthly else 10)),
        "procutName": "monthly" if monthly else "yearly",
        "id": f"16{tag}{n:09d}",
        "manualStatus": rng.pick(("0", "0", "1")),
        "amount": str(amount),
        "periodNumber": str(periods),
        "productId": f"0GbV{sku.code[:8]}{'M' if monthly else 'Y'}{tag[:7]}",
        "autoStatus": rng.pick(("0", "1", "2", "2")),
        "cecExpireTime": expires + rng.seconds(0, 5 * _DAY_MS),
        "createSource": rng.pick(("GTS", "GTS", "Portal", "API")),
        "periodType": "month" if monthly else "year",
        "expireTime": expires,
        "createTime": created,
        "skuCode": sku.code,
        "cecFeatureType": rng.pick(("1", "2", "3")),
        "trialFlag": rng.pick((0, 0, 0, 1)),
        "retryTimes": str(rng.between(0, 3)),
        "status": "2" if expires > now_ms else "8",
        **customer,
    }
    # Fields the page documents and its own example leaves out.
    for name in _OPTIONAL_FIELDS:
        if rng.chance(0.12):
            del record[name]
    # The example sends times as numbers, the table says String: serve both.
    if rng.chance(0.1):
        for name in _TIME_FIELDS:
            record[name] = str(record[name])
    return record


class _ResourceFactory:
    """The CBC resources of one tenant's orders, numbered in the tenant's own id space."""

    def __init__(self, rng: _Draw, tag: str, now_ms: int) -> None:
        self._rng = rng
        self._tag = tag
        self._now_ms = now_ms
        self._count = 0
        # A project id is per region; product ids are per offering, not per resource.
        self._projects = {
            region: hashlib.sha256(f"{tag}:{region}".encode()).hexdigest()[:32]
            for region in _REGIONS
        }

    def order(self, created_ms: int, expires_ms: int) -> list[Record]:
        rng = self._rng
        live = expires_ms > self._now_ms
        times = (_cbc_time(created_ms), _cbc_time(expires_ms))
        region = rng.pick(_REGIONS)
        resources: list[Record] = []
        for _ in range(rng.pick(_PRIMARIES_PER_ORDER)):
            product = rng.pick(_PRODUCT_POOL)
            status = rng.pick(_LIVE_STATUSES if live else _ENDED_STATUSES)
            policy = rng.below(6)
            primary = self._resource(product.primary, region, times, None, status, policy)
            resources.append(primary)
            if product.attached is None:
                continue
            for _ in range(rng.between(0, product.max_attached)):
                if rng.chance(0.15):  # e.g. a volume detached and closed on its own
                    status = rng.pick((2, 3, 4, 5))
                parent = primary["resource_id"]
                resources.append(
                    self._resource(product.attached, region, times, parent, status, policy)
                )
        return resources

    def _resource(
        self,
        kind: _Kind,
        region: str,
        times: tuple[str, str],
        parent: str | None,
        status: int,
        policy: int,
    ) -> Record:
        self._count += 1
        resource_id = f"{self._tag}{self._rng.bits(96):024x}"
        spec = self._rng.pick(kind.specs)
        return {
            "id": f"{self._tag[:5]}-{self._count:08d}-0",
            "resource_id": resource_id,
            "resource_name": f"{kind.name_prefix}-{resource_id[8:16]}",
            "region_code": region,
            "service_type_code": kind.service,
            "resource_type_code": kind.resource_type,
            "resource_spec_code": spec,
            "project_id": self._projects[region],
            "product_id": _product_id(kind.resource_type, spec),
            "parent_resource_id": parent,
            "is_main_resource": 0 if parent else 1,
            "status": status,
            "effective_time": times[0],
            "expire_time": times[1],
            "expire_policy": policy,
        }


@functools.cache
def _product_id(resource_type: str, spec: str) -> str:
    return hashlib.sha256(f"{resource_type}:{spec}".encode()).hexdigest()[:32]


def _cbc_time(epoch_ms: int) -> str:
    return time.strftime(_CBC_TIME_FORMAT, time.gmtime(epoch_ms // 1000))


class Tenants:
    """Generated tenants, the most recently used kept."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._tenants: OrderedDict[str, Tenant] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tenants)

    def get(self, token: str) -> Tenant:
        tenant = self._tenants.get(token)
        if tenant is None:
            tenant = self._tenants[token] = build_tenant(self.config, token)
            if len(self._tenants) > self.config.max_tenants:
                self._tenants.popitem(last=False)
        else:
            self._tenants.move_to_end(token)
        return tenant
