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

Coherence. P(event by h) cannot fall as h grows, and a scenario cannot be likelier than a union
that contains it. So a claim about event E₁ within h₁ and one about E₂ ⊇ E₁ within h₂ ≥ h₁
contradict each other when E₁'s stated lower bound exceeds E₂'s stated upper bound. Such pairs are
reported as conflicts; they are never averaged away.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from forecast.claims import TERM_RANGES, Claim, ClaimSet, Rating, load_claims
from forecast.errors import PriorSpecError
from forecast.scenarios import Scenario, load_scenarios

RELIABILITY_WEIGHT = {"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.4, "E": 0.2, "F": 0.1}
CREDIBILITY_WEIGHT = {1: 1.0, 2: 0.8, 3: 0.6, 4: 0.4, 5: 0.2, 6: 0.1}
STATED_MASS = 0.9


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
    """A claim as a Beta density on P(scenario within horizon), tempered by its rating."""

    claim: Claim
    weight: float
    base: tuple[float, float]  # the unrated (A1) Beta's a, b

    @classmethod
    def from_claim(cls, claim: Claim) -> Constraint:
        base = _point_beta(claim.point) if claim.point is not None else maxent_beta(*claim.stated)
        return cls(claim, rating_weight(claim.rating), base)

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
        low, high = stats.beta(self.alpha, self.beta).ppf([(1 - mass) / 2, (1 + mass) / 2])
        return float(low), float(high)

    def describe(self) -> str:
        """The rating and the rated Beta in words, as reports and `priors check` print them."""
        low, high = self.interval()
        return (f"rated {self.claim.rating} (weight {self.weight:.2f}) → Beta({self.alpha:.1f}, "
                f"{self.beta:.1f}), mean {self.mean:.0%}, 90% in {low:.0%}–{high:.0%}")

    def logp(self, p: np.ndarray) -> np.ndarray:
        """Log density of the rated constraint at probabilities `p`."""
        return stats.beta(self.alpha, self.beta).logpdf(p)


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
        return [Constraint.from_claim(c) for c in self.claims]

    def conflicts(self) -> list[Conflict]:
        """Every ordered pair of claims that contradict each other (see module docs)."""
        return [Conflict(a, b) for a in self.claims for b in self.claims
                if a is not b and self._contains(b.scenario, a.scenario)
                and a.horizon <= b.horizon and a.stated[0] > b.stated[1]]

    def _contains(self, outer: str, inner: str) -> bool:
        return outer == inner or inner in self.scenarios[outer].union

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
