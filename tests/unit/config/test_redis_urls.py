"""Redis URLs the service accepts, Sentinel ones included, and the messages for those it refuses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.redis_urls import RedisUrlError, SentinelTarget, check_redis_url, is_sentinel_url, parse_sentinel_url
from config.settings import Settings


def test_a_sentinel_url_names_sentinels_service_db_and_passwords() -> None:
    target = parse_sentinel_url(
        "redis+sentinel://app:s%40cret@10.0.0.1:26380,10.0.0.2,[::1]:26381/pm-main/3?sentinel_password=sp"
    )
    assert target == SentinelTarget(
        sentinels=(("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 26381)),
        service="pm-main",
        db=3,
        username="app",
        password="s@cret",
        sentinel_password="sp",
    )
    assert "s@cret" not in repr(target)
    assert "sp'" not in repr(target)
    assert parse_sentinel_url("rediss+sentinel://h/pm").ssl
    assert parse_sentinel_url("redis+sentinel://:pw@h/pm").password == "pw"
    assert parse_sentinel_url("redis+sentinel://h/pm?db=2").db == 2


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel:///pm", "at least one sentinel"),
        ("redis+sentinel://h", "/<service name>"),
        ("redis+sentinel://h/pm/x", "a number"),
        ("redis+sentinel://h/pm/1/2", "/<service name>"),
        ("redis+sentinel://h:notaport/pm", "bad sentinel port"),
        ("redis+sentinel://h/pm?timeout=1", "unknown"),
        ("http://h:6379", "starts with one of"),
        ("h:6379", "starts with one of"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, says: str) -> None:
    with pytest.raises(RedisUrlError, match=says):
        check_redis_url(url)


def test_settings_check_the_url_and_wait_for_a_replica_behind_sentinel() -> None:
    assert Settings(redis_url="redis://127.0.0.1:6379/0").wait_replicas == 0
    assert Settings(redis_url="redis+sentinel://h1,h2,h3/pm").wait_replicas == 1
    assert Settings(redis_url="redis+sentinel://h1/pm", redis_wait_replicas=0).wait_replicas == 0
    with pytest.raises(ValidationError) as refused:
        Settings(redis_url="redis+sentinel://:hunter2@/pm")
    # What `personamint` prints for it (the setting, the message: never the value).
    (error,) = refused.value.errors()
    assert error["loc"] == ("redis_url",)
    assert "at least one sentinel" in error["msg"]
    assert "hunter2" not in error["msg"]
    assert is_sentinel_url("REDIS+SENTINEL://h/pm")
    assert not is_sentinel_url("redis://h")
