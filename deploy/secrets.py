"""Make the Secrets an overlay expects, at deploy time, with random values: none is committed.

    python -m deploy.secrets dev  --namespace fraudserve-dev
    python -m deploy.secrets prod --namespace fraudserve       # FRAUDSERVE_API_KEYS from env

dev: the `postgres` Secret (POSTGRES_USER/PASSWORD/DB, a random password) and
     `fraudserve-secrets` (ledger-url on that database, api-keys: one random 43-character key
     for each scope score, label, admin). Each is created only when it is missing: the dev
     database keeps the password it was initialised with, and clients keep their keys.
     Read the keys with
       kubectl get secret fraudserve-secrets -n fraudserve-dev \
         -o jsonpath='{.data.api-keys}' | base64 -d
both: `fraudserve-salt` (the A/B assignment salt: random, created once, never rotated).
prod: `fraudserve-db-api` (the API role's database password, random, created once) and
     `fraudserve-secrets` with api-keys from the environment variable FRAUDSERVE_API_KEYS
     (the GitHub environment secret) and, for a managed database instead of CloudNativePG,
     ledger-url from FRAUDSERVE_LEDGER_URL. These two are applied on every deploy, so
     rotating the GitHub secret rotates them.

Values never appear on a command line or in the output: kubectl reads each manifest on stdin.
kubectl is the one on PATH (or --kubectl).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from typing import Any

SCOPES = ("score", "label", "admin")
DEV_DB = {"user": "fraudserve", "db": "fraudserve", "host": "postgres", "port": 5432}
API_ROLE = "fraudserve_api"   # components/cnpg/cluster.yaml


def token() -> str:
    """43 URL-safe characters (256 random bits): well over the service's 32-character floor."""
    return secrets.token_urlsafe(32)


def api_keys() -> str:
    return "".join(f"{scope}:{token()}\n" for scope in SCOPES)


def secret(name: str, namespace: str, data: dict[str, str], kind: str = "Opaque",
           ) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": kind,
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/part-of": "fraudserve"}},
            "stringData": data}


Kubectl = Callable[[list[str], str | None], subprocess.CompletedProcess[str]]


def runner(binary: str) -> Kubectl:
    def run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True,
                              timeout=120, check=False)
    return run


def existing(kubectl: Kubectl, name: str, namespace: str) -> dict[str, str] | None:
    """The Secret's decoded data, or None when it does not exist."""
    out = kubectl(["get", "secret", name, "-n", namespace, "-o", "json"], None)
    if out.returncode != 0:
        if "NotFound" in out.stderr or "not found" in out.stderr:
            return None
        raise RuntimeError(f"kubectl get secret {name}: {out.stderr.strip()}")
    data = json.loads(out.stdout).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def write(kubectl: Kubectl, manifest: dict[str, Any], verb: str) -> None:
    """`kubectl create -f -` (only if missing) or `kubectl apply -f -` (create or update)."""
    out = kubectl([verb, "-f", "-"], json.dumps(manifest))
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {verb} secret {manifest['metadata']['name']}: "
                           f"{out.stderr.strip()}")
    print(f"secrets: {verb}d {manifest['metadata']['namespace']}/"
          f"{manifest['metadata']['name']}")


def salt(kubectl: Kubectl, namespace: str) -> None:
    """`fraudserve-salt`: the A/B assignment salt, random and created once, never rotated (a new
    salt reshuffles every user and starts a new experiment); the service refuses the committed
    placeholder under FRAUDSERVE_REQUIRE_KEYS=1."""
    if existing(kubectl, "fraudserve-salt", namespace) is None:
        write(kubectl, secret("fraudserve-salt", namespace, {"salt": token()}), "create")
    else:
        print(f"secrets: {namespace}/fraudserve-salt exists, kept")


def dev(kubectl: Kubectl, namespace: str) -> None:
    salt(kubectl, namespace)
    db = existing(kubectl, "postgres", namespace)
    if db is None:
        db = {"POSTGRES_USER": DEV_DB["user"], "POSTGRES_PASSWORD": token(),
              "POSTGRES_DB": DEV_DB["db"]}
        write(kubectl, secret("postgres", namespace, db), "create")
    else:
        print(f"secrets: {namespace}/postgres exists, kept")
    if existing(kubectl, "fraudserve-secrets", namespace) is None:
        url = (f"postgresql://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}@{DEV_DB['host']}:"
               f"{DEV_DB['port']}/{db['POSTGRES_DB']}")
        write(kubectl, secret("fraudserve-secrets", namespace,
                              {"ledger-url": url, "api-keys": api_keys()}), "create")
    else:
        print(f"secrets: {namespace}/fraudserve-secrets exists, kept")


def prod(kubectl: Kubectl, namespace: str, environ: dict[str, str]) -> None:
    salt(kubectl, namespace)
    if existing(kubectl, "fraudserve-db-api", namespace) is None:
        write(kubectl, secret("fraudserve-db-api", namespace,
                              {"username": API_ROLE, "password": token()},
                              kind="kubernetes.io/basic-auth"), "create")
    else:
        print(f"secrets: {namespace}/fraudserve-db-api exists, kept")
    keys = environ.get("FRAUDSERVE_API_KEYS", "").strip()
    if not keys:
        if existing(kubectl, "fraudserve-secrets", namespace) is not None:
            print(f"secrets: {namespace}/fraudserve-secrets exists, kept "
                  "(FRAUDSERVE_API_KEYS not given)")
            return
        raise RuntimeError("FRAUDSERVE_API_KEYS is empty and fraudserve-secrets does not "
                           "exist: set the environment's secret FRAUDSERVE_API_KEYS")
    data = {"api-keys": keys + "\n"}
    if environ.get("FRAUDSERVE_LEDGER_URL", "").strip():
        data["ledger-url"] = environ["FRAUDSERVE_LEDGER_URL"].strip()
    write(kubectl, secret("fraudserve-secrets", namespace, data), "apply")


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.secrets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("environment", choices=("dev", "prod"))
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--kubectl", default="kubectl")
    args = parser.parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    kubectl = runner(args.kubectl)
    try:
        if args.environment == "dev":
            dev(kubectl, args.namespace)
        else:
            prod(kubectl, args.namespace, env)
    except (RuntimeError, OSError) as exc:
        print(f"secrets: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
