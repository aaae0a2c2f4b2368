"""`make run` today: the offline check of a stack file, as a user runs it."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def describe(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "components.describe", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_prod_stack_is_valid_and_summarised():
    result = describe("Pulumi.prod.yaml")
    assert result.returncode == 0, result.stderr
    assert "create aks-serving-prod (production): 3 x Standard_D4s_v5 + 3 x Standard_D8s_v5 + " \
           "1 x Standard_NC4as_T4_v3 = 7 nodes, 40 vCPU" in result.stdout


def test_a_bad_stack_file_exits_1_naming_every_key(tmp_path):
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text("config:\n  aks-serving:workspace: {name: w, location: westeurope}\n"
                     "  aks-serving:cluster: {name: aks-prod, nodeCount: 2}\n"
                     "  aks-serving:router: {replica: 2}\n")
    result = describe(stack)
    assert result.returncode == 1
    assert "cluster.nodeCount: production clusters need at least 12 vCPU; 2 x Standard_D3_v2 gives 8" in result.stderr
    assert "router.replica: unknown key; did you mean replicas?" in result.stderr


def test_a_missing_entry_script_model_or_conda_file_is_named_by_key(tmp_path):
    # Paths are relative to the stack file's folder (the project): a copy elsewhere finds none of them.
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text((ROOT / "Pulumi.dev.yaml").read_text())
    result = describe(stack)
    assert result.returncode == 1
    assert "environments.sklearn.condaFile: no file models/diabetes/conda.yml" in result.stderr
    assert "services.diabetes.entryScript: no file models/diabetes/score.py" in result.stderr
    assert "endpoints.sentiment-ab.versions.v2.models[0]: no file or folder models/sentiment/model-v2/weights.json" \
        in result.stderr
