"""`python -m training.promote`: refuses without evidence, swaps roles and aliases with it."""

import subprocess

import pytest
from helpers import PYTHON, ROOT, train

from fraud.config import load_ab_config
from fraud.experiment.decisions import ArmModel
from fraud.experiment.live import Experiment
from fraud.schema import ARMS
from fraud.store.writer import Ledger

pytestmark = pytest.mark.slow

RESOLVE = ("from fraud.serving.models import resolve_arms; "
           "from fraud.config import load_ab_config; "
           "print(*(m.tag for m in resolve_arms(load_ab_config()).values()))")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return train(tmp_path_factory.mktemp("promote"), rows=20_000)


def _arms(store):
    out = subprocess.run([PYTHON, "-c", RESOLVE], cwd=ROOT, env=store.env(),
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def _seed(path, tags, recall_a, recall_b, n=200):
    """An experiment of the served tags with n labelled fraud decisions per arm."""
    arms = {arm: ArmModel(arm, tag, 0.5, {}) for arm, tag in zip(ARMS, tags, strict=True)}
    with Ledger(path) as led:
        exp = Experiment(load_ab_config(), arms, led)
        for arm, recall in (("model_a", recall_a), ("model_b", recall_b)):
            flagged = int(n * recall)
            users = [f"{arm}-u{i}" for i in range(n)]
            out = exp.record(users, [arm] * n, [0.9 if i < flagged else 0.1 for i in range(n)],
                             5.0, "predict")
            for p in out:
                led.label(p.request_id, True)


def _promote(store, ledger, *extra):
    return subprocess.run([PYTHON, "-m", "training.promote", "--ledger", str(ledger), *extra],
                          cwd=ROOT, env=store.env(), capture_output=True, text=True)


def test_refuses_unless_challenger_better_then_swaps(store, tmp_path):
    from mlflow import MlflowClient

    before = _arms(store)
    worse = tmp_path / "worse.sqlite"
    _seed(worse, before, recall_a=0.9, recall_b=0.5)
    refused = _promote(store, worse)
    assert refused.returncode == 1
    assert "verdict is 'challenger_worse'" in refused.stderr
    assert _arms(store) == before

    better = tmp_path / "better.sqlite"
    _seed(better, before, recall_a=0.5, recall_b=0.95)
    done = _promote(store, better)
    assert done.returncode == 0, done.stderr
    assert _arms(store) == before[::-1]
    client = MlflowClient(tracking_uri=store.mlflow_uri)
    champion = client.get_model_version_by_alias("fraud-detector", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.tags["bentoml_model"] == before[1].split(":")[0]
    with Ledger(better) as led:
        assert led.get_state("promotion")["champion"] == before[1]
        ended = led.experiments()[0]  # the promotion ended the experiment, keeping its verdict
        assert ended.ended_at and ended.end_reason.startswith("promotion")
        assert ended.final["verdict"] == "challenger_better"


def test_force_overrides(store, tmp_path):  # runs after the swap above: swaps back
    before = _arms(store)
    done = _promote(store, tmp_path / "none.sqlite", "--force")
    assert done.returncode == 0, done.stderr
    assert "forced" in done.stdout
    assert _arms(store) == before[::-1]
