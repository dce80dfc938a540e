"""The review server's guard and verdict API, spoken to with plain HTTP; the CLI started and stopped.

Every path needs the token; a state-changing request also needs this server's own ``Origin`` (or
none) and a JSON body; a ``Host`` not this server's (DNS rebinding) is refused. A verdict is given
for the image the page showed: a request id the job no longer has is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from reviewkit import Served

from batchflux.emulator import DEFAULT_API_KEY
from batchflux.files.layout import REVIEWS_FILENAME
from batchflux.ledger import replay_file
from batchflux.review.scripted import give_verdicts
from batchflux.review.session import ReviewSession

in_module_loop = pytest.mark.asyncio(loop_scope="module")  # the loop the ``review`` server runs in


def request_id(out: Path, job: str) -> str:
    rid = replay_file(out / "ledger.jsonl").jobs[job].request_id
    assert rid is not None
    return rid


@in_module_loop
async def test_every_endpoint_needs_the_token_and_a_verdict_our_own_origin(review: Served) -> None:
    body = {"k": "sunset", "rid": request_id(review.out, "sunset"), "verdict": "rejected", "note": "no"}
    own = {"Origin": review.base}
    token = {"X-Batchflux-Token": review.token}
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/img?k=sunset&w=ot", "/api/verdicts", "/favicon.svg", "/none"):
            async with http.get(review.base + path) as r:
                assert r.status == 403, path
            async with http.get(review.base + path, headers={"X-Batchflux-Token": "not-it"}) as r:
                assert r.status == 403, path
        async with http.post(review.base + "/api/verdict", json=body, headers=own) as r:
            assert r.status == 403, "no token"
        foreign = {**token, "Origin": "http://evil.example"}
        async with http.post(review.base + "/api/verdict", json=body, headers=foreign) as r:
            assert r.status == 403, "a foreign Origin"
        near = {**token, "Origin": "http://127.0.0.1:1"}
        async with http.post(review.base + "/api/verdict", json=body, headers=near) as r:
            assert r.status == 403, "another port is another origin"
        form = {**token, "Origin": review.base}
        async with http.post(review.base + "/api/verdict", data={"k": "sunset"}, headers=form) as r:
            assert r.status == 403, "a form post"
        rebound = {**token, "Host": "attacker.example"}
        async with http.get(review.base + "/api/verdicts", headers=rebound) as r:
            assert r.status == 403, "a foreign Host"
        assert not (review.out / REVIEWS_FILENAME).exists(), "nothing refused was recorded"

        async with http.post(review.base + "/api/verdict", json=body, headers={**token, **own}) as r:
            assert r.status == 200
            assert await r.json() == {"verdict": "rejected", "note": "no", "version": 1}
            assert r.headers["Cache-Control"] == "no-store"
        async with http.get(review.base + "/api/verdicts", headers=token) as r:
            got = await r.json()
        assert got["verdicts"] == {"sunset": ["rejected", "no"]}
        async with http.get(review.base + f"/api/verdicts?since={got['version']}", headers=token) as r:
            assert r.status == 204, "nothing changed since"


@in_module_loop
async def test_a_verdict_for_another_image_or_no_image_is_refused(review: Served) -> None:
    headers = {"X-Batchflux-Token": review.token, "Origin": review.base}
    url = review.base + "/api/verdict"
    async with aiohttp.ClientSession() as http:
        stale = {"k": "sunset", "rid": "an-older-request", "verdict": "approved"}
        async with http.post(url, json=stale, headers=headers) as r:
            assert r.status == 409
            assert "another image" in await r.text()
        failed = {"k": "blocked", "rid": request_id(review.out, "blocked"), "verdict": "approved"}
        async with http.post(url, json=failed, headers=headers) as r:
            assert r.status == 409
        odd = {"k": "sunset", "rid": request_id(review.out, "sunset"), "verdict": "maybe"}
        async with http.post(url, json=odd, headers=headers) as r:
            assert r.status == 400
        async with http.post(url, json={"k": "nobody", "verdict": "approved"}, headers=headers) as r:
            assert r.status == 404
    assert not (review.out / REVIEWS_FILENAME).exists()


@in_module_loop
async def test_the_page_carries_no_key_and_a_strict_policy(review: Served) -> None:
    async with aiohttp.ClientSession() as http, http.get(review.url) as r:
        html = await r.text()
        policy = r.headers["Content-Security-Policy"]
    assert DEFAULT_API_KEY not in html
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy


def test_the_command_prints_its_url_and_stops_cleanly_on_ctrl_c(batch: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchflux", "review", str(batch), "--no-open"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)
        assert url is not None, line
        with urllib.request.urlopen(url.group(0), timeout=10) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(url.group(0).split("?")[0], timeout=10)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped" in err


def test_scripted_verdicts(batch: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(batch, out)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "batchflux", "review", str(out), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    bad = cli("--reject", "winter", "nobody")
    assert bad.returncode == 2
    assert "nobody" in bad.stderr
    assert not (out / REVIEWS_FILENAME).exists(), "an unknown id records nothing"
    assert cli("--reject", "blocked").returncode == 2, "a failed job has no image to reject"
    done = cli("--reject", "winter", "neon", "--note", "wrong colours")
    assert done.returncode == 0, done.stderr
    assert "2 rejected" in done.stdout
    done = cli("--approve-all-unreviewed")
    assert "0 rejected, 4 approved" in done.stdout
    lines = [json.loads(x) for x in (out / REVIEWS_FILENAME).read_text().splitlines()]
    assert {x["job"]: (x["verdict"], x["note"]) for x in lines} == {
        "winter": ("rejected", "wrong colours"), "neon": ("rejected", "wrong colours"),
        "sunset": ("approved", ""), "evil": ("approved", ""), "watercolour": ("approved", ""),
        "retro": ("approved", ""),
    }  # fmt: skip
    assert len(lines) == 6


def test_merged_directories_each_keep_their_own_verdicts(batch: Path, tmp_path: Path) -> None:
    """Several directories (shards) on one page: a verdict goes to the log of the directory whose
    job it is, even where two share a job id (the card's key is ``DIR/ID`` then)."""
    east, west = tmp_path / "east", tmp_path / "west"
    shutil.copytree(batch, east)
    shutil.copytree(batch, west)
    session = ReviewSession([east, west])
    keys = [row.key for row in session.model.rows]
    assert "east/sunset" in keys
    assert "west/sunset" in keys
    given = session.give("west/sunset", request_id(west, "sunset"), "rejected", "  too warm  ")
    assert (given.verdict, given.note) == ("rejected", "too warm")
    assert not (east / REVIEWS_FILENAME).exists()
    assert session.verdicts() == {"west/sunset": ["rejected", "too warm"]}
    assert session.counts()["rejected"] == 1

    again = ReviewSession([east, west])  # a reload, a second reviewer
    assert again.verdicts() == {"west/sunset": ["rejected", "too warm"]}
    done = give_verdicts([east, west], approve_unreviewed=False, reject=["east/winter"])
    assert done.rejected == 1
    assert again.refresh_verdicts()
    assert again.verdicts() == {"west/sunset": ["rejected", "too warm"], "east/winter": ["rejected", ""]}

    # Its own verdict spares a session the next read of the log; another's append never goes unseen.
    session.give("east/neon", request_id(east, "neon"), "approved", "")
    assert session.verdicts()["east/winter"] == ["rejected", ""], "read before its own was added"
    session.give("east/retro", request_id(east, "retro"), "approved", "")
    assert not session.refresh_verdicts(), "nothing new but its own"
    give_verdicts([east], approve_unreviewed=False, reject=["sunset"])
    session.give("east/evil", request_id(east, "evil"), "approved", "")
    assert session.verdicts()["east/sunset"] == ["rejected", ""], "given between two of its own"
