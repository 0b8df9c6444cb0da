"""The egress policy: every spelling of an internal or metadata address is refused at registration."""

from __future__ import annotations

import pytest

from webhooks.egress import EgressPolicy, EgressRefused

# The SSRF list: loopback in every spelling, link-local and the metadata address, private and
# shared ranges, IPv6 unique-local, multicast, unspecified, reserved, metadata host names.
LOOPBACK = [
    "http://127.0.0.1/hooks",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[64:ff9b::7f00:1]/",
]
REFUSED = [
    *LOOPBACK,
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fe80::1]/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.0.10:8080/",
    "http://100.64.0.1/",
    "http://[fd00:ec2::254]/",
    "http://[fc00::1]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.GOOGLE.INTERNAL./",
    "http://metadata/",
    "http://instance-data/",
    "http://anything.internal/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "http:///nohost",
    "http://example.com:99999/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_internal_and_metadata_urls_are_refused_at_registration(url: str) -> None:
    with pytest.raises(EgressRefused) as refused:
        EgressPolicy().check_url(url)
    assert refused.value.code == "egress_refused"
    # The loopback setting admits loopback only: never link-local, private or metadata.
    if url not in LOOPBACK:
        with pytest.raises(EgressRefused):
            EgressPolicy(allow_loopback=True).check_url(url)


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/persona", "http://8.8.8.8/", "https://[2606:4700::1111]/", "http://localhost:9/"]
)
def test_public_urls_and_names_pass_registration(url: str) -> None:
    # Names (localhost included) are resolved and vetted at delivery, where the connection is made.
    assert EgressPolicy().check_url(url) == url


def test_loopback_setting_admits_loopback_receivers() -> None:
    for url in ("http://127.0.0.1:8080/hooks", "http://[::1]:8080/", "http://2130706433/"):
        assert EgressPolicy(allow_loopback=True).check_url(url) == url


async def test_a_name_resolving_to_a_refused_address_is_refused_after_resolution() -> None:
    with pytest.raises(EgressRefused):
        await EgressPolicy().resolve("localhost", 80)
    assert "127.0.0.1" in await EgressPolicy(allow_loopback=True).resolve("localhost", 80)
