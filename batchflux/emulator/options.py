"""Flags for every emulator knob, shared by `batchflux emulate` and `python -m batchflux.emulator`."""

from __future__ import annotations

import argparse

from batchflux.emulator.config import (
    ENDPOINTS,
    FAULT_KINDS,
    HISTORY_OUTAGES,
    INVALID_PARAMS_AT,
    LIMITERS,
    RESULT_PENDING,
    EmulatorConfig,
)

_DEFAULTS = EmulatorConfig()


def _latency(text: str) -> tuple[float, float | None]:
    parts = text.split(",")
    try:
        if len(parts) == 1:
            return float(parts[0]), None
        if len(parts) == 2:
            return float(parts[0]), float(parts[1])
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected MEAN or MEAN,SD in seconds, not {text!r}")


def _fault(text: str) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    if not sep or kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}")
    try:
        return kind, float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate must be a number within 0..1, not {rate!r}") from None


def _endpoints(text: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    unknown = names - ENDPOINTS
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown endpoint(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(ENDPOINTS))}"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    net = parser.add_argument_group("listening")
    net.add_argument("--host", default=d.host, help="interface to bind (default %(default)s)")
    net.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        default=d.port,
        help="port; 0 picks a free one (default %(default)s)",
    )
    net.add_argument(
        "--media-port",
        type=int,
        metavar="PORT",
        default=d.media_port,
        help="serve output files and uploads on a port of their own, as from a separate media host "
        "(0 picks a free one; default: on the API's port)",
    )
    net.add_argument("--access-log", action="store_true", help="log every request to stderr")
    jobs = parser.add_argument_group("jobs")
    jobs.add_argument(
        "--latency",
        type=_latency,
        metavar="MEAN[,SD]",
        help=f"seconds of inference per job, normally distributed (default {d.latency_mean},{d.latency_sd})",
    )
    jobs.add_argument(
        "--latency-min",
        type=float,
        metavar="SECONDS",
        default=d.latency_min,
        help="latency floor (default %(default)s)",
    )
    jobs.add_argument(
        "--workers",
        type=int,
        metavar="N",
        default=d.workers,
        help="worker slots per key (default %(default)s)",
    )
    jobs.add_argument(
        "--moderation-word",
        action="append",
        metavar="WORD",
        help="prompt containing WORD fails 'content blocked' (repeatable; default 'nsfw'; '' for none)",
    )
    jobs.add_argument(
        "--invalid-params-at",
        choices=INVALID_PARAMS_AT,
        default=d.invalid_params_at,
        help="reject bad flux-kontext-max params with 400 at submit, or FAILED/422 at run",
    )
    jobs.add_argument(
        "--max-prompt-chars",
        type=int,
        metavar="N",
        default=d.max_prompt_chars,
        help="reject a longer prompt with 400 at submit (default: no limit)",
    )
    jobs.add_argument(
        "--result-pending",
        choices=RESULT_PENDING,
        default=d.result_pending,
        help="what the result URL answers for a request not finished yet: its status without an "
        "output (answers), or 404 (default %(default)s)",
    )
    jobs.add_argument(
        "--retention", type=float, metavar="SECONDS", default=d.retention_s, help="seconds status/result live"
    )
    jobs.add_argument(
        "--media-retention",
        type=float,
        metavar="SECONDS",
        default=d.media_retention_s,
        help="seconds an output file is served after its job completes (default 7 days)",
    )
    jobs.add_argument(
        "--image-size", type=int, metavar="PX", default=d.image_long_side, help="output long side in px"
    )
    history = parser.add_argument_group("request history")
    history.add_argument(
        "--history-delay",
        type=float,
        metavar="SECONDS",
        default=d.history_delay_s,
        help="seconds after submission until a request's history record lands; until then it is "
        "listed with empty fields (default %(default)s)",
    )
    history.add_argument(
        "--history-outage",
        choices=HISTORY_OUTAGES,
        default=d.history_outage,
        help="make every request-history call fail: a 404, a 500, an HTML 502, or an answer of an "
        "unknown shape (default: the history works)",
    )
    account = parser.add_argument_group("account")
    account.add_argument(
        "--key", action="append", metavar="KEY", help=f"accepted API key (repeatable; default {d.keys[0]})"
    )
    account.add_argument(
        "--credits",
        type=float,
        metavar="AMOUNT",
        default=d.credits,
        help="starting balance (default %(default)s)",
    )
    account.add_argument(
        "--price", type=float, metavar="AMOUNT", default=d.price, help="charge per job (default %(default)s)"
    )
    account.add_argument(
        "--rpm", type=int, metavar="N", help="requests per window per key (default unlimited)"
    )
    account.add_argument(
        "--window",
        type=float,
        metavar="SECONDS",
        default=d.window_s,
        help="quota window in seconds (default 60)",
    )
    account.add_argument(
        "--limiter",
        choices=LIMITERS,
        default=d.limiter,
        help="fixed: windows aligned to the emulator's start, all of a window's requests free at its "
        "end; sliding: a slot frees one window after each request (default %(default)s)",
    )
    account.add_argument(
        "--busy-429",
        type=int,
        metavar="N",
        default=d.busy_429,
        help="answer one submit in N with a 429 whatever the rate (load, not a quota; default none)",
    )
    account.add_argument(
        "--busy-reset",
        type=float,
        metavar="SECONDS",
        default=d.busy_reset_s,
        help="the reset those busy 429s announce, from now (default %(default)s)",
    )
    account.add_argument(
        "--count-polls", action="store_true", help="status/result GETs count toward the quota"
    )
    account.add_argument("--retry-after", action="store_true", help="send Retry-After with 429s")
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--fault",
        type=_fault,
        action="append",
        metavar="KIND=RATE",
        help=f"inject a fault with probability RATE per request; KIND: {', '.join(FAULT_KINDS)} (repeatable)",
    )
    faults.add_argument(
        "--fault-endpoints",
        type=_endpoints,
        metavar="A,B",
        help=f"where faults apply (default all: {','.join(sorted(ENDPOINTS))})",
    )
    faults.add_argument(
        "--submit-hold",
        type=float,
        metavar="SECONDS",
        default=d.submit_hold_s,
        help="hold every accepted submit's answer back this long after its request was created "
        "(default %(default)s)",
    )
    faults.add_argument(
        "--seed", type=int, metavar="N", default=d.seed, help="seed for latency and fault draws"
    )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The config the flags describe; raises ValueError when the values do not make sense together."""
    d = _DEFAULTS
    mean, sd = args.latency if args.latency else (d.latency_mean, d.latency_sd)
    words = (
        tuple(w for w in args.moderation_word if w)
        if args.moderation_word is not None
        else d.moderation_words
    )
    return EmulatorConfig(
        keys=tuple(args.key) if args.key else d.keys,
        latency_mean=mean,
        latency_sd=d.latency_sd if sd is None else sd,
        latency_min=args.latency_min,
        workers=args.workers,
        rpm=args.rpm,
        window_s=args.window,
        limiter=args.limiter,
        busy_429=args.busy_429,
        busy_reset_s=args.busy_reset,
        count_polls=args.count_polls,
        retry_after=args.retry_after,
        faults=dict(args.fault or ()),
        fault_endpoints=args.fault_endpoints if args.fault_endpoints is not None else d.fault_endpoints,
        submit_hold_s=args.submit_hold,
        moderation_words=words,
        invalid_params_at=args.invalid_params_at,
        max_prompt_chars=args.max_prompt_chars,
        retention_s=args.retention,
        media_retention_s=args.media_retention,
        history_delay_s=args.history_delay,
        history_outage=args.history_outage,
        result_pending=args.result_pending,
        credits=args.credits,
        price=args.price,
        image_long_side=args.image_size,
        seed=args.seed,
        host=args.host,
        port=args.port,
        media_port=args.media_port,
    )


def export_lines(base_url: str, key: str) -> list[str]:
    return [f"export BATCHFLUX_BASE_URL={base_url}", f"export SEGMIND_API_KEY={key}"]
