"""``batchflux report``: writes the file, merges shards, and fails clearly (exit 2) without a ledger."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batchflux.cli import main
from batchflux.run.exitcodes import ExitCode


def cards(page: Path) -> list[dict[str, Any]]:
    m = re.search(r'id="jobs-data"[^>]*>(.*?)</script>', page.read_text(encoding="utf-8"), re.S)
    assert m is not None
    result: list[dict[str, Any]] = json.loads(m.group(1))
    return result


def test_report_writes_report_html(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = fabricate(tmp_path / "out", [spec("a"), spec("b", outcome="failed")])
    assert main(["report", str(out)]) == ExitCode.OK
    assert str(out / "report.html") in capsys.readouterr().out
    assert [c["id"] for c in cards(out / "report.html")] == ["a", "b"]


def test_several_dirs_merge_into_one_page_with_links_relative_to_it(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any
) -> None:
    one = fabricate(tmp_path / "s0", [spec("a")], inputs_dir=tmp_path / "in0")
    two = fabricate(tmp_path / "s1", [spec("b")], inputs_dir=tmp_path / "in1")
    dest = tmp_path / "site" / "all.html"
    assert main(["report", str(one), str(two), "-o", str(dest)]) == ExitCode.OK
    by_id = {c["id"]: c for c in cards(dest)}
    assert by_id["b"]["oh"] == "../s1/b.png"
    assert by_id["b"]["ot"].startswith("../s1/thumbs/")
    assert by_id["a"]["ih"] == "../in0/in-0.png"
    assert (dest.parent / by_id["b"]["ot"]).is_file()


def test_open_hands_the_file_to_the_browser(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    out = fabricate(tmp_path / "out", [spec("a")])
    assert main(["report", str(out), "--open"]) == ExitCode.OK
    assert opened == [(out / "report.html").absolute().as_uri()]


def test_no_ledger_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "no ledger.jsonl" in err
    assert "Traceback" not in err
    assert main(["report", str(tmp_path / "nope")]) == ExitCode.USAGE
    assert "no such directory" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()


def test_a_corrupt_ledger_is_a_usage_error_naming_the_line(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = fabricate(tmp_path / "out", [spec("a"), spec("b")])
    lines = (out / "ledger.jsonl").read_text().splitlines(keepends=True)
    lines[2] = "{garbage\n"
    (out / "ledger.jsonl").write_text("".join(lines))
    assert main(["report", str(out)]) == ExitCode.USAGE
    assert "ledger.jsonl:3" in capsys.readouterr().err
    assert not (out / "report.html").exists()


def test_a_torn_last_line_is_noted_not_fatal(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any
) -> None:
    out = fabricate(tmp_path / "out", [spec("a")], finished=False)
    with (out / "ledger.jsonl").open("a") as fh:
        fh.write('{"v":1,"ts":1,"event":"subm')
    assert main(["report", str(out)]) == ExitCode.OK
    assert "ignored a torn last line" in (out / "report.html").read_text(encoding="utf-8")
