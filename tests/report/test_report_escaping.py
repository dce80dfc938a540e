"""Everything from the manifest, the ledger or the server is shown as text, never run as markup."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux.report import write_report
from batchflux.report.build import redact, relative_href
from batchflux.report.model import display_value
from batchflux.report.render import embed_json

NASTY = [
    "<script>window.__pwned=1</script>",
    '"onerror=alert(1) x="',
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "<!-- <script>alert(1)</script> -->",
    "<![CDATA[ ]]> <svg onload=alert(1)>",
    "' onmouseover='alert(1)",
    "javascript:alert(1)",
    "&lt;script&gt; already escaped &amp;",
    "\u2028\u2029 line separators",
    "`${alert(1)}`",
    "<style>body{display:none}</style>",
]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)


def data_block(page: str) -> list[dict[str, Any]]:
    m = re.search(r'<script type="application/json" id="jobs-data"[^>]*>(.*?)</script>', page, re.S)
    assert m is not None
    cards = json.loads(m.group(1))
    assert isinstance(cards, list)
    return cards


@pytest.mark.parametrize("nasty", NASTY)
def test_a_nasty_value_everywhere_stays_text(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any, nasty: str
) -> None:
    out = fabricate(
        tmp_path / "out",
        [
            spec("ok", prompt=nasty, params={"seed": nasty}),
            spec("bad", prompt=nasty, outcome="failed", cause=nasty, error=nasty),
        ],
        manifest=f"/srv/{nasty}.yaml",
    )
    page = write_report([out]).read_text(encoding="utf-8")

    parser = Tags()
    parser.feed(page)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert len(scripts) == 2, "only the data block and the page's own script"
    assert scripts[0].get("type") == "application/json"
    assert scripts[1].get("nonce")
    assert not [(t, a) for t, a in parser.tags for name in a if name.startswith("on")], (
        "no event handler attributes"
    )
    assert page.count("</script") == 2
    # The value round-trips through the JSON block exactly, so the page shows it as written.
    cards = {c["id"]: c for c in data_block(page)}
    assert cards["ok"]["p"] == nasty
    assert ["seed", nasty] in cards["ok"]["pa"]
    assert cards["bad"]["err"] == nasty
    assert cards["bad"]["cause"] == nasty
    # Outside the data block (header, failures list, title) it is HTML-escaped.
    if "<" in nasty:
        assert nasty not in page
    assert "alert(1)</script>" not in page


def test_the_page_allows_only_its_own_script_and_no_network(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any
) -> None:
    page = write_report([fabricate(tmp_path / "out", [spec("a")])]).read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None
    policy = csp.group(1)
    assert "default-src 'none'" in policy
    nonce = re.search(r"script-src 'nonce-([^']+)'", policy)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in page
    assert "unsafe-inline" not in policy
    assert "http:" not in policy
    assert "https:" not in policy
    assert not re.search(r'(src|href)="https?://', page), "no external resource in the static markup"


def test_inline_image_data_and_the_api_key_never_reach_the_page(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "SG_0123456789abcdef"
    blob = "data:image/png;base64," + "iVBORw0KGgo" * 500
    monkeypatch.setenv("SEGMIND_API_KEY", key)
    out = fabricate(tmp_path / "out", [spec("a", prompt=f"leak {key}", params={"mask": blob})])
    page = write_report([out]).read_text(encoding="utf-8")
    assert key not in page
    assert "SG_***" in page
    assert blob not in page
    assert "iVBORw0KGgo" * 3 not in page
    (card,) = data_block(page)
    assert dict(map(tuple, card["pa"]))["mask"].startswith("data:image/png;base64,… (5522 characters")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.png", "./a.png"),
        ("javascript:alert(1).png", "./javascript%3Aalert%281%29.png"),
        ("sp ace#frag?q.png", "./sp%20ace%23frag%3Fq.png"),
        ('q"uote<tag>.png', "./q%22uote%3Ctag%3E.png"),
        ("sub/ünï.png", "./sub/%C3%BCn%C3%AF.png"),
    ],
)
def test_relative_hrefs_are_encoded_and_cannot_form_a_scheme(
    tmp_path: Path, name: str, expected: str
) -> None:
    assert relative_href(tmp_path / name, tmp_path) == expected


def test_relative_hrefs_climb_out_of_the_report_folder(tmp_path: Path) -> None:
    assert relative_href(tmp_path / "in" / "x.jpg", tmp_path / "out") == "../in/x.jpg"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "plain"),
        (3, "3"),
        (None, "null"),
        ({"b": 1, "a": [1, 2]}, '{"a": [1, 2], "b": 1}'),
        ("x" * 250, "x" * 200 + "… (50 more characters)"),
    ],
)
def test_parameter_display(value: object, shown: str) -> None:
    assert display_value(value) == shown


def test_redaction_ignores_empty_and_short_secrets() -> None:
    assert redact("a b SG_0123456789abcdef", ["", "a", "SG_0123456789abcdef"]) == "a b SG_***"


@given(
    st.recursive(st.text() | st.integers() | st.none(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_embedded_json_is_inert_and_round_trips(value: object) -> None:
    text = embed_json(value)
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert "\u2028" not in text
    assert "\u2029" not in text
    assert json.loads(text) == value
