"""Deploy-time steps that need no cluster: stamping an overlay with the release (image by
digest, git sha, both model tags), refusing tags and the placeholder digest, and making the
Secrets with random values (kubectl stands in by a small recording fake: the one part that
needs a cluster)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from k8s import container, one

from deploy import release, secrets
from deploy.render import K8S, kustomize

DIGEST = "sha256:" + "3f" * 32
IMAGE = f"registry.example.com/team/fraudserve@{DIGEST}"
MODELS = {"model_a": "fraud_logreg:2vqz6kq3bkq5zxyz", "model_b": "fraud_hgb:u7sdf3kq3bkq5abc"}
SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of deploy/k8s (overlays refer to ../../base): stamping edits files."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    return copy


def objects(overlay: Path) -> tuple[dict, ...]:
    return tuple(d for d in yaml.safe_load_all(kustomize(overlay)) if d)


@pytest.mark.parametrize("name", ["dev", "prod", "rollouts"])
def test_stamp_puts_the_release_on_the_pods_and_the_digest_everywhere(tree: Path,
                                                                      name: str) -> None:
    overlay = tree / "overlays" / name
    target = overlay if name != "rollouts" else tree / "overlays" / "prod"
    release.set_image(target, IMAGE, binary=None)  # what `kustomize edit set image` writes
    release.stamp(target, SHA, MODELS, IMAGE)
    images = release.check(overlay, IMAGE)
    assert set(images) >= {"Deployment/fraudserve/fraudserve",
                           "Job/fraudserve-migrate/migrate"}
    pod = one(objects(overlay), "Deployment", "fraudserve")["spec"]["template"]["metadata"]
    assert pod["labels"]["fraudserve.io/git-sha"] == SHA
    assert pod["labels"]["app.kubernetes.io/version"] == SHA[:12]
    assert pod["labels"]["fraudserve.io/model-a"] == "fraud_logreg.2vqz6kq3bkq5zxyz"
    assert pod["labels"]["fraudserve.io/model-b"] == "fraud_hgb.u7sdf3kq3bkq5abc"
    assert pod["annotations"]["fraudserve.io/model-b"] == MODELS["model_b"]
    assert pod["annotations"]["fraudserve.io/image"] == IMAGE
    # The selector is untouched: a release label must not make a new, orphaning selector.
    deployment = one(objects(overlay), "Deployment", "fraudserve")
    assert "fraudserve.io/git-sha" not in deployment["spec"]["selector"]["matchLabels"]
    assert container(deployment)["image"] == IMAGE


def test_set_image_writes_what_kustomize_edit_set_image_writes(tree: Path) -> None:
    overlay = tree / "overlays" / "dev"
    release.set_image(overlay, IMAGE, binary=None)
    images = yaml.safe_load((overlay / "kustomization.yaml").read_text())["images"]
    assert images == [{"name": "fraudserve", "newName": "registry.example.com/team/fraudserve",
                       "digest": DIGEST}]


def test_the_committed_overlay_cannot_be_deployed_as_is() -> None:
    """Its digest is the all-zeros placeholder: `check` refuses it, and so does a tag."""
    for overlay in ("dev", "prod"):
        rendered = release.fraudserve_images(kustomize(K8S / "overlays" / overlay))
        (placeholder,) = set(rendered.values())
        assert placeholder.endswith("@" + release.PLACEHOLDER)
        with pytest.raises(release.ReleaseError, match="placeholder"):
            release.check(K8S / "overlays" / overlay, placeholder)
    with pytest.raises(release.ReleaseError, match="never by tag"):
        release.parse_ref("registry.example.com/team/fraudserve:1a2b3c")
    with pytest.raises(release.ReleaseError):
        release.check(K8S / "overlays" / "prod", IMAGE)  # not what the overlay renders


def test_models_come_from_a_passed_gate_report(tmp_path: Path) -> None:
    report = {"passed": True, "models": {
        MODELS["model_a"]: {"arm": "model_a", "passed": True},
        MODELS["model_b"]: {"arm": "model_b", "passed": True}}}
    path = tmp_path / "gate_report.json"
    path.write_text(json.dumps(report))
    out = subprocess.run([sys.executable, "-m", "deploy.release", "models", str(path)],
                         cwd=K8S.parents[1], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"model_a={MODELS['model_a']}",
                                       f"model_b={MODELS['model_b']}"]
    with pytest.raises(release.ReleaseError):
        release.gated_models({**report, "passed": False})


# -- Secrets at deploy time ------------------------------------------------------------------

@pytest.fixture
def cluster(tmp_path: Path) -> tuple[str, Path]:
    """A fake kubectl keeping Secrets in a JSON file: get / create / apply -f - only."""
    store = tmp_path / "secrets.json"
    log = tmp_path / "argv.jsonl"
    script = tmp_path / "kubectl"
    script.write_text(f"""#!{sys.executable}
import base64, json, sys
store, log = {str(store)!r}, {str(log)!r}
data = json.load(open(store)) if __import__("os").path.exists(store) else {{}}
open(log, "a").write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[0] == "get":
    key = args[4] + "/" + args[2]
    if key not in data:
        print(f'Error from server (NotFound): secrets "{{args[2]}}" not found', file=sys.stderr)
        sys.exit(1)
    s = data[key]
    print(json.dumps({{"data": {{k: base64.b64encode(v.encode()).decode()
                                for k, v in s["stringData"].items()}}}}))
elif args[0] in ("create", "apply"):
    s = json.loads(sys.stdin.read())
    key = s["metadata"]["namespace"] + "/" + s["metadata"]["name"]
    if args[0] == "create" and key in data:
        print("AlreadyExists", file=sys.stderr); sys.exit(1)
    data[key] = s
    json.dump(data, open(store, "w"))
""")
    script.chmod(0o755)
    return str(script), store


def stored(store: Path) -> dict:
    return json.loads(store.read_text())


def test_dev_secrets_are_random_consistent_and_made_once(cluster: tuple[str, Path]) -> None:
    kubectl, store = cluster
    assert secrets.main(["dev", "--namespace", "fraudserve-dev", "--kubectl", kubectl]) == 0
    first = stored(store)
    db = first["fraudserve-dev/postgres"]["stringData"]
    app = first["fraudserve-dev/fraudserve-secrets"]["stringData"]
    url = urlsplit(app["ledger-url"])
    assert (url.username, url.password, url.path.lstrip("/")) == (
        db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"])
    assert url.hostname == "postgres" and url.port == 5432   # deploy/k8s/postgres's Service
    entries = [line.split(":", 1) for line in app["api-keys"].split()]
    assert [scope for scope, _ in entries] == ["score", "label", "admin"]
    keys = [key for _, key in entries]
    assert len(set(keys)) == 3 and all(len(k) >= 32 for k in keys)
    for word in ("REPLACE", "changeme", "example"):
        assert word.lower() not in app["api-keys"].lower()
    salt = first["fraudserve-dev/fraudserve-salt"]["stringData"]["salt"]
    assert len(salt) >= 32 and "replace" not in salt.lower()  # never the committed placeholder
    # A second deploy keeps both: the database was initialised with that password.
    assert secrets.main(["dev", "--namespace", "fraudserve-dev", "--kubectl", kubectl]) == 0
    assert stored(store) == first
    # Another namespace gets other values.
    assert secrets.main(["dev", "--namespace", "other", "--kubectl", kubectl]) == 0
    assert stored(store)["other/fraudserve-secrets"]["stringData"]["api-keys"] != app["api-keys"]


def test_dev_statefulset_reads_the_names_the_secret_uses() -> None:
    sts = one(objects(K8S / "overlays" / "dev"), "StatefulSet", "postgres")
    env = {e["name"]: e.get("value") for e in container(sts, "postgres")["env"]}
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == (secrets.DEV_DB["user"],
                                                          secrets.DEV_DB["db"])


def test_prod_secrets_take_the_keys_from_the_environment(cluster: tuple[str, Path]) -> None:
    kubectl, store = cluster
    argv = ["prod", "--namespace", "fraudserve", "--kubectl", kubectl]
    assert secrets.main(argv, environ={}) == 1  # no keys anywhere: refused
    keys = "score:" + "k" * 40 + "\nadmin:" + "a" * 40
    assert secrets.main(argv, environ={"FRAUDSERVE_API_KEYS": keys}) == 0
    data = stored(store)
    assert data["fraudserve/fraudserve-secrets"]["stringData"]["api-keys"] == keys + "\n"
    api = data["fraudserve/fraudserve-db-api"]
    assert api["type"] == "kubernetes.io/basic-auth"
    assert api["stringData"]["username"] == "fraudserve_api"      # components/cnpg's role
    assert len(api["stringData"]["password"]) >= 32
    # Rotating the GitHub secret rotates the keys; the database password stays.
    assert secrets.main(argv, environ={"FRAUDSERVE_API_KEYS": keys.upper()}) == 0
    again = stored(store)
    assert again["fraudserve/fraudserve-secrets"]["stringData"]["api-keys"] == keys.upper() + "\n"
    assert again["fraudserve/fraudserve-db-api"] == api


def test_values_never_reach_argv_or_output(cluster: tuple[str, Path],
                                           capsys: pytest.CaptureFixture) -> None:
    kubectl, store = cluster
    assert secrets.main(["dev", "--namespace", "ns", "--kubectl", kubectl]) == 0
    data = stored(store)
    password = data["ns/postgres"]["stringData"]["POSTGRES_PASSWORD"]
    keys = [e.split(":", 1)[1] for e in data["ns/fraudserve-secrets"]["stringData"][
        "api-keys"].split()]
    argv = (store.parent / "argv.jsonl").read_text()
    printed = capsys.readouterr().out
    for secret in [password, *keys]:
        assert secret not in argv and secret not in printed
        assert base64.b64encode(secret.encode()).decode() not in printed
