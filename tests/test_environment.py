"""The environment hash: the image tag and the local virtualenv's name."""
from components.config import Environment
from components.environment import environment_hash

CONDA = "name: {name}\ndependencies:\n  - python=3.11\n  - pip\n  - numpy=1.26\n  - pip:\n{pip}"


def env(tmp_path, name="a", pip=("scikit-learn==1.9.1", "joblib==1.6.0"), **fields) -> Environment:
    path = tmp_path / f"{name}-{'-'.join(pip)}.yml"
    path.write_text(CONDA.format(name=name, pip="".join(f"      - {p}\n" for p in pip)))
    return Environment(conda_file=str(path), **fields)


def test_same_content_same_hash_whatever_the_environment_is_called(tmp_path):
    a, b = env(tmp_path, name="a"), env(tmp_path, name="a")
    assert environment_hash(a, tmp_path) == environment_hash(b, tmp_path)


def test_the_conda_files_contents_count_including_dependency_order(tmp_path):
    base = environment_hash(env(tmp_path), tmp_path)
    assert environment_hash(env(tmp_path, pip=("joblib==1.6.0", "scikit-learn==1.9.1")), tmp_path) != base
    assert environment_hash(env(tmp_path, pip=("scikit-learn==1.9.2", "joblib==1.6.0")), tmp_path) != base


def test_base_image_and_docker_steps_count(tmp_path):
    base = environment_hash(env(tmp_path), tmp_path)
    assert environment_hash(env(tmp_path, base_image="python:3.11-slim"), tmp_path) != base
    assert environment_hash(env(tmp_path, docker_steps=["RUN apt-get install -y libgomp1"]), tmp_path) != base


def test_the_scripts_and_package_every_build_copies_in_count(tmp_path, monkeypatch):
    import shutil
    from components import environment
    from pulumi_mocks import ROOT
    for folder in environment.BUILD_FILES:
        shutil.copytree(ROOT / folder, tmp_path / "repo" / folder)
    monkeypatch.setattr(environment, "REPO", tmp_path / "repo")
    environment.build_files_digest.cache_clear()
    base = environment_hash(env(tmp_path), tmp_path)
    (tmp_path / "repo/v1runtime/azureml/monitoring/__pycache__").mkdir(exist_ok=True)
    (tmp_path / "repo/v1runtime/azureml/monitoring/__pycache__/x.pyc").write_bytes(b"left behind")
    environment.build_files_digest.cache_clear()
    assert environment_hash(env(tmp_path), tmp_path) == base  # what importing leaves behind does not count
    with open(tmp_path / "repo/envbuild/add_server.py", "a") as f:
        f.write("# changed\n")
    environment.build_files_digest.cache_clear()
    assert environment_hash(env(tmp_path), tmp_path) != base
    environment.build_files_digest.cache_clear()
