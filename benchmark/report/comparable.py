"""Which results may be averaged: the one check that every command that aggregates (table, plot, compare,
baseline save) goes through.

Results of one `Key` (group, task, language) are the checkpoints (or seeds) of one model, averaged to
mean ± std. That is only a number if they were evaluated alike: on the same images (the dataset fingerprint,
which for a `--limit` subset hashes the chosen images), with the same prompts, on the same `--limit`, and under the same protocol (`--protocol`).
"""

from __future__ import annotations

from collections import defaultdict

from ..errors import ClipbenchError
from ..results import Key, Result


def _limit(result: Result):
    return None if result.limit is None else (result.limit.n, result.limit.seed)


# (name shown to the user, field of a baseline entry, how to read it from a result)
ASPECTS = (
    ("--limit", "limit", _limit),  # first: a subset also changes the fingerprint, and this says why
    ("dataset.fingerprint", "fingerprint", lambda r: r.dataset.fingerprint),
    ("prompts.sha256", "prompts_sha256", lambda r: r.prompts.sha256 if r.prompts else None),
    ("protocol", "protocol", lambda r: r.protocol_name),  # a paper's choices move its numbers
)


def evaluated_as(result: Result) -> dict:
    """The facts that must agree for two results to be averaged or compared, keyed as in a baseline entry."""
    return {key: get(result) for _, key, get in ASPECTS}


def _short(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):  # a limit
        return f"{value[0]} images, seed {value[1]}"
    return str(value)[:16]


def _label(result: Result) -> str:
    name, seed = result.member
    return name if seed is None else f"{name} (seed {seed})"


FORCE_HINT = "or pass --force to average them anyway"


def collect(results: list[Result], force: bool = False, hint: str = FORCE_HINT) -> dict[Key, list[Result]]:
    """Results by their `Key`. Refuses the same member twice, and (unless `force`) members that were not
    evaluated alike; `hint` is the way out offered by the command (`--force` where it has one)."""
    grouped: dict[Key, list[Result]] = defaultdict(list)
    for result in results:
        grouped[result.key].append(result)
    for (group, task, language), members in grouped.items():
        # unlike results first: two subsets of one checkpoint are not "the same file given twice"
        if not force and len(members) > 1:
            for what, _, get in ASPECTS:
                if len({get(r) for r in members}) > 1:
                    listing = ", ".join(f"{_label(r)}: {_short(get(r))}" for r in sorted(members, key=_label))
                    raise ClipbenchError(
                        f"refusing to average the results of group '{group}' on {task} [{language}]: their {what} "
                        f"differ ({listing}), so they were not evaluated alike. Re-run them "
                        f"alike, {hint}.")
        seen = set()
        for result in members:
            if result.member in seen:
                name, seed = result.member
                raise ClipbenchError(f"two results for '{name}' of group '{group}' on {task} [{language}] (seed {seed}); "
                                     "pass each result file once, or give separate runs different --group names")
            seen.add(result.member)
    return grouped
