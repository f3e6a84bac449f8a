"""From words to distributions: each claim becomes a Beta constraint on a probability.

The words. A claim states a range for P(scenario within horizon): an ICD 203 term's range, or an
interval. The unrated ("A1") constraint is the maximum-entropy Beta with its mean at the range's
mid-point and 90% of its mass in the range (`maxent_beta`). A bare number p
is read as precisely as the verbal scale allows: mean p, with the concentration a + b of the ICD
term whose range holds p.

The rating. A claim from a weaker source, or one less credible, should constrain less. We temper
the A1 Beta's density by a weight w in (0, 1] (a power prior, Ibrahim & Chen 2000):
``Beta(p | a, b) ** w  ∝  Beta(p | w·(a − 1) + 1, w·(b − 1) + 1)``, so the concentration
``a + b`` falls to ``w·(a + b − 2) + 2`` and the claim "counts as w of an A1 claim". We chose this
over scaling a and b by w while keeping the mean, because for terms near 0 or 1 that makes a weak
claim a Beta with a < 1 or b < 1: a density that is infinite at 0 or 1 and so *pushes* the
probability to an extreme instead of saying little. Tempering keeps the most likely value (the
mode) of the A1 Beta and tends to the uniform Beta(1, 1) as w → 0, so an F6 claim adds little; the
price is that the mean of a weakly rated claim moves from the range's mid-point toward 1/2.

    w = RELIABILITY_WEIGHT[reliability] × CREDIBILITY_WEIGHT[credibility]

Both tables fall strictly from A to F and from 1 to 6. "Cannot be judged" (F, 6) is given the
least weight of all: an unrated source earns no more trust than an unreliable one.

The budget. A document is one forecaster, not a data set. A rated Beta(a, b) counts as
``a + b - 2`` pseudo-observations of its claim's outcome (did the scenario happen within the
horizon?), and one such outcome tells less about a scenario's rate than the event counts of the
same weeks do: its Fisher information about the log rate is at most 0.65 of an event's. So we
cap what one document's claims may carry together at

    budget = EVIDENCE_BUDGET × RELIABILITY_WEIGHT[source reliability]

pseudo-observations (5 for a completely reliable source, 3 for a fairly reliable one such as the
op-ed): "about as much as a few events" (without it one claim of the op-ed weighed as much as
years of data; validation/README.md). When the rated claims carry more than the budget, every
claim's weight is scaled down by the same factor, so their relative weights (credibility) stay.
Claims that quote the same sentence are one piece of evidence read several ways: together they
carry what the strongest of them carries alone, each its share in proportion to its own weight.

Coherence. P(event by h) cannot fall as h grows, and a scenario cannot be likelier than a union
that contains it. So a claim about event E₁ within h₁ and one about E₂ ⊇ E₁ within h₂ ≥ h₁
contradict each other when E₁'s stated lower bound exceeds E₂'s stated upper bound. Such pairs are
reported as conflicts; they are never averaged away.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecast.claims import TERM_RANGES, Claim, ClaimSet, Rating, Source, load_claims
from forecast.errors import PriorSpecError
from forecast.scenarios import Scenario, load_scenarios

RELIABILITY_WEIGHT = {"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.4, "E": 0.2, "F": 0.1}
CREDIBILITY_WEIGHT = {1: 1.0, 2: 0.8, 3: 0.6, 4: 0.4, 5: 0.2, 6: 0.1}
STATED_MASS = 0.9
#: Pseudo-observations an A-rated document's claims may carry together (see the module docs).
EVIDENCE_BUDGET = 5.0


def rating_weight(rating: Rating) -> float:
    """The weight w in (0, 1] an Admiralty rating gives a claim (1 for A1)."""
    return RELIABILITY_WEIGHT[rating.reliability] * CREDIBILITY_WEIGHT[rating.credibility]


@functools.cache
def maxent_beta(low: float, high: float, mass: float = STATED_MASS) -> tuple[float, float]:
    """Maximum-entropy Beta(a, b) with mean (low + high) / 2 and `mass` of it in [low, high].

    With the mean m fixed, a Beta has one parameter left, its concentration k (a = m k,
    b = (1 - m) k), and the mass in [low, high] grows with k from 0 to 1: the one k that puts
    exactly `mass` there is the answer, found as a root in log k. (`preliz.maxent`, used before,
    solves the same problem numerically: the same Betas to 3 digits, 2 s per process to import.)
    """
    from scipy import optimize, stats  # here: 0.7 s to import, and most commands never fit a Beta

    mean = (low + high) / 2

    def excess(log_k: float) -> float:
        k = np.exp(log_k)
        return float(np.diff(stats.beta(mean * k, (1 - mean) * k).cdf([low, high]))[0]) - mass

    k = float(np.exp(optimize.brentq(excess, -5.0, 15.0, xtol=1e-12)))
    return mean * k, (1 - mean) * k


def _point_beta(p: float) -> tuple[float, float]:
    low, high = min(TERM_RANGES.values(), key=lambda r: 0 if r[0] <= p <= r[1]
                    else min(abs(p - r[0]), abs(p - r[1])))
    a, b = maxent_beta(low, high)
    return p * (a + b), (1 - p) * (a + b)


@dataclass(frozen=True)
class Constraint:
    """A claim as a Beta density on P(scenario within horizon after `published`), tempered by
    its rating and by its share of its document's evidence budget."""

    claim: Claim
    rated: float  # the rating's weight
    base: tuple[float, float]  # the unrated (A1) Beta's a, b
    published: dt.date | None = None  # the horizon counts from this day
    share: float = 1.0  # of the rated weight, after the sentence and document budgets

    @classmethod
    def from_claim(cls, claim: Claim, published: dt.date | None = None) -> Constraint:
        base = _point_beta(claim.point) if claim.point is not None else maxent_beta(*claim.stated)
        return cls(claim, rating_weight(claim.rating), base, published)

    @property
    def weight(self) -> float:
        """The power w by which the A1 Beta's density is tempered."""
        return self.rated * self.share

    @property
    def pseudo_observations(self) -> float:
        """What the constraint counts as: a + b - 2 observations of the claimed outcome."""
        return self.weight * (sum(self.base) - 2)

    @property
    def alpha(self) -> float:
        return self.weight * (self.base[0] - 1) + 1

    @property
    def beta(self) -> float:
        return self.weight * (self.base[1] - 1) + 1

    @property
    def concentration(self) -> float:
        return self.alpha + self.beta

    @property
    def mean(self) -> float:
        return self.alpha / self.concentration

    def interval(self, mass: float = STATED_MASS) -> tuple[float, float]:
        """The equal-tailed interval holding `mass` of the rated constraint."""
        from scipy import stats

        low, high = stats.beta(self.alpha, self.beta).ppf([(1 - mass) / 2, (1 + mass) / 2])
        return float(low), float(high)

    def describe(self) -> str:
        """The rating and the rated Beta in words, as reports and `priors check` print them."""
        low, high = self.interval()
        return (f"rated {self.claim.rating} (weight {self.rated:.2f}, {self.share:.0%} of it "
                f"within its document's budget) → Beta({self.alpha:.2f}, {self.beta:.2f}), "
                f"{self.pseudo_observations:.2f} pseudo-observations, mean {self.mean:.0%}, "
                f"90% in {low:.0%}–{high:.0%}")

    def logp(self, p: np.ndarray) -> np.ndarray:
        """Log density of the rated constraint at probabilities `p`."""
        from scipy import stats

        return stats.beta(self.alpha, self.beta).logpdf(p)


@dataclass(frozen=True)
class Document:
    """One source's claims and what they weigh together (see the module docs)."""

    source: Source
    budget: float  # pseudo-observations the document may carry
    rated: float  # what its rated claims would carry without the budget
    constraints: tuple[Constraint, ...]

    @classmethod
    def of(cls, claim_set: ClaimSet) -> Document:
        source = claim_set.source
        rated = [Constraint.from_claim(c, source.published) for c in claim_set.claims]
        by_quote: dict[str, list[Constraint]] = {}
        for c in rated:
            by_quote.setdefault(c.claim.quote, []).append(c)
        sentence = {c.claim.id: max(o.pseudo_observations for o in group)
                    / max(sum(o.pseudo_observations for o in group), 1e-12)
                    for group in by_quote.values() for c in group}
        total = sum(c.pseudo_observations * sentence[c.claim.id] for c in rated)
        budget = EVIDENCE_BUDGET * RELIABILITY_WEIGHT[source.reliability]
        scale = min(1.0, budget / total) if total > 0 else 1.0
        return cls(source, budget, sum(c.pseudo_observations for c in rated),
                   tuple(dataclasses.replace(c, share=sentence[c.claim.id] * scale)
                         for c in rated))

    @property
    def used(self) -> float:
        """Pseudo-observations the document's claims carry after the budget."""
        return sum(c.pseudo_observations for c in self.constraints)


@dataclass(frozen=True)
class Conflict:
    """Two claims that cannot both hold: `narrower`'s event is contained in `wider`'s."""

    narrower: Claim
    wider: Claim

    def __str__(self) -> str:
        n, w = self.narrower, self.wider
        return (f"'{n.id}' says P({n.scenario} {n.horizon.phrase}) >= {n.stated[0]:.0%}, "
                f"but '{w.id}' says P({w.scenario} {w.horizon.phrase}) <= {w.stated[1]:.0%}, "
                f"which contains it")


@dataclass(frozen=True)
class Priors:
    """The claims and scenarios of one priors directory."""

    directory: Path
    scenarios: dict[str, Scenario]
    claim_sets: tuple[ClaimSet, ...]

    @property
    def claims(self) -> tuple[Claim, ...]:
        return tuple(c for cs in self.claim_sets for c in cs.claims)

    def constraints(self) -> list[Constraint]:
        """Every claim's constraint, in file order, within its document's budget."""
        return [c for d in self.documents() for c in d.constraints]

    def documents(self) -> list[Document]:
        """Each claims file's document with its budget and its claims' constraints."""
        return [Document.of(cs) for cs in self.claim_sets]

    def conflicts(self) -> list[Conflict]:
        """Every ordered pair of claims that contradict each other (see module docs)."""
        return [Conflict(a, b) for a in self.claims for b in self.claims
                if a is not b and self._contains(b.scenario, a.scenario)
                and a.horizon <= b.horizon and a.stated[0] > b.stated[1]]

    def _contains(self, outer: str, inner: str) -> bool:
        """Whether scenario `inner` happening means `outer` happens: a scenario of a union, or a
        union whose members all are in the other (two unions, or a union and itself)."""
        return set(self.scenarios[inner].members) <= set(self.scenarios[outer].members)

    def files(self) -> dict[str, str]:
        """Every file that defines these priors: path relative to the priors folder -> text."""
        paths = sorted({cs.file for cs in self.claim_sets} | {cs.source.document
                                                               for cs in self.claim_sets}
                       | {s.file for s in self.scenarios.values()})
        return {os.path.relpath(p, self.directory): p.read_text(encoding="utf-8") for p in paths}

    def digest(self) -> str:
        """SHA-256 over every file that defines these priors (names and contents)."""
        h = hashlib.sha256()
        for name, text in self.files().items():
            h.update(Path(name).name.encode() + b"\0" + text.encode() + b"\0")
        return h.hexdigest()


def load_priors(directory: Path) -> Priors:
    """Load `directory/scenarios/*.toml` and `directory/claims/*.toml`, cross-checked; each
    claims file's source document must lie inside `directory`."""
    scenarios = load_scenarios(directory / "scenarios")
    files = sorted((directory / "claims").glob("*.toml"))
    if not files:
        raise PriorSpecError(directory / "claims", ["no claims files (*.toml)"])
    return Priors(directory, scenarios,
                  tuple(load_claims(f, set(scenarios), root=directory) for f in files))
