"""A broken config or command line costs nothing: one line naming the problem, exit code 2.

Each case below is a mistake a user can make; every one must print a single `error:` line on
stderr that names the key (or option) and what is allowed, exit with code 2, show no traceback
and create nothing on disk. Add a row when you find a new way to get it wrong.
"""

import json
import subprocess
import sys

import pytest
import torch

import test as test_script
import train
from parse_config import load_config
from tests.helpers import PROJECT_DIR, TEST_CONFIG, config_for_tests, run_script

DEFAULT = config_for_tests()


def edit(path: str, value=None, delete: bool = False):
    """A config change: set (or delete) the value at a dotted key path."""

    def apply(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        if delete:
            del node[last]
        else:
            node[last] = value

    return apply


def nested(depth: int) -> list:
    """A list nested `depth` levels deep: [[[...[0]...]]]."""
    value = [0]
    for _ in range(depth - 1):
        value = [value]
    return value


CASES = [
    # (id, change to the tests' config or raw file text, extra CLI args, expected in the message)
    ("invalid-json", '{\n  "name": "x",\n  "seed": 0\n  "arch": {}\n}', [], ":4:3: invalid JSON"),
    ("not-an-object", "[1, 2]", [], "must be a mapping of keys"),
    ("duplicate-key", '{"name": "a", "name": "b"}', [], "key 'name' appears twice"),
    ("unknown-top-key", edit("trainr", {}), [], "'trainr' is unknown (did you mean 'trainer'?)"),
    ("missing-section", edit("arch", delete=True), [], "'arch' is missing"),
    ("name-with-slash", edit("name", "a/b"), [], "config key 'name': got 'a/b', expected a folder name"),
    ("negative-seed", edit("seed", -1), [], "config key 'seed': got -1, expected an integer >= 0"),
    ("epochs-zero", edit("trainer.epochs", 0), [], "'trainer.epochs': got 0, expected an integer >= 1"),
    ("epochs-string", edit("trainer.epochs", "10"), [], "'trainer.epochs': got '10', expected an integer >= 1"),
    ("epochs-bool", edit("trainer.epochs", True), [], "'trainer.epochs': got True"),
    ("trainer-typo", edit("trainer.epoch", 3), [], "'trainer.epoch' is unknown (did you mean 'epochs'?)"),
    ("keep-last-one", edit("trainer.keep_last", 1), [], "'trainer.keep_last': got 1, expected an integer >= 2"),
    ("save-period-zero", edit("trainer.save_period", 0), [], "'trainer.save_period'"),
    ("verbosity", edit("trainer.verbosity", 5), [], "'trainer.verbosity': got 5, expected 0, 1 or 2"),
    (
        "tensorboard-text",
        edit("trainer.tensorboard", "yes"),
        [],
        "'trainer.tensorboard': got 'yes', expected true or false",
    ),
    (
        "monitor-syntax",
        edit("trainer.monitor", "lowest val_loss"),
        [],
        "'trainer.monitor': got 'lowest val_loss', expected",
    ),
    ("monitor-metric", edit("trainer.monitor", "max val_acc"), [], "(did you mean 'val_accuracy'?)"),
    (
        "monitor-no-valid",
        edit("data_loader.args.validation_split", 0.0),
        [],
        "need data_loader.args.validation_split > 0",
    ),
    (
        "clip-negative",
        edit("trainer.clip_grad_norm", -1),
        [],
        "'trainer.clip_grad_norm': got -1, expected null or a number > 0",
    ),
    ("section-typo", edit("arch.typ", "X"), [], "'arch.typ' is unknown (did you mean 'type'?)"),
    ("arch-type", edit("arch.type", "tests.parts.TinyCN"), [], "tests.parts has no 'TinyCN' (did you mean 'TinyCNN'?)"),
    ("arch-short-name", edit("arch.type", "SmalCNN"), [], "'arch.type': unknown name 'SmalCNN'"),
    ("arch-no-module", edit("arch.type", "nosuchpackage.Net"), [], "'arch.type': cannot import 'nosuchpackage'"),
    (
        "arch-arg",
        edit("arch.args.dropuot", 0.1),
        [],
        "'arch.args.dropuot': TinyCNN has no argument 'dropuot' (did you mean 'dropout'?)",
    ),
    ("arch-args-list", edit("arch.args", [1]), [], "'arch.args': got [1], expected an object"),
    (
        "arch-not-a-module",
        edit("arch.type", "builtins.dict"),
        [],
        "'arch.type': builtins.dict made a dict, not a torch.nn.Module",
    ),
    ("optimizer-type", edit("optimizer.type", "Adamw"), [], "(did you mean 'AdamW'?)"),
    ("optimizer-arg", edit("optimizer.args.learning_rate", 0.1), [], "AdamW has no argument 'learning_rate'"),
    ("optimizer-params", edit("optimizer.args.params", []), [], "'optimizer.args.params' is set by the code"),
    ("optimizer-value", edit("optimizer.args.lr", -1), [], "'optimizer.args.lr': got -1, expected a number >= 0"),
    (
        "optimizer-refuses",
        edit("optimizer.args.eps", -1),
        [],
        "config key 'optimizer' (AdamW): Invalid epsilon value: -1",
    ),
    ("betas-too-short", edit("optimizer.args.betas", [0.9]), [], "config key 'optimizer' (AdamW): "),
    ("scheduler-type", edit("lr_scheduler.type", "StepLr"), [], "(did you mean 'StepLR'?)"),
    ("scheduler-missing-arg", edit("lr_scheduler.args", {}), [], "'lr_scheduler.args.step_size' is missing"),
    ("scheduler-list", edit("lr_scheduler", []), [], "config key 'lr_scheduler': got [], expected null or an object"),
    ("loss-name", edit("loss", "crossentropy"), [], "'loss': unknown name 'crossentropy'"),
    ("loss-dotted", edit("loss", "torch.nn.functional.cross_entopy"), [], "(did you mean 'cross_entropy'?)"),
    ("metric-name", edit("metrics", ["tests.parts.accuracy", "top_k"]), [], "'metrics[1]': unknown name 'top_k'"),
    ("metrics-string", edit("metrics", "accuracy"), [], "config key 'metrics': got 'accuracy'"),
    (
        "metric-without-compute",
        edit("metrics", ["tests.parts.accuracy", "tests.parts.WithoutCompute"]),
        [],
        "'metrics[1]': tests.parts.WithoutCompute made a WithoutCompute, which has no compute()",
    ),
    (
        "metric-entry-key",
        edit("metrics", [{"type": "tests.parts.BalancedAccuracy", "arg": {}}]),
        [],
        "config key 'metrics[0]': got {'type': 'tests.parts.BalancedAccuracy', 'arg': {}}, expected a non-empty string",
    ),
    (
        "metric-class-arg",
        edit("metrics", [{"type": "tests.parts.BalancedAccuracy", "args": {"classes": 3}}]),
        [],
        "'metrics[0].args.classes': BalancedAccuracy has no argument 'classes'",
    ),
    (
        "metric-twice",
        edit("metrics", ["tests.parts.BalancedAccuracy", {"type": "tests.parts.BalancedAccuracy"}]),
        [],
        "'metrics[1]': logged as 'BalancedAccuracy', like metrics[0]",
    ),
    (
        "trainer-type",
        edit("trainer.type", "Trainr"),
        [],
        "'trainer.type': unknown name 'Trainr' (did you mean 'Trainer'?)",
    ),
    ("batch-size-zero", edit("data_loader.args.batch_size", 0), [], "'data_loader.args.batch_size': got 0"),
    (
        "valid-split-high",
        edit("data_loader.args.validation_split", 1.5),
        [],
        "'data_loader.args.validation_split': got 1.5",
    ),
    ("valid-split-all", edit("data_loader.args.validation_split", 1437), [], "1437 holds out 1437 of 1437 samples"),
    ("loader-arg", edit("data_loader.args.seed", 1), [], "DigitsDataLoader has no argument 'seed'"),
    ("data-dir-missing", edit("data_loader.args.data_dir", "no/such/dir"), [], "no digits.npz in 'no/such/dir'"),
    ("seed-too-large", edit("seed", 2**62), [], "config key 'seed': got 4611686018427387904"),
    ("name-windows-device", edit("name", "NUL"), [], "config key 'name': got 'NUL'"),
    ("name-trailing-dot", edit("name", "run."), [], "config key 'name': got 'run.'"),
    ("n-gpu-negative", edit("n_gpu", -1), [], "config key 'n_gpu': got -1"),
    ("set-no-equals", None, ["--set", "trainer.epochs"], "expected KEY=VALUE"),
    ("set-unknown-key", None, ["--set", "trainer.epoch=3"], "'trainer.epoch' is unknown (did you mean 'epochs'?)"),
    ("set-unknown-section", None, ["--set", "trainr.epochs=3"], "no section 'trainr' (did you mean 'trainer'?)"),
    ("set-bad-value", None, ["--set", "trainer.epochs=-3"], "'trainer.epochs': got -3"),
    ("set-new-arg", None, ["--set", "arch.args.dropout_rate=0.1"], "TinyCNN has no argument 'dropout_rate'"),
    ("lr-not-a-number", None, ["--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    ("bs-negative", None, ["--bs", "-4"], "'data_loader.args.batch_size': got -4"),
    ("unknown-option", None, ["--epochs", "3"], "unrecognized arguments: --epochs 3"),
    ("bad-device", None, ["--device", "gpu0"], "--device 'gpu0': expected auto, cpu, cuda"),
    ("device-index", None, ["--device", "0"], "--device '0': name a GPU as cuda:0"),
    ("device-meta", None, ["-d", "meta"], "--device 'meta': expected auto, cpu, cuda, cuda:N or mps"),
    ("lr-nan", None, ["--lr", "nan"], "config key 'optimizer.args.lr': got nan, expected a finite number"),
    ("lr-inf", None, ["--lr", "inf"], "config key 'optimizer.args.lr': got inf, expected a finite number"),
    ("set-lr-nan", None, ["--set", "optimizer.args.lr=NaN"], "config key 'optimizer.args.lr': got nan"),
    ("json-infinity", edit("optimizer.args.lr", float("inf")), [], "config key 'optimizer.args.lr': got inf"),
    ("lr-text", edit("optimizer.args.lr", "3e-4"), [], "'optimizer.args.lr': got '3e-4', expected a number >= 0"),
    ("nested-deep", "[" * 100_000, [], "config.json: nested too deeply to be a config"),
    (
        "nested-below-the-parser",  # deep enough to overflow the stack of whatever walks the config later
        edit("sweep", {"params": {"optimizer.args.lr": {"type": "categorical", "choices": nested(600)}}}),
        [],
        "nested more than 32 levels deep",
    ),
    ("integer-5000-digits", '{"seed": ' + "9" * 5000 + "}", [], "config.json: cannot read a value: Exceeds the limit"),
    ("integer-beyond-64-bits", edit("trainer.epochs", 2**64), [], "'trainer.epochs': got a 20-digit integer"),
]


@pytest.mark.parametrize("change, extra, expected", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_broken_config_gives_one_line_and_exit_2(tmp_path, capsys, monkeypatch, change, extra, expected):
    monkeypatch.chdir(PROJECT_DIR)
    save_dir = tmp_path / "saved"
    config = json.loads(json.dumps(DEFAULT))
    config["trainer"]["save_dir"] = save_dir.as_posix()
    if isinstance(change, str):
        text = change
    else:
        if change is not None:
            change(config)
        text = json.dumps(config)
    config_path = tmp_path / "config.json"
    config_path.write_text(text, encoding="utf-8")
    try:
        code = train.main(["-c", str(config_path), *extra])
    except SystemExit as exit_:  # argparse exits by itself
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert not save_dir.exists(), "nothing may be created before the config is valid"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_cuda_is_a_clear_error(capsys):
    assert train.main(["-c", TEST_CONFIG, "--device", "cuda"]) == 2
    assert "CUDA is not available on this machine; use --device cpu" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], "nothing to do: pass a config with -c"),
        (["-c", "missing.json"], "config file 'missing.json' does not exist"),
        (["-r", "saved/none/model_best.pth"], "checkpoint 'saved/none/model_best.pth' does not exist"),
    ],
)
def test_missing_inputs_to_train_are_clear_errors(capsys, args, expected):
    assert train.main(args) == 2
    assert expected in capsys.readouterr().err


def test_test_py_without_checkpoint_is_a_clear_error(capsys):
    assert test_script.main([]) == 2
    assert "pass the checkpoint to evaluate with -r" in capsys.readouterr().err


def test_broken_config_in_a_real_process_prints_no_traceback(tmp_path):
    """The same promise end to end: a real `python train.py` with a typo in the config."""
    config = json.loads(json.dumps(DEFAULT))
    config["optimizer"]["type"] = "Adamm"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    result = run_script("train.py", "-c", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "error: config key 'optimizer.type': unknown name 'Adamm' (did you mean 'Adam'?); available:"
    )
    assert "Traceback" not in result.stderr


def test_help_lists_every_option():
    result = subprocess.run([sys.executable, "train.py", "--help"], cwd=PROJECT_DIR, capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("--config", "--resume", "--device", "--lr", "--bs", "--set", "--smoke"):
        assert option in result.stdout


def test_save_dir_blocked_by_a_file_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(PROJECT_DIR)
    blocker = tmp_path / "saved"
    blocker.write_text("not a folder", encoding="utf-8")
    assert train.main(["-c", TEST_CONFIG, "--set", f"trainer.save_dir={blocker.as_posix()}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config key 'trainer.save_dir': cannot create") and err.count("\n") == 1


def test_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows editors may save UTF-8 with a BOM; the config still loads."""
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(DEFAULT).encode("utf-8"))
    assert load_config(path) == DEFAULT


@pytest.mark.parametrize("device", ["cuda:1", "mps", "gpu"])
def test_torchrun_device_choices_are_checked(monkeypatch, device):
    """Under torchrun each process takes the GPU of its LOCAL_RANK: other --device values are refused."""
    from utils import runtime
    from utils.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ConfigError, match="under torchrun use auto, cuda or cpu"):
        runtime.setup(device)


def test_yaml_config_holds_the_same_settings_as_json(tmp_path):
    """train.py reads YAML as well as JSON, whichever format the project was made with."""
    yaml = pytest.importorskip("ruamel.yaml")
    path = tmp_path / "config.yml"
    with open(path, "w", encoding="utf-8") as file:
        yaml.YAML(typ="safe", pure=True).dump(DEFAULT, file)
    assert load_config(path) == DEFAULT


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("name: x\nseed: [0\ntrainer: {}\n", "config.yaml:3:", id="unclosed-list"),
        pytest.param("name: x\nseed: 0\nname: y\n", "config.yaml:3: key 'name' appears twice", id="duplicate-key"),
        pytest.param("- name\n- seed\n", "must be a mapping of keys", id="a-list"),
        pytest.param("? [a, b]\n: c\n", "a config key must be text, got ('a', 'b')", id="list-as-key"),
        pytest.param(
            "a: !!python/object:os.system {}\n", "config.yaml:1: could not determine a constructor", id="code"
        ),
        pytest.param("name: 2026-01-01\n", "config key 'name' holds a date; use text", id="a-date"),
        pytest.param("sweep:\n  params:\n    1.5: {}\n", "must be text, got 1.5 in 'sweep.params'", id="nested-key"),
        pytest.param("optimizer:\n  args:\n    lr: .nan\n", "config key 'optimizer.args.lr': got nan", id="nan"),
        pytest.param("optimizer:\n  args:\n    lr: -.inf\n", "config key 'optimizer.args.lr': got -inf", id="inf"),
        pytest.param("seed: " + "[" * 100_000, "config.yaml: nested too deeply to be a config", id="nested-deep"),
        pytest.param("seed: " + "9" * 5000, "config.yaml: cannot read a value: Exceeds the limit", id="integer-5000"),
        pytest.param(
            "name: 2026-13-01\n", "config.yaml: cannot read a value: month must be in 1..12", id="no-such-date"
        ),
    ],
)
def test_broken_yaml_gives_one_line_with_its_position(tmp_path, capsys, text, expected):
    pytest.importorskip("ruamel.yaml")
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert train.main(["-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err


def test_yaml_reads_exponents_and_merge_keys(tmp_path):
    """`lr: 3e-4` is a number (plain YAML 1.1 would make it text) and `<<: *anchor` merges work."""
    pytest.importorskip("ruamel.yaml")
    path = tmp_path / "config.yaml"
    path.write_text("base: &b {lr: 3e-4, eps: 1.0e-8}\noptimizer:\n  <<: *b\n  lr: 1E-3\n", encoding="utf-8")
    assert load_config(path) == {"base": {"lr": 3e-4, "eps": 1e-8}, "optimizer": {"lr": 1e-3, "eps": 1e-8}}


def test_bare_off_in_yaml_is_the_text_off(tmp_path):
    """YAML 1.2 reads `amp: off` as the text "off" (YAML 1.1 would read false): no quotes needed."""
    pytest.importorskip("ruamel.yaml")
    path = tmp_path / "config.yaml"
    path.write_text("trainer:\n  amp: off\n  tensorboard: true\n", encoding="utf-8")
    assert load_config(path) == {"trainer": {"amp": "off", "tensorboard": True}}


def test_every_shipped_config_follows_the_schema_it_points_to():
    """config.schema.json is the one definition of the rules: the shipped configs follow it, and
    `python parse_config.py FILE` checks a file against it without importing torch."""
    files = [name for name in ("config.json", "config.yaml", TEST_CONFIG) if (PROJECT_DIR / name).is_file()]
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['parse_config.py', *sys.argv[1:]]\n"
        "runpy.run_path('parse_config.py', run_name='__main__')\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = run_script("-c", probe, *files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("follows config.schema.json") == len(files)


def test_a_config_breaking_the_schema_is_named_by_the_schema_check(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**DEFAULT, "seed": "zero"}), encoding="utf-8")
    result = run_script("parse_config.py", str(path))
    assert result.returncode == 2
    assert result.stderr == "error: config key 'seed': got 'zero', expected an integer >= 0 and <= 4294967295\n"
