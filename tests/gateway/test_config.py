import pytest

from gateway.config import (
    CacheSettings,
    ConfigError,
    SecuritySettings,
    Settings,
    upstream_variables,
)


def test_defaults_are_production_with_memory_cache_and_the_documented_quota() -> None:
    settings = Settings.from_env({})
    assert settings.profile == "production"
    assert settings.is_production and not settings.graphiql_enabled
    assert settings.cache.url == "memory://" and not settings.cache.is_redis
    assert settings.oma.rate_limit == 10.0 and settings.cbc.rate_limit == 10.0
    assert settings.limits.max_first == 1000


def test_every_variable_is_read() -> None:
    env = {
        "GATEWAY_PROFILE": "development",
        "GATEWAY_OMA_BASE_URL": "https://oma.example/",
        "GATEWAY_CBC_BASE_URL": "https://cbc.example",
        "GATEWAY_OMA_RATE_LIMIT": "0",
        "GATEWAY_CBC_CACHE_TTL": "5.5",
        "GATEWAY_CBC_MAX_RETRIES": "4",
        "GATEWAY_CACHE_URL": "redis://127.0.0.1:6379/2",
        "GATEWAY_CACHE_TIMEOUT": "0.05",
        "GATEWAY_CACHE_STALE_IF_ERROR": "60",
        "GATEWAY_CACHE_STALE_WHILE_REVALIDATE": "15",
        "GATEWAY_MAX_DEPTH": "7",
        "GATEWAY_CORS_ORIGINS": "https://a.example, https://b.example",
        "GATEWAY_PORT": "9000",
        "GATEWAY_ALLOW_BATCHING": "true",
        "GATEWAY_GC_THRESHOLD": "20000",
        "GATEWAY_MAX_REPLICAS": "6",
    }
    settings = Settings.from_env(env)
    assert settings.profile == "development" and settings.graphiql_enabled
    assert settings.oma.base_url == "https://oma.example"
    assert settings.oma.rate_limit == 0
    assert settings.cbc.cache_ttl == 5.5 and settings.cbc.max_retries == 4
    assert settings.cache.is_redis and settings.cache.operation_timeout == 0.05
    assert settings.cache.stale_if_error == 60
    assert settings.cache.stale_while_revalidate == 15
    assert settings.limits.max_depth == 7 and settings.limits.allow_batching
    assert settings.server.cors_origins == ("https://a.example", "https://b.example")
    assert settings.server.port == 9000
    assert settings.server.gc_threshold == 20000
    assert settings.server.max_replicas == 6


def test_every_problem_is_reported_at_once() -> None:
    env = {
        "GATEWAY_PROFILE": "staging",
        "GATEWAY_OMA_BASE_URL": "ftp://oma",
        "GATEWAY_CBC_RATE_LIMIT": "fast",
        "GATEWAY_OMA_MAX_RETRIES": "-1",
        "GATEWAY_CACHE_URL": "memcached://x",
        "GATEWAY_ALLOW_BATCHING": "perhaps",
        "GATEWAY_GC_THRESHOLD": "-5",
        "GATEWAY_MAX_REPLICAS": "0",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    text = str(caught.value)
    for name in (
        "GATEWAY_PROFILE",
        "GATEWAY_OMA_BASE_URL",
        "GATEWAY_CBC_RATE_LIMIT",
        "GATEWAY_OMA_MAX_RETRIES",
        "GATEWAY_CACHE_URL",
        "GATEWAY_ALLOW_BATCHING",
        "GATEWAY_GC_THRESHOLD",
        "GATEWAY_MAX_REPLICAS",
    ):
        assert name in text
    assert len(caught.value.problems) == 8


@pytest.mark.parametrize("value", ["-1", "inf", "soon"])
def test_stale_while_revalidate_is_off_by_default_and_a_finite_number_of_seconds(
    value: str,
) -> None:
    assert Settings.from_env({}).cache.stale_while_revalidate == 0
    assert Settings.from_env({"GATEWAY_CACHE_STALE_WHILE_REVALIDATE": "0.5"}).cache == (
        CacheSettings(stale_while_revalidate=0.5)
    )
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"GATEWAY_CACHE_STALE_WHILE_REVALIDATE": value})
    (problem,) = caught.value.problems
    assert problem.startswith("GATEWAY_CACHE_STALE_WHILE_REVALIDATE")


def test_upstream_variables_are_documented() -> None:
    names = upstream_variables("cbc")
    assert "GATEWAY_CBC_RATE_LIMIT" in names and "GATEWAY_CBC_CACHE_TTL" in names
    assert all(doc for doc in names.values())


def test_the_quota_defaults_to_ten_calls_in_any_second_five_at_once() -> None:
    for upstream in (Settings.from_env({}).oma, Settings.from_env({}).cbc):
        assert (upstream.rate_limit, upstream.rate_window, upstream.rate_burst) == (10, 1, 5)
        # 99 calls at that shape take 9.9 s: they may queue 10 s, with a second to answer.
        assert (upstream.rate_limit_max_wait, upstream.deadline) == (10, 11)
        # One request's fan-out of a hundred calls is not held back in the process.
        assert upstream.max_concurrency == 128
    names = upstream_variables("oma")
    assert "window" in names["GATEWAY_OMA_RATE_WINDOW"]
    assert "at once" in names["GATEWAY_OMA_RATE_BURST"]


def test_the_quotas_shape_is_read() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_OMA_RATE_LIMIT": "100",
            "GATEWAY_OMA_RATE_WINDOW": "60",
            "GATEWAY_OMA_RATE_BURST": "20",
            "GATEWAY_CBC_RATE_WINDOW": "0.5",
            "GATEWAY_CBC_MAX_CONCURRENCY": "16",
        }
    )
    assert (settings.oma.rate_limit, settings.oma.rate_window, settings.oma.rate_burst) == (
        100,
        60,
        20,
    )
    assert settings.cbc.rate_window == 0.5 and settings.cbc.rate_burst == 5
    assert settings.cbc.max_concurrency == 16


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("GATEWAY_OMA_RATE_WINDOW", "0", "must be above 0"),
        ("GATEWAY_CBC_RATE_WINDOW", "-1", "must be above 0"),
        ("GATEWAY_OMA_RATE_WINDOW", "soon", "is not a number"),
        ("GATEWAY_CBC_RATE_BURST", "0", "must be from 1"),
        ("GATEWAY_OMA_RATE_BURST", "2.5", "is not a whole number"),
    ],
)
def test_a_quota_that_could_not_work_is_refused_by_name(
    name: str, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    (said,) = caught.value.problems
    assert said.startswith(name) and problem in said


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # Each of these passed check-config and then crashed at start or misbehaved.
        ("GATEWAY_CACHE_URL", "redis://cache:6379/O"),
        ("GATEWAY_CACHE_URL", "redis://cache:notaport/0"),
        ("GATEWAY_OMA_BASE_URL", "http://oma:notaport"),
        ("GATEWAY_OMA_BASE_URL", "https://:443"),
        ("GATEWAY_CBC_BASE_URL", "http://cbc .example"),
        ("GATEWAY_GC_THRESHOLD", "99999999999999999999"),
        ("GATEWAY_PORT", "70000"),
        ("GATEWAY_OMA_READ_TIMEOUT", "inf"),
        ("GATEWAY_CBC_DEADLINE", "0"),
        # 0 read as "no timeout" by Redis's client and "no time" by the shared rate limit.
        ("GATEWAY_CACHE_TIMEOUT", "0"),
    ],
)
def test_values_that_could_not_work_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    (problem,) = caught.value.problems
    assert problem.startswith(name)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("memory://", "memory://"),
        ("redis://cache:6379/0/", "redis://cache:6379/0"),
        ("redis://cache:6379/", "redis://cache:6379"),
    ],
)
def test_a_cache_url_loses_a_trailing_slash_but_not_its_schemes(url: str, kept: str) -> None:
    assert Settings.from_env({"GATEWAY_CACHE_URL": url}).cache.url == kept


def test_connection_limits_have_defaults_real_clients_fit_in_and_are_read() -> None:
    server = Settings.from_env({}).server
    # IAM tokens of about 12 KB with a browser's headers; slow clients gone within 10 s.
    assert server.max_header_bytes == 32 * 1024
    assert server.header_timeout == 10 and server.body_timeout == 10
    assert server.keep_alive_timeout > 60  # past the proxies' pooled connections
    assert server.max_connections == 500
    server = Settings.from_env(
        {
            "GATEWAY_MAX_HEADER_BYTES": "16384",
            "GATEWAY_HEADER_TIMEOUT": "2.5",
            "GATEWAY_BODY_TIMEOUT": "4",
            "GATEWAY_KEEP_ALIVE_TIMEOUT": "0.5",
            "GATEWAY_MAX_CONNECTIONS": "64",
        }
    ).server
    assert server.max_header_bytes == 16384
    assert (server.header_timeout, server.body_timeout, server.keep_alive_timeout) == (2.5, 4, 0.5)
    assert server.max_connections == 64


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_MAX_HEADER_BYTES", "512"),  # not even a request line and a token's name
        ("GATEWAY_MAX_HEADER_BYTES", "32k"),
        ("GATEWAY_HEADER_TIMEOUT", "0"),  # every connection closed before it could ask
        ("GATEWAY_BODY_TIMEOUT", "-1"),
        ("GATEWAY_KEEP_ALIVE_TIMEOUT", "nan"),
        ("GATEWAY_MAX_CONNECTIONS", "0"),
        ("GATEWAY_MAX_CONNECTIONS", "2.5"),
    ],
)
def test_connection_limits_that_could_not_work_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    (problem,) = caught.value.problems
    assert problem.startswith(name)


def test_what_the_gateway_believes_of_callers_has_documented_defaults_and_is_read() -> None:
    defaults = Settings.from_env({})
    assert defaults.security == SecuritySettings()
    assert defaults.security.max_token_bytes == 12_288
    assert (defaults.security.verified_ttl, defaults.security.rejected_ttl) == (3600.0, 30.0)
    assert defaults.security.trusted_proxies == ()
    assert (defaults.oma.breaker_min_callers, defaults.oma.unverified_share) == (3, 0.2)
    read = Settings.from_env(
        {
            "GATEWAY_CREDENTIAL_SECRET": "0123456789abcdef0123456789abcdef",
            "GATEWAY_MAX_TOKEN_BYTES": "8192",
            "GATEWAY_CREDENTIAL_VERIFIED_TTL": "600",
            "GATEWAY_CREDENTIAL_REJECTED_TTL": "0",
            "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1,2001:db8::/32",
            "GATEWAY_CBC_BREAKER_MIN_CALLERS": "1",
            "GATEWAY_OMA_UNVERIFIED_SHARE": "0.5",
        }
    )
    assert read.security.credential_secret == "0123456789abcdef0123456789abcdef"
    assert "0123456789abcdef" not in repr(read)  # the secret never shows
    assert read.security.max_token_bytes == 8192
    assert (read.security.verified_ttl, read.security.rejected_ttl) == (600.0, 0.0)
    assert read.security.trusted_proxies == ("10.0.0.0/8", "192.0.2.1", "2001:db8::/32")
    assert read.cbc.breaker_min_callers == 1 and read.oma.breaker_min_callers == 3
    assert read.oma.unverified_share == 0.5 and read.cbc.unverified_share == 0.2


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("GATEWAY_CREDENTIAL_SECRET", "short", "at least 32 characters"),
        ("GATEWAY_MAX_TOKEN_BYTES", "63", "from 64 to 16384"),
        ("GATEWAY_MAX_TOKEN_BYTES", "16385", "from 64 to 16384"),  # past the upstreams' cap
        ("GATEWAY_CREDENTIAL_VERIFIED_TTL", "0", "above 0"),
        ("GATEWAY_CREDENTIAL_REJECTED_TTL", "-1", "at least 0"),
        ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local", "'proxy.local' is not an IP"),
        ("GATEWAY_OMA_BREAKER_MIN_CALLERS", "0", "from 1 to"),
        ("GATEWAY_CBC_UNVERIFIED_SHARE", "1.5", "at most 1"),
        ("GATEWAY_CBC_UNVERIFIED_SHARE", "-0.1", "at least 0"),
    ],
)
def test_beliefs_that_could_not_work_are_refused_by_name(
    name: str, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    (reported,) = caught.value.problems
    assert reported.startswith(name) and problem in reported
