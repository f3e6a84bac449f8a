import dataclasses
import datetime as dt
import itertools

import numpy as np
import pytest
from scipy import integrate, stats

from forecast.claims import CREDIBILITY, RELIABILITY, TERM_RANGES, Claim, Horizon, Rating
from forecast.priors import STATED_MASS, Constraint, load_priors, rating_weight
from tests.conftest import ROOT

MEAN_TOL = 1e-3  # maxent fixes the mean; this allows for its optimiser's tolerance
MASS_TOL = 5e-3


def claim(scenario="s", horizon="24 months", term=None, interval=None, point=None,
          rating="A1", ident="c"):
    if term is None and interval is None and point is None:
        term = "likely"
    return Claim(ident, "q", scenario, Horizon.parse(horizon), term, interval, point,
                 Rating(rating[0], int(rating[1])), None, ROOT)


@pytest.mark.parametrize("term", list(TERM_RANGES))
def test_an_a1_term_has_its_mean_at_the_midpoint_and_90_percent_in_its_range(term):
    low, high = TERM_RANGES[term]
    c = Constraint.from_claim(claim(term=term))
    beta = stats.beta(c.alpha, c.beta)
    assert beta.mean() == pytest.approx((low + high) / 2, abs=MEAN_TOL)
    assert beta.cdf(high) - beta.cdf(low) == pytest.approx(STATED_MASS, abs=MASS_TOL)


def test_an_interval_is_read_like_a_term():
    c = Constraint.from_claim(claim(interval=(0.2, 0.55)))
    beta = stats.beta(c.alpha, c.beta)
    assert beta.mean() == pytest.approx(0.375, abs=MEAN_TOL)
    assert beta.cdf(0.55) - beta.cdf(0.2) == pytest.approx(STATED_MASS, abs=MASS_TOL)


def test_a_number_keeps_its_mean_with_the_precision_of_its_term():
    c = Constraint.from_claim(claim(point=0.3))
    unlikely = Constraint.from_claim(claim(term="unlikely"))
    assert c.mean == pytest.approx(0.3)
    assert c.concentration == pytest.approx(unlikely.concentration)


def test_rating_tempers_the_density_as_a_power_prior():
    """Beta(a, b) ** w, normalised, is the rated Beta: checked by numerical integration."""
    base = Constraint.from_claim(claim(term="unlikely"))
    rated = Constraint.from_claim(claim(term="unlikely", rating="C3"))
    w = rated.weight
    a, b = base.alpha, base.beta
    norm, _ = integrate.quad(lambda p: stats.beta(a, b).pdf(p) ** w, 0, 1)
    for p in (0.05, 0.3, 0.7):
        assert stats.beta(a, b).pdf(p) ** w / norm == pytest.approx(
            np.exp(rated.logp(np.array(p))), rel=1e-6)
    # tempering keeps the A1 constraint's most likely value
    assert (rated.alpha - 1) / (rated.concentration - 2) == pytest.approx((a - 1) / (a + b - 2))


def test_weaker_ratings_give_strictly_weaker_constraints():
    letters, numbers = list(RELIABILITY), list(CREDIBILITY)
    for n in numbers:
        conc = [Constraint.from_claim(claim(rating=f"{r}{n}")).concentration for r in letters]
        assert all(x > y for x, y in itertools.pairwise(conc)), conc
    for r in letters:
        conc = [Constraint.from_claim(claim(rating=f"{r}{n}")).concentration for n in numbers]
        assert all(x > y for x, y in itertools.pairwise(conc)), conc
    assert rating_weight(Rating("A", 1)) == 1.0


def test_an_f6_claim_adds_little():
    f6 = Constraint.from_claim(claim(term="unlikely", rating="F6"))
    low, high = f6.interval()
    assert f6.concentration < 2.5 and high - low > 0.8  # close to the uniform Beta(1, 1)


def test_the_bundled_claims_are_coherent():
    assert load_priors(ROOT / "priors").conflicts() == []


def _priors_with(*claims):
    priors = load_priors(ROOT / "priors")
    cs = dataclasses.replace(priors.claim_sets[0], claims=tuple(claims))
    return dataclasses.replace(priors, claim_sets=(cs,))


def test_a_probability_that_falls_as_the_horizon_grows_is_a_conflict():
    early = claim("proxy-strikes", "3 months", term="likely", ident="early")
    late = claim("proxy-strikes", "24 months", term="unlikely", ident="late")
    conflicts = _priors_with(early, late).conflicts()
    assert [(c.narrower.id, c.wider.id) for c in conflicts] == [("early", "late")]
    assert str(conflicts[0]) == ("'early' says P(proxy-strikes within 3 months) >= 55%, but "
                                 "'late' says P(proxy-strikes within 24 months) <= 45%, "
                                 "which contains it")


def test_a_scenario_likelier_than_its_union_is_a_conflict():
    member = claim("hybrid-retaliation", "4 weeks", term="very likely", ident="member")
    union = claim("any-retaliation", "3 months", term="unlikely", ident="union")
    assert [(c.narrower.id, c.wider.id) for c in _priors_with(member, union).conflicts()] == [
        ("member", "union")]


def test_a_union_likelier_than_a_union_that_holds_it_is_a_conflict():
    """Containment across unions: hybrid-or-proxy lies inside any-retaliation."""
    priors = _priors_with(
        claim("hybrid-or-proxy", "4 weeks", term="almost certain", ident="pair"),
        claim("any-retaliation", "4 weeks", term="unlikely", ident="any"),
        claim("hybrid-or-iran", "4 weeks", term="almost certain", ident="other"))
    pair = dataclasses.replace(priors.scenarios["any-retaliation"], id="hybrid-or-proxy",
                               union=("hybrid-retaliation", "proxy-strikes"))
    other = dataclasses.replace(pair, id="hybrid-or-iran",
                                union=("hybrid-retaliation", "support-via-iran"))
    priors = dataclasses.replace(priors, scenarios={**priors.scenarios, pair.id: pair,
                                                    other.id: other})
    assert sorted((c.narrower.id, c.wider.id) for c in priors.conflicts()) == [
        ("other", "any"), ("pair", "any")]  # two unions that overlap do not contain each other


def test_rising_probabilities_and_overlapping_ranges_are_not_conflicts():
    claims = (claim("proxy-strikes", "3 months", term="unlikely", ident="a"),
              claim("proxy-strikes", "24 months", term="likely", ident="b"),
              claim("proxy-strikes", "24 months", interval=(0.4, 0.6), ident="c"),
              claim("proxy-strikes", "ever", term="very likely", ident="d"),
              claim("direct-military-action", "4 weeks", term="almost certain", ident="e"))
    assert _priors_with(*claims).conflicts() == []


def test_digest_changes_when_a_prior_file_changes(priors_dir):
    before = load_priors(priors_dir).digest()
    path = priors_dir / "claims" / "allies-to-adversaries.toml"
    path.write_text(path.read_text().replace('term = "very likely"', 'term = "likely"', 1))
    assert load_priors(priors_dir).digest() != before


def test_one_documents_claims_together_stay_within_its_budget():
    """A document counts as a few observations: its rated claims would carry over 100
    pseudo-observations; within the budget of a C source they carry 3."""
    from forecast.priors import EVIDENCE_BUDGET, RELIABILITY_WEIGHT

    (document,) = load_priors(ROOT / "priors").documents()
    assert document.rated > 50
    assert document.budget == pytest.approx(EVIDENCE_BUDGET * RELIABILITY_WEIGHT["C"])
    assert document.used == pytest.approx(document.budget)
    assert all(c.claim.horizon.weeks is None or c.published == dt.date(2025, 7, 1)
               for c in document.constraints)


def test_claims_quoting_one_sentence_share_its_weight():
    """Two claims read from one sentence carry together what the stronger carries alone."""
    (document,) = load_priors(ROOT / "priors").documents()
    by_id = {c.claim.id: c for c in document.constraints}
    alone = {i: c.rated * (sum(c.base) - 2) for i, c in by_id.items()}
    scale = document.used / sum(
        alone[i] * (max(alone[j] for j in group) / sum(alone[j] for j in group))
        for group in ({"retaliation-not-within-weeks", "no-direct-strike"},
                      {"strike-at-corridors-eventually", "strike-at-regime-eventually"},
                      *({i} for i in alone if i not in {
                          "retaliation-not-within-weeks", "no-direct-strike",
                          "strike-at-corridors-eventually", "strike-at-regime-eventually"}))
        for i in group)
    pair = ("retaliation-not-within-weeks", "no-direct-strike")
    together = sum(by_id[i].pseudo_observations for i in pair)
    assert together == pytest.approx(max(alone[i] for i in pair) * scale)


def test_a_second_document_has_its_own_date_and_budget(priors_dir):
    text = (priors_dir / "claims" / "allies-to-adversaries.toml").read_text()
    second = text.replace("published = 2025-07-01", "published = 2026-03-01").replace(
        'reliability = "C"', 'reliability = "A"', 1)
    (priors_dir / "claims" / "second.toml").write_text(second)
    documents = load_priors(priors_dir).documents()
    assert [d.budget for d in documents] == pytest.approx([3.0, 5.0])
    assert {c.published for c in documents[1].constraints} == {dt.date(2026, 3, 1)}
    assert documents[1].used == pytest.approx(5.0)


def test_claims_as_stated_are_the_unrated_betas_outside_the_budget():
    """The validation's worlds where the document is right take each claim at its word: its A1
    Beta, 90% in the stated range, while the model weighs the same claim within the budget."""
    from forecast.inputs import claim_terms

    priors = load_priors(ROOT / "priors")
    for rated, stated, c in zip(claim_terms(priors), claim_terms(priors, as_stated=True),
                                priors.constraints(), strict=True):
        assert (stated.alpha, stated.beta) == c.base
        assert (rated.alpha, rated.beta) == (c.alpha, c.beta)
        assert stated.alpha + stated.beta > rated.alpha + rated.beta
        low, high = c.claim.stated
        assert stats.beta(stated.alpha, stated.beta).cdf(high) - stats.beta(
            stated.alpha, stated.beta).cdf(low) == pytest.approx(STATED_MASS, abs=MASS_TOL)
