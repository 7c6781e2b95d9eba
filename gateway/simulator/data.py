"""The simulator's data: one deterministic tenant per token.

A tenant's records are generated from ``(seed, token)``, so the same token sees
the same data in every run and every replica, and a record's ids carry a tag of
the token that owns it (tests can tell whose data a record is). The seed pages'
own example records are part of every tenant, quirks included.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.times import format_cbc_time

SEED_SUBSCRIPTION: dict[str, Any] = {
    "orderId": "251679538126441114",
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

SEED_RESOURCE: dict[str, Any] = {
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

_REGIONS = (
    "cn-north-4",
    "cn-south-1",
    "cn-east-3",
    "ap-southeast-1",
    "ap-southeast-3",
    "af-south-1",
)
_SKUS = (
    ("telemarketing agent", "agent"),
    ("intelligent IVR", "ivr"),
    ("quality inspection seat", "qi"),
    ("outbound robot", "robot"),
    ("customer service workbench", "workbench"),
)
# (service type, primary resource type, spec, attached resource type, attached spec)
_PRODUCTS = (
    (
        "hws.service.type.ec2",
        "hws.resource.type.vm",
        "s6.large.2.linux",
        "hws.resource.type.volume",
        "SSD",
    ),
    (
        "hws.service.type.vpc",
        "hws.resource.type.bandwidth",
        "19_bgp",
        "hws.resource.type.ip",
        "5_bgp",
    ),
    (
        "hws.service.type.rds",
        "hws.resource.type.rds.vm",
        "rds.mysql.c6.large.2",
        "hws.resource.type.volume",
        "ULTRAHIGH",
    ),
    ("hws.service.type.dcs", "hws.resource.type.dcs", "redis.ha.xu1.large.r2.2", None, None),
)
_RESOURCE_STATUSES = (2, 2, 2, 2, 2, 2, 2, 4, 4, 5, 5, 5, 3)  # 3 (closed) is never served
_EPOCH_2022 = 1640995200000
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    seed: int = 7
    subscriptions: int = 300
    """Subscriptions per tenant (the seed example comes on top)."""
    max_tenants: int = 512
    """Tenants kept generated; older ones are generated again when asked."""


@dataclass(slots=True)
class Tenant:
    tag: str
    subscriptions: list[dict[str, Any]]
    """In the order OMA returns them."""
    resources: list[dict[str, Any]]
    """Every resource, closed ones included, in the order CBC returns them."""
    order_of: dict[str, str] = field(default_factory=dict)
    """resource_id -> order_id (CBC's records do not carry their order)."""
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_order: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    position: dict[str, int] = field(default_factory=dict)

    def index(self) -> None:
        for position, resource in enumerate(self.resources):
            rid = resource["resource_id"]
            self.by_id[rid] = resource
            self.position[rid] = position
            self.by_order.setdefault(self.order_of[rid], []).append(resource)


def tenant_tag(seed: int, token: str) -> str:
    return hashlib.sha256(f"{seed}:{token}".encode()).hexdigest()[:8]


def build_tenant(config: SimulatorConfig, token: str) -> Tenant:
    tag = tenant_tag(config.seed, token)
    rng = random.Random(f"{config.seed}:{tag}")
    tag_number = int(tag, 16) % 10**8
    project_id = f"{rng.getrandbits(128):032x}"
    subscriptions: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []
    order_of: dict[str, str] = {}
    orders: list[str] = []
    for n in range(config.subscriptions):
        if orders and rng.random() < 0.05:
            order_id = rng.choice(orders)  # a renewal: a second subscription of one order
        else:
            order_id = f"25{tag_number:08d}{n:08d}"
            orders.append(order_id)
            _add_order_resources(rng, tag, project_id, order_id, resources, order_of)
        subscriptions.append(_subscription(rng, tag_number, n, order_id))
    subscriptions.append(dict(SEED_SUBSCRIPTION))
    resources.append(dict(SEED_RESOURCE))
    order_of[SEED_RESOURCE["resource_id"]] = SEED_SUBSCRIPTION["orderId"]
    subscriptions.sort(key=lambda s: (-int(s["createTime"]), s["id"]))
    tenant = Tenant(tag=tag, subscriptions=subscriptions, resources=resources, order_of=order_of)
    tenant.index()
    return tenant


def _subscription(rng: random.Random, tag_number: int, n: int, order_id: str) -> dict[str, Any]:
    created = _EPOCH_2022 + rng.randrange(0, 1000 * _DAY_MS, 1000)
    modified = created + rng.randrange(0, 30 * _DAY_MS, 1000)
    if abs(modified - SEED_SUBSCRIPTION["modifyTime"]) < 5000:
        modified += 10_000  # keep the seed example alone in its documented window
    monthly = rng.random() < 0.7
    periods = rng.randint(1, 12 if monthly else 3)
    expires = created + periods * (30 if monthly else 365) * _DAY_MS
    sku_name, sku_short = rng.choice(_SKUS)
    record: dict[str, Any] = {
        "orderId": order_id,
        "opType": rng.choice(("newInstance", "newInstance", "renew", "modify")),
        "remark": rng.choice((None, None, "auto-provisioned", "")),
        "skuName": sku_name,
        "modifyTime": modified,
        "orderAmount": str(rng.randrange(100, 100_000, 100)),
        "procutName": "monthly" if monthly else "yearly",
        "vdnId": str(rng.randint(1, 999)),
        "customerId": f"2022{tag_number:08d}{n:08d}",
        "company": f"Company {tag_number % 1000:03d}",
        "id": f"16{tag_number:08d}{n:09d}",
        "manualStatus": rng.choice(("0", "1")),
        "cecTenantId": f"2023{tag_number:08d}",
        "amount": str(rng.randint(1, 50)),
        "periodNumber": str(periods),
        "productId": f"0GbV{rng.getrandbits(64):016x}",
        "autoStatus": rng.choice(("0", "1", "2")),
        "customerName": f"customer-{tag_number % 10_000:04d}",
        "cecExpireTime": expires + rng.randrange(0, 5 * _DAY_MS, 1000),
        "cecTenantName": f"Tenant{tag_number:08d}",
        "createSource": rng.choice(("GTS", "Portal", "API")),
        "periodType": "month" if monthly else "year",
        "expireTime": expires,
        "createTime": created,
        "skuCode": f"{sku_short}-{rng.getrandbits(64):016x}",
        "cecFeatureType": rng.choice(("1", "2")),
        "trialFlag": rng.choice((0, 0, 0, 1)),
        "retryTimes": str(rng.randint(0, 3)),
        "status": rng.choice(("2", "2", "2", "8", "9")),
    }
    # The documented fields that the seed's own example leaves out.
    for optional in ("cecFeatureType", "trialFlag", "retryTimes", "status", "manualStatus"):
        if rng.random() < 0.15:
            del record[optional]
    # Times arrive as numbers in the example, as strings in the table: serve both.
    if rng.random() < 0.1:
        for name in ("modifyTime", "createTime", "expireTime", "cecExpireTime"):
            record[name] = str(record[name])
    return record


def _add_order_resources(
    rng: random.Random,
    tag: str,
    project_id: str,
    order_id: str,
    resources: list[dict[str, Any]],
    order_of: dict[str, str],
) -> None:
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
        service, primary_type, spec, attached_type, attached_spec = rng.choice(_PRODUCTS)
        region = rng.choice(_REGIONS)
        primary = _resource(rng, tag, project_id, region, service, primary_type, spec, None)
        resources.append(primary)
        order_of[primary["resource_id"]] = order_id
        if attached_type is None:
            continue
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            attached = _resource(
                rng,
                tag,
                project_id,
                region,
                service,
                attached_type,
                attached_spec,
                primary["resource_id"],
            )
            resources.append(attached)
            order_of[attached["resource_id"]] = order_id


def _resource(
    rng: random.Random,
    tag: str,
    project_id: str,
    region: str,
    service: str,
    resource_type: str,
    spec: str | None,
    parent: str | None,
) -> dict[str, Any]:
    resource_id = f"{tag}{rng.getrandbits(96):024x}"
    effective = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(
        seconds=rng.randrange(0, 5 * 365 * 86400)
    )
    expires = effective + timedelta(days=rng.choice((30, 90, 180, 365, 730, 1095)))
    return {
        "id": f"{tag[:5]}-{rng.getrandbits(32):08d}-0",
        "resource_id": resource_id,
        "resource_name": f"{resource_type.rsplit('.', 1)[-1]}-{resource_id[:12]}",
        "region_code": region,
        "service_type_code": service,
        "resource_type_code": resource_type,
        "resource_spec_code": spec,
        "project_id": project_id,
        "product_id": f"{rng.getrandbits(128):032x}",
        "parent_resource_id": parent,
        "is_main_resource": 0 if parent else 1,
        "status": rng.choice(_RESOURCE_STATUSES),
        "effective_time": format_cbc_time(effective),
        "expire_time": format_cbc_time(expires),
        "expire_policy": rng.randint(0, 5),
    }


class Tenants:
    """Generated tenants, the most recently used kept."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._tenants: OrderedDict[str, Tenant] = OrderedDict()

    def get(self, token: str) -> Tenant:
        tenant = self._tenants.pop(token, None)
        if tenant is None:
            tenant = build_tenant(self.config, token)
        self._tenants[token] = tenant
        while len(self._tenants) > self.config.max_tenants:
            self._tenants.popitem(last=False)
        return tenant
