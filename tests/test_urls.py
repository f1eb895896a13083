"""urls: link normalisation and the canonical link that identifies a story."""

from __future__ import annotations

import pytest

from aggregator.config import DEFAULT_TRACKING_PARAMS
from aggregator.urls import canonical_url, normalise_url


def canonical(url: str) -> str:
    return canonical_url(normalise_url(url), DEFAULT_TRACKING_PARAMS)


def test_scheme_and_host_are_lower_cased_path_is_not() -> None:
    assert (
        normalise_url("HTTPS://News.Example.ORG/Path/Case") == "https://news.example.org/Path/Case"
    )


def test_html_entity_in_query_is_decoded() -> None:
    assert normalise_url("https://a.example/read?id=1&#038;page=2") == (
        "https://a.example/read?id=1&page=2"
    )
    assert normalise_url("https://a.example/read?id=1&amp;page=2") == (
        "https://a.example/read?id=1&page=2"
    )


def test_spaces_and_non_ascii_are_percent_encoded_once() -> None:
    assert (
        normalise_url("  https://a.example/my story/ü  ") == "https://a.example/my%20story/%C3%BC"
    )
    assert normalise_url("https://a.example/my%20story") == "https://a.example/my%20story"


def test_international_host_becomes_punycode() -> None:
    assert normalise_url("https://bücher.example/x") == "https://xn--bcher-kva.example/x"


def test_empty_path_becomes_slash_and_port_is_kept() -> None:
    assert normalise_url("http://a.example") == "http://a.example/"
    assert normalise_url("http://a.example:8080/x") == "http://a.example:8080/x"


@pytest.mark.parametrize(
    "bad", ["", "   ", "/relative/path", "javascript:alert(1)", "data:text/html,hi", "mailto:a@b.c"]
)
def test_only_absolute_http_links(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_url(bad)


def test_tracking_parameters_are_removed_others_kept_in_order() -> None:
    url = "https://a.example/s?b=2&utm_source=x&UTM_Medium=y&a=1&fbclid=Z&gclid=q&ref=home"
    assert canonical(url) == "https://a.example/s?b=2&a=1"


def test_fragment_and_trailing_slash_are_removed() -> None:
    assert canonical("https://a.example/story/#comments") == "https://a.example/story"
    assert canonical("https://a.example/") == "https://a.example/"


def test_kept_values_stay_byte_for_byte() -> None:
    assert canonical("https://a.example/s?q=a%2Bb&x=%7E") == "https://a.example/s?q=a%2Bb&x=%7E"


def test_variants_of_one_article_share_a_canonical_link() -> None:
    variants = [
        "https://www.example.org/2026/11/story",
        "HTTPS://WWW.EXAMPLE.ORG/2026/11/story/",
        "https://www.example.org/2026/11/story/?utm_source=newsletter&utm_medium=email",
        "https://www.example.org/2026/11/story#section-2",
        " https://www.example.org/2026/11/story/?fbclid=abc ",
    ]
    assert {canonical(v) for v in variants} == {"https://www.example.org/2026/11/story"}


def test_different_articles_stay_different() -> None:
    assert canonical("https://a.example/story?id=1") != canonical("https://a.example/story?id=2")
    assert canonical("http://a.example/story") != canonical("https://a.example/story")


def test_configured_tracking_patterns_are_used() -> None:
    url = normalise_url("https://a.example/s?session=9&utm_source=x")
    assert canonical_url(url, ("session",)) == "https://a.example/s?utm_source=x"
