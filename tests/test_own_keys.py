"""Users' own keys (v1's primary_key / secondary_key): Pulumi secrets only, used instead of generated ones."""
import json

import pytest

from components.config import ConfigError, config_warnings, load_pulumi_config, load_stack_file
from pulumi_mocks import run_program, stack_file_config
from local_stack import dev_config, write_stack

OWN = "own-primary-key-0123456789abcdef"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # a secret's wire form (Pulumi's secret signature)


class FakeConfig:
    """pulumi.Config's get_object, over plain sections (as the engine hands them to the program)."""

    def __init__(self, sections: dict) -> None:
        self.sections = sections

    def get_object(self, key: str):
        return self.sections.get(key)


def with_own_keys(config: dict, **keys) -> dict:
    config = json.loads(json.dumps(config))
    config["services"]["diabetes"]["keys"] = dict(keys)
    config["endpoints"]["sentiment-ab"]["keys"] = {"secondaryKey": "endpoint-own-secondary"}
    return config


def test_a_plain_text_key_is_refused_naming_its_path_and_the_command():
    config = with_own_keys(dev_config(), primaryKey=OWN)
    with pytest.raises(ConfigError) as err:
        load_pulumi_config(FakeConfig(config), is_secret=lambda section: False)
    assert err.value.problems == [
        "endpoints.sentiment-ab.keys.secondaryKey: a secret in plain text; set it with "
        "`pulumi config set --secret --path endpoints.sentiment-ab.keys.secondaryKey ...`",
        "services.diabetes.keys.primaryKey: a secret in plain text; set it with "
        "`pulumi config set --secret --path services.diabetes.keys.primaryKey ...`"]


def test_a_key_set_as_a_secret_is_read():
    config = with_own_keys(dev_config(), primaryKey=OWN)
    cfg = load_pulumi_config(FakeConfig(config), is_secret=lambda section: section in ("services", "endpoints"))
    assert cfg.services["diabetes"].keys.primary_key == OWN
    assert cfg.endpoints["sentiment-ab"].keys.secondary_key == "endpoint-own-secondary"


def test_a_plain_key_beside_a_secret_one_in_the_same_section_is_refused_from_the_stack_file(tmp_path):
    # Pulumi marks `services` secret as a whole once one value in it is: only the stack file shows which.
    config = with_own_keys(dev_config(), primaryKey={"secure": "v1:c2FsdA==:ZW5jcnlwdGVk"})
    config["services"]["sentiment"]["keys"] = {"primaryKey": "plain-text-key-of-another-service"}
    stack_file = write_stack(tmp_path / "Pulumi.dev.yaml", config)
    engine_view = with_own_keys(dev_config(), primaryKey=OWN)  # what the engine hands over, decrypted
    engine_view["services"]["sentiment"]["keys"] = {"primaryKey": "plain-text-key-of-another-service"}
    del engine_view["endpoints"]["sentiment-ab"]["keys"]
    with pytest.raises(ConfigError) as err:
        load_pulumi_config(FakeConfig(engine_view), is_secret=lambda section: section in ("services", "endpoints"),
                           stack_file=stack_file)
    assert err.value.problems == ["endpoints.sentiment-ab.keys.secondaryKey: a secret in plain text; set it with "
                                  "`pulumi config set --secret --path endpoints.sentiment-ab.keys.secondaryKey ...`",
                                  "services.sentiment.keys.primaryKey: a secret in plain text; set it with "
                                  "`pulumi config set --secret --path services.sentiment.keys.primaryKey ...`"]


def test_a_stack_file_key_must_be_secure_and_make_run_treats_it_as_unset(tmp_path):
    plain = write_stack(tmp_path / "Pulumi.plain.yaml", with_own_keys(dev_config(), primaryKey=OWN))
    with pytest.raises(ConfigError) as err:
        load_stack_file(plain)
    assert "services.diabetes.keys.primaryKey: a secret in plain text" in err.value.problems[1]
    config = dev_config()
    config["services"]["diabetes"]["keys"] = {"primaryKey": {"secure": "v1:abc:def"}}
    cfg = load_stack_file(write_stack(tmp_path / "Pulumi.secure.yaml", config))
    assert cfg.services["diabetes"].keys.primary_key is None
    assert "services.diabetes.keys.primaryKey: a secure value that cannot be decrypted without the Pulumi CLI; " \
           "treated as unset" in config_warnings(cfg)


@pytest.mark.parametrize("bad", ["", " padded", "trailing\n"])
def test_an_empty_or_padded_key_is_refused(bad):
    config = with_own_keys(dev_config(), primaryKey=bad)
    with pytest.raises(ConfigError) as err:
        load_pulumi_config(FakeConfig(config), is_secret=lambda section: True)
    assert err.value.problems == ["services.diabetes.keys.primaryKey: must be non-empty, without leading or "
                                  "trailing whitespace"]


def test_own_keys_replace_the_generated_ones_and_stay_secret():
    generated = run_program(stack_file_config("dev"), stack="dev")
    config = with_own_keys(stack_file_config("dev"), primaryKey=OWN)
    own = run_program(config, stack="dev", secret_sections=("services", "endpoints"))
    keys = own.exports["keys"]
    assert keys["diabetes"]["primaryKey"] == OWN
    assert keys["diabetes"]["secondaryKey"] == generated.exports["keys"]["diabetes"]["secondaryKey"]
    assert keys["sentiment-ab"]["secondaryKey"] == "endpoint-own-secondary"
    assert "keys" in own.secret_exports
    # No password is generated for a key the user gave; the other keys' passwords stay.
    passwords = {r.name for r in own.of_type("random:index/randomPassword:RandomPassword")}
    assert "diabetes-keys-primary" not in passwords and "diabetes-keys-secondary" in passwords
    secret = next(r.inputs for r in own.of_type("kubernetes:core/v1:Secret")
                  if r.inputs["metadata"]["name"] == "diabetes-keys")
    assert secret["stringData"][SECRET_SIG]  # the Kubernetes Secret holds it as a Pulumi secret
    assert secret["stringData"]["value"]["primaryKey"] == OWN
    assert OWN not in json.dumps({k: v for k, v in own.exports.items() if k not in own.secret_exports})
