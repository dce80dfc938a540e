"""The poll schedule: due tracks handed on in time order, and a due time brought forward."""

from __future__ import annotations

import asyncio

from batchflux.engine.tracks import PollScheduler, Track
from batchflux.manifest.job import Job


def _track(name: str) -> Track:
    return Track(Job(name, 0, "flux-kontext-max", {"prompt": name}, f"{name}.png", fingerprint=name))


async def test_a_poll_brought_forward_comes_then_and_not_again_at_its_old_time() -> None:
    loop = asyncio.get_running_loop()
    scheduler = PollScheduler(loop.time)
    start = loop.time()
    seen: list[tuple[str, float]] = []

    async def sink(track: Track) -> None:
        seen.append((track.job.id, loop.time() - start))

    late, other = _track("late"), _track("other")
    scheduler.add(late, start + 0.3)
    scheduler.add(other, start + 0.15)
    scheduler.tighten(lambda track: start + 0.05)  # the run's last jobs: sooner
    runner = asyncio.create_task(scheduler.run(sink))
    await asyncio.sleep(0.4)
    runner.cancel()
    assert [name for name, _ in seen] in (["late", "other"], ["other", "late"])
    assert all(0.04 <= at < 0.1 for _, at in seen)  # each once, at the new time


async def test_tighten_never_puts_a_poll_off() -> None:
    loop = asyncio.get_running_loop()
    scheduler = PollScheduler(loop.time)
    start = loop.time()
    seen: list[float] = []

    async def sink(track: Track) -> None:
        seen.append(loop.time() - start)

    scheduler.add(_track("soon"), start + 0.05)
    scheduler.tighten(lambda track: start + 0.2)
    runner = asyncio.create_task(scheduler.run(sink))
    await asyncio.sleep(0.3)
    runner.cancel()
    assert len(seen) == 1
    assert 0.04 <= seen[0] < 0.15
