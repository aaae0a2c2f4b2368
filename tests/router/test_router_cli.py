"""The command line, run as `python -m router` from the repository root."""
import json
import subprocess
import sys
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parents[2]


def run(*args):
    return subprocess.run([sys.executable, "-m", "router", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_replicas_prints_the_v1_formula_answer():
    result = run("replicas", "--rps", "20", "--seconds", "10", "--target", "70", "--concurrency", "1")
    assert result.returncode == 0 and result.stdout.strip() == "286"


def test_token_mints_what_get_token_returned(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "signing.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    config = {"services": {"scorer": {
        "auth": {"mode": "token", "token": {"issuer": "aks-serving", "audience": "scorer", "algorithms": ["ES256"],
                                            "signingKeyFile": str(pem), "lifetimeSeconds": 900}},
        "backend": {"kind": "static", "urls": ["http://127.0.0.1:9"]}, "autoscale": {"enabled": False}}}}
    path = tmp_path / "router.json"
    path.write_text(json.dumps(config))
    result = run("token", "--config", str(path), "--service", "scorer")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    claims = jwt.decode(out["accessToken"], key.public_key(), algorithms=["ES256"], audience="scorer",
                        issuer="aks-serving")
    assert out["tokenType"] == "Bearer" and out["expiryOn"] == claims["exp"] == claims["iat"] + 900
    assert claims["iat"] < out["refreshAfter"] < out["expiryOn"]
    assert run("token", "--config", str(path), "--service", "nope").returncode == 2


def test_invalid_config_exits_2_naming_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("services:\n  echo:\n    auth: {mode: none}\n    backend: {kind: static, urls: ['http://127.0.0.1:1']}\n"
                    "    autoscale: {enabled: false}\n    requests: {maxQueueWait: 5}\n")
    result = run("serve", "--config", str(path))
    assert result.returncode == 2 and "maxQueueWait" in result.stderr
