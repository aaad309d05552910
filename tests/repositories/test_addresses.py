"""Repository URLs: every spelling of a forbidden address is refused; git gets the checked one."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor.stages.harvest.addresses import HostRefused, NetworkPolicy, resolve_checked
from tailor.stages.harvest.urls import UrlPolicy, check_git_url, parse_git_url
from tests.repositories.spellings import LOOPBACK, METADATA, OTHER_FORBIDDEN

DEMO = UrlPolicy(network=NetworkPolicy(allow_loopback=True))


@pytest.mark.parametrize("host", METADATA + LOOPBACK + OTHER_FORBIDDEN)
def test_a_forbidden_address_is_refused_however_it_is_spelled(host: str) -> None:
    with pytest.raises(ValueError, match="host"):
        check_git_url(f"https://{host}/org/repo.git")


@pytest.mark.parametrize("host", METADATA)
def test_the_metadata_service_stays_refused_whatever_the_platform_allows(host: str) -> None:
    everything = NetworkPolicy(
        allow_loopback=True,
        allowed_networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
    )
    with pytest.raises(ValueError, match="metadata"):
        check_git_url(f"https://{host}/org/repo.git", UrlPolicy(network=everything))


@pytest.mark.parametrize(
    "url",
    [
        "git@[::ffff:169.254.169.254]:o/r.git",
        "git@2852039166:o/r.git",
        "ssh://git@0xa9fea9fe/o/r.git",
    ],
)
def test_ssh_urls_are_checked_the_same_way(url: str) -> None:
    with pytest.raises(ValueError, match="metadata"):
        check_git_url(url)


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_is_allowed_only_when_the_settings_say_so(host: str) -> None:
    assert check_git_url(f"https://{host}/r.git", DEMO) == f"https://{host}/r.git"


def test_a_private_network_the_platform_allows_is_reachable_and_others_are_not() -> None:
    allowed = NetworkPolicy(allowed_networks=(ipaddress.ip_network("10.20.0.0/16"),))
    policy = UrlPolicy(network=allowed)
    assert check_git_url("https://10.20.3.4/r.git", policy)
    assert check_git_url("https://[::ffff:10.20.3.4]/r.git", policy)
    with pytest.raises(ValueError, match="private"):
        check_git_url("https://10.21.3.4/r.git", policy)


@pytest.mark.parametrize(
    ("url", "rebuilt"),
    [
        ("https://\uff27\uff29\uff34.Example.COM./org/r.git", "https://git.example.com/org/r.git"),
        ("https://134744072:443/r.git", "https://8.8.8.8/r.git"),
        ("https://bücher.example/r.git", "https://xn--bcher-kva.example/r.git"),
        ("git@GitHub.com:org/r.git", "git@github.com:org/r.git"),
        ("ssh://git@[2606:4700::1111]:2222/r.git", "ssh://git@[2606:4700::1111]:2222/r.git"),
    ],
)
def test_git_is_given_the_url_rebuilt_from_the_parts_checked(url: str, rebuilt: str) -> None:
    assert parse_git_url(check_git_url(url), {"https", "ssh"}).rebuilt() == rebuilt


@pytest.mark.parametrize(
    "url",
    [
        "https://%31%36%39.254.169.254/r.git",  # percent-encoded host
        "https://a.example\\@169.254.169.254/r.git",  # backslash: parsers disagree on the host
        "https://a.example/r.git?x=1",
        "https://1.2.3.4.5/r.git",  # ends in a number, but no address
        "https://git.example.1/r.git",
        "ssh://-oProxyCommand=x@git.example.com/r.git",
    ],
)
def test_urls_that_parsers_could_read_differently_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        check_git_url(url)


def test_every_address_a_name_resolves_to_is_checked() -> None:
    def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "169.254.169.254"]

    with pytest.raises(HostRefused, match="metadata"):
        resolve_checked("git.example.test", 443, NetworkPolicy(resolve=resolve))


def test_a_public_name_resolves_to_its_first_address() -> None:
    def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "2606:2800:220:1::1"]

    addr = resolve_checked("git.example.test", 443, NetworkPolicy(resolve=resolve))
    assert addr == ipaddress.ip_address("93.184.216.34")


@settings(max_examples=300, deadline=None, database=None)
@given(host=st.text(max_size=40), scheme=st.sampled_from(["https://", "ssh://git@", "git@"]))
def test_any_host_text_is_refused_with_a_reason_or_accepted(host: str, scheme: str) -> None:
    url = f"{scheme}{host}/o/r.git" if "://" in scheme else f"{scheme}{host}:o/r.git"
    try:
        check_git_url(url)
    except ValueError as exc:
        assert str(exc)
