"""The one schema: feature order, rules and the request model."""

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from fraud.schema import (
    EXAMPLE_TRANSACTION,
    FEATURE_NAMES,
    FEATURES_BY_NAME,
    Feedback,
    ShareChange,
    Transaction,
    to_matrix,
)


def test_feature_order_is_the_seeds():
    assert FEATURE_NAMES == ("amount", "hour", "merchant_risk", "card_age_days", "distance_km",
                             "num_recent_txns", "is_international")


def test_example_is_valid_and_maps_to_the_feature_order():
    t = Transaction(**EXAMPLE_TRANSACTION)
    assert t.features() == [250.0, 23.0, 0.8, 15.0, 500.0, 10.0, 1.0]
    assert to_matrix([t, t]).shape == (2, 7)
    assert to_matrix([t])[0, FEATURE_NAMES.index("distance_km")] == 500.0


@pytest.mark.parametrize(("field", "value", "words"), [
    ("amount", 0, "amount must be a finite number > 0"),
    ("amount", -3.5, "amount must be a finite number > 0"),
    ("amount", math.nan, "amount must be a finite number"),
    ("amount", math.inf, "amount must be a finite number"),
    ("amount", "12", "amount must be a finite number"),
    ("hour", 24, "hour must be an integer >= 0 and <= 23"),
    ("hour", -1, "hour must be an integer >= 0 and <= 23"),
    ("hour", 3.5, "hour must be an integer"),
    ("merchant_risk", 1.01, "merchant_risk must be a finite number >= 0 and <= 1"),
    ("card_age_days", -1, "card_age_days must be a finite number >= 0"),
    ("distance_km", -0.1, "distance_km must be a finite number >= 0"),
    ("num_recent_txns", -2, "num_recent_txns must be an integer >= 0"),
    ("is_international", 2, "is_international must be an integer >= 0 and <= 1"),
    ("is_international", True, "is_international must be an integer"),
    ("hour", None, "hour must be an integer"),
])
def test_bad_values_name_the_field_and_the_rule(field, value, words):
    with pytest.raises(ValidationError) as err:
        Transaction(**{**EXAMPLE_TRANSACTION, field: value})
    (error,) = err.value.errors()
    assert error["loc"] == (field,)
    assert words in error["msg"]


def test_missing_field_is_named():
    body = dict(EXAMPLE_TRANSACTION)
    del body["merchant_risk"]
    with pytest.raises(ValidationError) as err:
        Transaction(**body)
    assert err.value.errors()[0]["loc"] == ("merchant_risk",)


def test_boundaries_are_valid():
    t = Transaction(**{**EXAMPLE_TRANSACTION, "hour": 0, "merchant_risk": 1.0,
                       "card_age_days": 0, "num_recent_txns": 0, "is_international": 0,
                       "amount": 0.01})
    assert t.hour == 0 and t.merchant_risk == 1.0


def test_every_feature_has_a_description_and_rule():
    schema = Transaction.model_json_schema()
    for name in FEATURE_NAMES:
        assert FEATURES_BY_NAME[name].rule() in schema["properties"][name]["description"]
    assert np.isfinite(to_matrix([Transaction(**EXAMPLE_TRANSACTION)])).all()


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_the_published_schema_states_each_rule(name):
    """The bounds a client reads in the OpenAPI schema are the ones the service applies."""
    feature = FEATURES_BY_NAME[name]
    prop = Transaction.model_json_schema()["properties"][name]
    low = "minimum" if feature.low_inclusive else "exclusiveMinimum"
    assert prop[low] == feature.min_value
    assert prop["maximum"] == feature.max_value  # LIMIT (2**53 - 1) where the file has none
    assert prop["type"] == ("integer" if feature.integer else "number")
    edge = {**EXAMPLE_TRANSACTION, name: feature.low}
    if feature.low_inclusive:
        Transaction.model_validate_json(json.dumps(edge))
    else:
        with pytest.raises(ValidationError):
            Transaction.model_validate_json(json.dumps(edge))
    top = prop["maximum"]
    Transaction.model_validate_json(json.dumps({**EXAMPLE_TRANSACTION, name: top}))
    above = int(top) + 1 if feature.integer else top * 1.5
    with pytest.raises(ValidationError) as err:  # the same rule, the same words
        Transaction.model_validate_json(json.dumps({**EXAMPLE_TRANSACTION, name: above}))
    assert feature.rule() in str(err.value)


def test_the_int64_overflow_schemathesis_found_is_a_400_naming_the_rule():
    """Issue 23: 9223372036854775809 passed the schema (no maximum) and the service refused
    it (400, ST202); now the published maximum refuses it, in the same words."""
    with pytest.raises(ValidationError) as err:
        Transaction.model_validate_json(json.dumps(
            {**EXAMPLE_TRANSACTION, "num_recent_txns": 9223372036854775809}))
    assert "num_recent_txns must be an integer >= 0 and <= 9007199254740991" in str(err.value)


@pytest.mark.parametrize("raw", ['"yes"', '"true"', "1", "0", "null", '"false"'])
def test_a_label_is_a_json_boolean_and_nothing_else(raw):
    with pytest.raises(ValidationError) as err:
        Feedback.model_validate_json(f'{{"request_id": "abc", "is_fraud": {raw}}}')
    assert err.value.errors()[0]["loc"] == ("is_fraud",)


def test_true_and_false_are_labels():
    for raw, value in (("true", True), ("false", False)):
        assert Feedback.model_validate_json(
            f'{{"request_id": "abc", "is_fraud": {raw}}}').is_fraud is value


@pytest.mark.parametrize("raw", ["false", "true", '"0.5"', "null", "1.5", "-0.1"])
def test_a_share_is_a_number_from_0_to_1(raw):
    with pytest.raises(ValidationError) as err:
        ShareChange.model_validate_json(f'{{"challenger_share": {raw}}}')
    assert err.value.errors()[0]["loc"] == ("challenger_share",)
    with pytest.raises(ValidationError):  # as FastAPI validates it: from parsed JSON
        ShareChange.model_validate(json.loads(f'{{"challenger_share": {raw}}}'))


@pytest.mark.parametrize(("raw", "value"), [("0", 0.0), ("1", 1.0), ("0.25", 0.25)])
def test_shares_in_range_are_taken(raw, value):
    assert ShareChange.model_validate_json(f'{{"challenger_share": {raw}}}'
                                           ).challenger_share == value
    assert ShareChange.model_validate(json.loads(f'{{"challenger_share": {raw}}}')
                                      ).challenger_share == value


def test_the_matrix_is_each_rows_encoded_features():
    rows = [Transaction(**{**EXAMPLE_TRANSACTION, "user_id": f"u{i}", "amount": 0.5 + i,
                           "hour": i % 24, "is_international": i % 2}) for i in range(5)]
    matrix = to_matrix(rows)
    assert matrix.dtype == np.float64
    assert matrix.tolist() == [t.features() for t in rows]
    assert to_matrix([]).shape == (0, len(FEATURE_NAMES))
