"""What a run says and checks before it spends anything: the credit pre-flight, the request-history
lookups it will make, and a dry run's account."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter

from batchflux.api import ApiClient, ApiError, Fatal, RateLimited, Transient, policy
from batchflux.ledger.reconcile import Lookup, lookup_for
from batchflux.ledger.resume import ResumePlan
from batchflux.run.exitcodes import ExitCode

log = logging.getLogger("batchflux.run")


async def credit_preflight(
    client: ApiClient, jobs: int, price: float, attempts: int = 6
) -> tuple[ExitCode, str] | None:
    """None to go on, or why not: the exit code and the one line for the user."""
    rng = random.Random()
    for attempt in range(1, attempts + 1):
        try:
            balance = await client.credits()
            break
        except Fatal as exc:
            if exc.kind == "not_found":  # no credits endpoint there: a 406 at submit still stops
                log.warning("could not check the account's credits (%s); going on without the check", exc)
                return None
            # A bad key: skipping the check would not help.
            return ExitCode.STOPPED, f"the API refused the credit check: {exc}"
        except (Transient, RateLimited) as exc:  # a passing fault must not cancel a nightly run
            if attempt == attempts:  # the API is unreachable or failing: try again later
                return ExitCode.TEMPFAIL, (
                    f"could not read the account's credits ({exc}); nothing was submitted, retry later "
                    "(--no-credit-check to skip this check)"
                )
            delay = (
                policy.rate_limit_delay(exc, attempt, rng)
                if isinstance(exc, RateLimited)
                else (policy.backoff_delay(attempt, rng=rng))
            )
            await asyncio.sleep(delay)
        except ApiError as exc:
            return ExitCode.STOPPED, (
                f"could not read the account's credits ({exc}); use --no-credit-check to skip this check"
            )
    need = jobs * price
    if balance + 1e-9 < need:
        return ExitCode.STOPPED, (
            f"not enough credits: {jobs} jobs × ${price:.2f} = ${need:.2f}, balance ${balance:.2f} "
            "(--max-jobs to submit fewer, --no-credit-check to skip this check)"
        )
    return None


def history_lookups(plan: ResumePlan) -> str:
    """The line saying what the request history is asked before anything is paid again."""
    kinds = Counter(lookup_for(d) for d in plan.decisions)
    intents, expired = kinds[Lookup.INTENT], kinds[Lookup.EXPIRED]
    if not intents and not expired:
        return ""
    parts = []
    if intents:
        parts.append(f"{intents} open submit{'s' if intents != 1 else ''}")
    if expired:
        parts.append(f"{expired} expired request{'s' if expired != 1 else ''}")
    return f"request history: looking up {' and '.join(parts)} before paying for them again"


def dry_run_text(c: dict[str, int], to_submit: int, price: float) -> str:
    redo = f" ({c['rejected']} rejected in review, redone with new seeds)" if c.get("rejected") else ""
    return (
        f"dry run: would submit {to_submit}{redo}, re-poll {c.get('poll', 0)}, "
        f"download {c.get('download', 0)}, "
        f"skip {c.get('skip', 0)} done, keep {c.get('failed', 0)} failed; "
        f"estimated cost ${to_submit * price:.2f}. Nothing was submitted."
    )
