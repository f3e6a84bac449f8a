import math
import textwrap
from pathlib import Path

import pytest

from forecast.claims import TERM_RANGES, Horizon, load_claims
from forecast.errors import PriorSpecError
from forecast.priors import load_priors
from tests.conftest import DOCUMENT, ROOT

CLAIMS = ROOT / "priors" / "claims" / "allies-to-adversaries.toml"
SCENARIOS = ("hybrid-retaliation", "support-via-iran", "destabilization-from-within",
             "caspian-corridor-sabotage", "proxy-strikes", "direct-military-action",
             "any-retaliation")


def test_every_quote_occurs_verbatim_in_the_document():
    text = DOCUMENT.read_text(encoding="utf-8")
    claim_set = load_claims(CLAIMS)
    quotes = [c.quote for c in claim_set.claims] + [t.quote for t in claim_set.triggers]
    assert quotes
    for quote in quotes:
        assert quote in text, quote


def test_document_is_kept_unmodified_with_its_attribution():
    seed = ROOT.parent / "shared" / "seed" / "allies-to-adversaries.txt"
    if seed.exists():
        assert DOCUMENT.read_bytes() == seed.read_bytes()
    attribution = (DOCUMENT.parent / "ATTRIBUTION.md").read_text()
    assert "Lida Nalbandyan" in attribution and "Octopus Media Group" in attribution


def test_the_documents_claims_cover_every_scenario_and_the_headline():
    claims = load_priors(ROOT / "priors").claims
    assert {c.scenario for c in claims} == set(SCENARIOS)
    headline = [c for c in claims if c.quote == "Yes. But not today — and not directly."]
    assert {(c.scenario, c.term) for c in headline} == {
        ("any-retaliation", "very unlikely"), ("direct-military-action", "very unlikely")}
    eventually = [c for c in claims if c.scenario == "any-retaliation" and c.horizon.weeks is None]
    assert [c.term for c in eventually] == ["almost certain"]
    weeks = [c for c in claims if c.scenario == "any-retaliation" and c.horizon.weeks]
    assert all(c.horizon.weeks <= 5 for c in weeks)


def test_triggers_are_dated_and_coded():
    triggers = {t.id: t for t in load_claims(CLAIMS).triggers}
    assert {"peacekeepers-withdrawn", "russian-media-banned", "journalists-expelled",
            "north-south-corridor-stalled"} <= set(triggers)
    assert triggers["russian-media-banned"].date.year == 2024


def test_source_rating_is_justified():
    source = load_claims(CLAIMS).source
    assert source.reliability == "C"
    assert "op" in source.rationale.lower() and len(source.rationale) > 200


@pytest.mark.parametrize(("text", "weeks"), [
    ("4 weeks", 4.0), ("3 months", 365.2425 / 7 / 4), ("24 months", 365.2425 / 7 * 2),
    ("2 years", 365.2425 / 7 * 2), ("14 days", 2.0), ("1 week", 1.0), ("ever", None),
])
def test_horizons_parse_to_weeks(text, weeks):
    parsed = Horizon.parse(text)
    assert parsed.weeks == weeks if weeks is None else math.isclose(parsed.weeks, weeks)


@pytest.mark.parametrize("text", ["soon", "3", "months", "-2 weeks", "0 days", "3 fortnights"])
def test_bad_horizons_are_refused(text):
    with pytest.raises(ValueError, match="expected a duration"):
        Horizon.parse(text)


def test_horizons_order_with_ever_last():
    assert Horizon.parse("4 weeks") <= Horizon.parse("3 months") <= Horizon.parse("ever")
    assert not Horizon.parse("ever") <= Horizon.parse("24 months")


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "doc.txt").write_text("Russia won’t declare war. It will act through:\n")
    path = tmp_path / "claims.toml"
    path.write_text(textwrap.dedent("""\
        [source]
        title = "T"
        author = "A"
        document = "doc.txt"
        published = 2025-07-01
        reliability = "C"
        rationale = "R"
        """) + textwrap.dedent(body))
    return path


GOOD = """
[[claims]]
id = "c1"
quote = "It will act through:"
scenario = "hybrid-retaliation"
horizon = "24 months"
term = "very likely"
credibility = 3
"""


def test_a_valid_file_parses_into_typed_claims(tmp_path):
    claim = load_claims(_write(tmp_path, GOOD), {"hybrid-retaliation"}).claims[0]
    assert (claim.term, claim.stated, str(claim.rating)) == ("very likely", (0.8, 0.95), "C3")


@pytest.mark.parametrize(("change", "problem"), [
    (("horizon", '"soon"'),
     "claims[0].horizon: expected a duration like '3 months', '4 weeks' or 'ever', got 'soon'"),
    (("term", '"likley"'), "claims[0].term: unknown term 'likley'; expected one of ICD 203's "
     + ", ".join(f"'{k}'" for k in TERM_RANGES) + " (did you mean 'likely'?)"),
    (("credibility", "7"),
     "claims[0].credibility: expected an integer 1–6 (Admiralty code), got 7"),
    (("credibility", '"3"'),
     "claims[0].credibility: expected an integer 1–6 (Admiralty code), got '3'"),
    (("scenario", '"hybrid"'), "claims[0].scenario: unknown scenario 'hybrid'"),
    (("quote", '"Russia will invade."'),
     "claims[0].quote: not found verbatim in doc.txt"),
])
def test_each_schema_error_names_the_key(tmp_path, change, problem):
    key, value = change
    body = "\n".join(f"{key} = {value}" if line.startswith(f"{key} =") else line
                     for line in GOOD.splitlines())
    path = _write(tmp_path, body)
    with pytest.raises(PriorSpecError) as err:
        load_claims(path, {"hybrid-retaliation", "proxy-strikes"})
    assert str(err.value) == f"{path}: {problem}"


def test_probability_outside_0_1_and_a_bad_interval(tmp_path):
    body = GOOD.replace('term = "very likely"', "probability = 1.5")
    body += GOOD.replace('"c1"', '"c2"').replace('term = "very likely"', "interval = [0.6, 0.2]")
    path = _write(tmp_path, body)
    with pytest.raises(PriorSpecError) as err:
        load_claims(path)
    assert str(err.value) == (
        f"{path}: claims[0].probability: expected a probability strictly between 0 and 1, "
        "got 1.5; claims[1].interval: expected [low, high] with 0 < low < high < 1, got [0.6, 0.2]")


def test_every_error_in_a_file_is_reported_at_once_with_did_you_mean(tmp_path):
    body = GOOD.replace("horizon =", "horizn =").replace('term = "very likely"', "") + """
[[claims]]
id = "c1"
quote = "It will act through:"
scenario = "hybrid-retaliation"
horizon = "ever"
term = "likely"
probability = 0.3
credibility = 2
"""
    path = _write(tmp_path, body)
    with pytest.raises(PriorSpecError) as err:
        load_claims(path)
    assert err.value.problems == [
        "claims[0].horizn: unknown key (did you mean 'horizon'?)",
        "claims[1].id: duplicate id 'c1'",
        "claims[0].horizon: missing",
        "claims[0].term: give exactly one of term, probability or interval",
        "claims[1].term: give exactly one of term, probability or interval "
        "(found term, probability)",
    ]


def test_bad_toml_is_one_error_naming_the_file(tmp_path):
    path = _write(tmp_path, "[[claims]\nid = 1")
    with pytest.raises(PriorSpecError, match=r"claims\.toml: invalid TOML: .*line 8"):
        load_claims(path)
