"""HYPE-style human error rates with bootstrap 95 % confidence intervals, and curation rejection rates.

HYPE∞ (Zhou et al. 2019) is the share of trials a rater got wrong: 50 % means generated images cannot
be told from real ones. It is reported overall, for generated and for real images separately
(a rater who calls everything "real" gets 0 % on fakes and 100 % on reals), and per class.
"""

import hashlib
import random
from collections.abc import Sequence
from typing import Any

from synthset.review.store import Trial

BOOTSTRAP = 2000
CONFIDENCE = 0.95


def plan_trials(seed: int, rater: str, count: int, generated: Sequence[int], real: Sequence[int],
                generated_labels: Sequence[int], real_labels: Sequence[int]) -> list[Trial]:
    """Half generated, half real test images, shuffled by a stream seeded from ``seed`` and the rater."""
    stream = random.Random(int(hashlib.sha256(f"{seed}:{rater}".encode()).hexdigest()[:16], 16))
    fakes = stream.sample(range(len(generated)), min(count - count // 2, len(generated)))
    reals = stream.sample(range(len(real)), min(count // 2, len(real)))
    items = [("fake", generated[i], generated_labels[i]) for i in fakes] + [("real", real[i], real_labels[i]) for i in reals]
    stream.shuffle(items)
    return [Trial(position, kind, int(item), int(label)) for position, (kind, item, label) in enumerate(items)]


def rate_with_interval(outcomes: Sequence[int], seed: int = 0) -> dict[str, float] | None:
    """Mean of 0/1 outcomes and its percentile bootstrap 95 % CI (None without outcomes)."""
    n = len(outcomes)
    if not n:
        return None
    stream = random.Random(seed)
    means = sorted(sum(outcomes[stream.randrange(n)] for _ in range(n)) / n for _ in range(BOOTSTRAP))
    tail = (1 - CONFIDENCE) / 2
    return {"rate": sum(outcomes) / n, "low": means[int(tail * BOOTSTRAP)], "high": means[int((1 - tail) * BOOTSTRAP) - 1],
            "n": n}


def realism_report(rows: Sequence[tuple[str, str, int, int]], class_names: list[str]) -> dict[str, Any]:
    """Error rates (1 - correct) overall, on generated and on real images, and per class."""
    errors = [(kind, label, 1 - correct) for _, kind, label, correct in rows]

    def rate(selected: list[int], seed: int) -> dict[str, float] | None:
        return rate_with_interval(selected, seed)

    report: dict[str, Any] = {
        "raters": len({r[0] for r in rows}), "trials": len(rows),
        "error_rate": rate([e for _, _, e in errors], 0),
        "error_rate_generated": rate([e for k, _, e in errors if k == "fake"], 1),
        "error_rate_real": rate([e for k, _, e in errors if k == "real"], 2),
        "per_class": {},
    }
    for c, name in enumerate(class_names):
        report["per_class"][name] = {
            "generated": rate([e for k, label, e in errors if k == "fake" and label == c], 10 + c),
            "real": rate([e for k, label, e in errors if k == "real" and label == c], 1000 + c),
        }
    return report


def curation_report(rows: Sequence[tuple[str, int, int, str]], class_names: list[str]) -> dict[str, Any]:
    """Per class: the share of curated images rejected (wrong class or defective) and the raters' count.

    An image is rejected when at least half of the raters who judged it rejected it.
    """
    by_item: dict[int, list[str]] = {}
    labels: dict[int, int] = {}
    for _, item, label, verdict in rows:
        by_item.setdefault(item, []).append(verdict)
        labels[item] = label
    rejected = {item for item, verdicts in by_item.items() if 2 * sum(v != "ok" for v in verdicts) >= len(verdicts)}
    names = class_names or ["all"]
    per_class = {}
    for c, name in enumerate(names):
        judged = [item for item in by_item if (labels[item] == c if class_names else True)]
        per_class[name] = {"judged": len(judged), "rejected": sum(item in rejected for item in judged),
                           "rejection_rate": (sum(item in rejected for item in judged) / len(judged)) if judged else None}
    return {"raters": len({r[0] for r in rows}), "judged": len(by_item), "rejected": sorted(rejected),
            "rejection_rate": len(rejected) / len(by_item) if by_item else None, "per_class": per_class}


def interval_text(cell: dict[str, float] | None) -> str:
    if cell is None:
        return "no trials"
    return f"{100 * cell['rate']:.1f} % [{100 * cell['low']:.1f}, {100 * cell['high']:.1f}] (n={cell['n']})"


def share_text(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f} %"


def report_markdown(realism: dict[str, Any] | None, curation: dict[str, Any] | None) -> list[str]:
    """The card's "Human evaluation" section."""
    lines = []
    if realism and realism["trials"]:
        lines += [f"Realism (HYPE∞, Zhou et al. 2019): {realism['raters']} rater(s), {realism['trials']} trials, half "
                  "generated and half real test images, shuffled; 50 % error means generated images cannot be told "
                  "from real ones. Bootstrap 95 % intervals.", "",
                  "| | error rate |", "|---|---|",
                  f"| all trials | {interval_text(realism['error_rate'])} |",
                  f"| generated images judged real | {interval_text(realism['error_rate_generated'])} |",
                  f"| real images judged generated | {interval_text(realism['error_rate_real'])} |"]
        per_class = [(n, c) for n, c in realism["per_class"].items() if c["generated"] or c["real"]]
        if per_class:
            lines += ["", "| class | generated judged real | real judged generated |", "|---|---|---|",
                      *[f"| {n} | {interval_text(c['generated'])} | {interval_text(c['real'])} |" for n, c in per_class]]
    if curation and curation["judged"]:
        lines += ["", f"Curation: {curation['raters']} rater(s) judged {curation['judged']} images; an image is rejected "
                  "when at least half of its raters marked it wrong class or defective.", "",
                  "| class | judged | rejected | rejection rate |", "|---|---|---|---|",
                  *[f"| {n} | {c['judged']} | {c['rejected']} | {share_text(c['rejection_rate'])} |"
                    for n, c in curation["per_class"].items() if c["judged"]]]
    return lines or ["Not measured yet: `python review.py dataset=<this folder>`."]
