"""The document's headline as the model reads it from the claims alone, for several evidence
budgets.

"Yes. But not today — and not directly": from the claims alone (no event data), P(some
retaliation in any of the five forms within 4 weeks of publication), P(some by 24 months after
it) and P(direct military action by 24 months), beside the same figures from the broad priors
alone. The bundled budget is `forecast.priors.EVIDENCE_BUDGET`; the others show what a
different weight on the document would imply.

    python validation/headline.py [--budgets 5,10,20] [--out reports/validation]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import forecast.priors
from forecast.forecasts import claim_draws
from forecast.model import ClaimTerm
from forecast.prior_check import claims_only_posterior
from forecast.priors import load_priors
from forecast.workspace import bundled_priors
from validation import measured_at

FIGURES = {"within_4_weeks": 4.0, "by_24_months": 104.0, "direct_by_24_months": 104.0}


def headline(budget: float) -> dict:
    """The three figures with the claims (at `budget`) and without them."""
    forecast.priors.EVIDENCE_BUDGET = budget
    priors = load_priors(bundled_priors())
    published = priors.claim_sets[0].source.published
    forms = priors.scenarios["any-retaliation"].union
    counter = tuple(s for s, spec in priors.scenarios.items() if spec.counter)
    terms = [ClaimTerm(name, counter if name.startswith("direct") else forms, weeks, 1, 1,
                       published) for name, weeks in FIGURES.items()]
    out = {"budget_of_the_document": priors.documents()[0].budget}
    with tempfile.TemporaryDirectory() as cache:
        for kind, with_claims in (("claims_only", True), ("no_claims", False)):
            tree = claims_only_posterior(priors, Path(cache), with_claims=with_claims)
            p = claim_draws(tree.posterior.to_dataset(), tree["constant_data"].to_dataset(),
                            terms).mean(axis=0)
            out[kind] = dict(zip(FIGURES, map(float, p), strict=True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default=f"{forecast.priors.EVIDENCE_BUDGET:g},10,20")
    parser.add_argument("--out", type=Path, default=Path("reports/validation"))
    args = parser.parse_args()
    bundled = forecast.priors.EVIDENCE_BUDGET
    result = {"measured_at_commit": measured_at(), "bundled_budget": bundled, "budgets": {}}
    for budget in map(float, args.budgets.split(",")):
        result["budgets"][f"{budget:g}"] = h = headline(budget)
        print(f"EVIDENCE_BUDGET {budget:g} (the op-ed: {h['budget_of_the_document']:g} "
              "pseudo-observations): " + ", ".join(
                  f"{k} {h['claims_only'][k]:.1%} (no claims {h['no_claims'][k]:.1%})"
                  for k in FIGURES), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "headline.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
