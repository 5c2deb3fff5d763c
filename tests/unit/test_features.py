"""configs/features.yaml: other schemas (booleans, categories), their rules, encoding and hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from fraud.features import (
    FeatureConfigError,
    differences,
    features_path,
    load_features,
    schema_hash,
    schema_spec,
)
from fraud.schema import FEATURES, SCHEMA_HASH, quick_check, transaction_model

SHOP = """
features:
  - {name: amount, description: Amount., type: number, min: 0, min_exclusive: true}
  - {name: channel, description: Where it was paid., type: category,
     values: [web, app, pos], example: app}
  - {name: country, description: Merchant country., type: category, values: [FR, DE],
     unseen: other, reason: "merchant in {value}"}
  - {name: is_3ds, description: 3-D Secure used., type: boolean}
  - {name: items, description: Items in the basket., type: integer, min: 1, max: 50}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "features.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def shop(tmp_path):
    features = load_features(_write(tmp_path, SHOP))
    return features, transaction_model(features)


def test_the_default_file_is_the_seeds_seven():
    assert features_path().name == "features.yaml"
    assert [f.name for f in FEATURES] == ["amount", "hour", "merchant_risk", "card_age_days",
                                          "distance_km", "num_recent_txns", "is_international"]
    assert schema_hash(schema_spec(load_features())) == SCHEMA_HASH


def test_examples_default_to_valid_values(shop):
    features, model = shop
    examples = {f.name: f.example for f in features}
    assert examples == {"amount": 1.0, "channel": "app", "country": "FR", "is_3ds": False,
                        "items": 26}
    assert model(user_id="u", **examples).features() == [1.0, 1.0, 0.0, 0.0, 26.0]


def test_categories_encode_as_codes_and_other(shop):
    _, model = shop
    body = {"user_id": "u", "amount": 9.5, "channel": "pos", "country": "JP", "is_3ds": True,
            "items": 3}
    assert model(**body).features() == [9.5, 2.0, 2.0, 1.0, 3.0]  # JP: 'other' = code 2


@pytest.mark.parametrize(("field", "value", "words"), [
    ("channel", "phone", "channel must be one of 'web', 'app', 'pos' (got 'phone')"),
    ("channel", 1, "channel must be one of 'web', 'app', 'pos'"),
    ("country", "", "country must be one of 'FR', 'DE'; any other text counts as 'other'"),
    ("is_3ds", 1, "is_3ds must be true or false (got 1)"),
    ("is_3ds", "true", "is_3ds must be true or false"),
    ("items", 0, "items must be an integer >= 1 and <= 50 (got 0)"),
])
def test_bad_values_name_the_field_and_the_rule(shop, field, value, words):
    features, model = shop
    body = {"user_id": "u", **{f.name: f.example for f in features}, field: value}
    with pytest.raises(ValidationError) as err:
        model(**body)
    (error,) = err.value.errors()
    assert error["loc"] == (field,)
    assert words in error["msg"]


def test_the_published_schema_states_categories_and_booleans(shop):
    _, model = shop
    props = model.model_json_schema()["properties"]
    assert list(props) == ["user_id", "amount", "channel", "country", "is_3ds", "items"]
    assert props["channel"]["enum"] == ["web", "app", "pos"]
    assert "enum" not in props["country"] and props["country"]["type"] == "string"
    assert props["is_3ds"]["type"] == "boolean"
    assert props["items"]["minimum"] == 1 and props["items"]["maximum"] == 50
    assert "Rule: must be one of 'web', 'app', 'pos'." in props["channel"]["description"]
    model.model_validate_json(json.dumps({"user_id": "u", "amount": 1, "channel": "web",
                                          "country": "DE", "is_3ds": False, "items": 1}))


def test_codes_decode_back(shop):
    features, _ = shop
    country = features[2]
    assert [country.decode(c) for c in (0, 1, 2)] == ["FR", "DE", "other"]
    assert country.n_codes == 3 and features[1].n_codes == 3


@pytest.mark.parametrize(("text", "words"), [
    ("features: []", "at least 1"),
    ("features:\n  - {name: a, description: x, type: number}\n"
     "  - {name: a, description: y, type: integer}", "listed more than once: a"),
    ("features:\n  - {name: a, description: x, type: number, values: [p]}",
     "only a category has `values`"),
    ("features:\n  - {name: c, description: x, type: category}", "needs `values`"),
    ("features:\n  - {name: b, description: x, type: boolean, min: 0}", "only a number"),
    ("features:\n  - {name: a, description: x, type: number, min: 5, max: 1}", "below min"),
    ("features:\n  - {name: a, description: x, type: number, min: 0, example: -1}",
     "a: example -1 must be a finite number >= 0"),
    ("features:\n  - {name: a, description: x, type: number, minimum: 0}", "minimum"),
    ("features:\n  - {name: user_id, description: x, type: number}", "reserved"),
    ("features:\n  - {name: 'a b', description: x, type: number}", "pattern"),
])
def test_a_bad_file_is_one_clear_error(tmp_path, text, words):
    path = _write(tmp_path, text)
    with pytest.raises(FeatureConfigError) as err:
        load_features(path)
    assert str(path) in str(err.value) and words in str(err.value)


def test_a_missing_file_names_the_setting(tmp_path):
    with pytest.raises(FeatureConfigError, match="FRAUDSERVE_FEATURES"):
        load_features(tmp_path / "nope.yaml")


def test_the_setting_moves_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUDSERVE_FEATURES", str(tmp_path / "mine.yaml"))
    assert features_path() == tmp_path / "mine.yaml"


def test_the_hash_ignores_words_but_not_what_the_model_sees(tmp_path, shop):
    features, _ = shop
    spec = schema_spec(features)
    reworded = load_features(_write(tmp_path, SHOP.replace("Amount.", "How much.")))
    assert schema_hash(schema_spec(reworded)) == schema_hash(spec)
    more = load_features(_write(tmp_path, SHOP.replace("[FR, DE]", "[FR, DE, IT]")))
    assert schema_hash(schema_spec(more)) != schema_hash(spec)
    assert differences(spec, schema_spec(more)) == [
        "country: values was ['FR', 'DE'] in training, ['FR', 'DE', 'IT'] now"]


def test_differences_name_missing_new_and_reordered_features(shop):
    features, _ = shop
    spec = schema_spec(features)
    assert differences(spec, spec) == []
    assert differences(spec, spec[1:]) == ["feature 'amount' is not in the served schema"]
    assert differences(spec[1:], spec) == ["feature 'amount' is new in the served schema"]
    assert differences(spec, spec[::-1])[0].startswith("feature order was ['amount'")


def test_the_amount_feature_is_named_at_the_top(tmp_path):
    from fraud.features import read_file
    from fraud.schema import AMOUNT_FEATURE, AMOUNT_INDEX

    assert (AMOUNT_FEATURE, AMOUNT_INDEX) == ("amount", 0)
    assert read_file(_write(tmp_path, SHOP)).amount_feature is None
    assert read_file(_write(tmp_path, "amount_feature: amount\n" + SHOP)).amount_feature == (
        "amount")
    with pytest.raises(FeatureConfigError, match="'channel' is not a number feature"):
        read_file(_write(tmp_path, "amount_feature: channel\n" + SHOP))


TRICKY = [0, 1, -1, 0.0, 1.0, 0.5, -0.0, 1e-300, 26, 50, 51, 50.0, 2.5, True, False, None,
          "1", "", "app", "web", "JP", "FR", [], {}, float("nan"), float("inf"), -float("inf"),
          2**53 - 1, 2**53, 2**53 + 1, -(2**53), 10**400, 9007199254740993.0, 23, 24, 0.999]


def test_the_quick_test_never_passes_what_check_refuses(shop):
    """schema.quick_check is the happy path in front of check: wherever it says yes, check finds
    nothing, for every kind of feature (the shop's and the seed's) and every odd value."""
    features, _ = shop
    for feature in (*features, *FEATURES):
        for value in TRICKY:
            if quick_check(feature)(value):
                assert feature.check(value) is None, (feature.name, value)


def test_the_quick_test_passes_the_usual_values(shop):
    features, _ = shop
    usual = {"amount": [0.01, 9.5, 3], "channel": ["web", "pos"], "country": ["FR", "JP"],
             "is_3ds": [True, False], "items": [1, 26, 50]}
    for feature in features:
        assert all(quick_check(feature)(v) for v in usual[feature.name]), feature.name
    refused = {"amount": [0, 0.0, -1.0, float("nan"), "1", True], "channel": ["JP", 1, ""],
               "country": ["", 1], "is_3ds": [1, "true"], "items": [0, 51, 2.0, True]}
    for feature in features:  # not all wrong: 2.0 is a valid items, but only check says so
        assert not any(quick_check(feature)(v) for v in refused[feature.name]), feature.name
