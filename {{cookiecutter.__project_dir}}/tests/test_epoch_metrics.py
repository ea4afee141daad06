"""Epoch-level metrics (README: Epoch-level metrics) are computed once from the whole epoch: their
value does not depend on the batch size, on the number of processes, or on a stop and resume in
the middle of an epoch; training, validation and test.py report them. The tests' own metric,
tests.parts.BalancedAccuracy, follows the protocol the way a user's would."""

import pytest
import torch

import test as test_script
import train
from tests.helpers import (
    PROJECT_DIR,
    TEST_CONFIG,
    build_trainer,
    metrics_rows,
    only_run_dir,
    signal_at_loss_call,
    torchrun,
)
from utils.checkpoint import load_checkpoint
from utils.runtime import Interrupted

METRICS = 'metrics=["tests.parts.accuracy", "tests.parts.BalancedAccuracy"]'
MONITOR = "trainer.monitor=max val_BalancedAccuracy"


def one_epoch(save_dir, metrics: str) -> list[str]:
    """train.py's arguments for one epoch of the tests' config with `metrics`, into `save_dir`."""
    sets = [metrics, MONITOR, "trainer.epochs=1", f"trainer.save_dir={save_dir.as_posix()}"]
    return ["-c", TEST_CONFIG, *(arg for s in sets for arg in ("--set", s))]


def balanced_accuracy(predicted: list[int], targets: list[int]) -> float:
    """The recall of each class, averaged over the classes, counted one sample at a time."""
    classes = sorted(set(targets))
    recalls = [sum(p == t == c for p, t in zip(predicted, targets, strict=True)) / targets.count(c) for c in classes]
    return sum(recalls) / len(recalls)


def test_value_is_the_whole_epochs_whatever_the_batch_size():
    """Validation in batches of 2 and in one batch of all its samples gives the same balanced
    accuracy: the one of all samples at once. Averaging the batches' values would not."""
    small, whole = (build_trainer(METRICS, f"data_loader.args.batch_size={size}") for size in (2, 5000))
    whole.raw_model.load_state_dict(small.raw_model.state_dict())
    (batch,) = list(whole.valid_data_loader)
    small.raw_model.eval()
    with torch.no_grad():
        predicted = small.raw_model(batch[0]).argmax(dim=1).tolist()
    expected = balanced_accuracy(predicted, batch[1].tolist())
    values = [trainer.evaluate(trainer.valid_data_loader)["BalancedAccuracy"] for trainer in (small, whole)]
    assert values[0] == values[1] == pytest.approx(expected, abs=1e-12)
    with torch.no_grad():  # what a batch-mean metric would report
        per_batch = [
            balanced_accuracy(small.raw_model(x).argmax(1).tolist(), y.tolist()) for x, y in small.valid_data_loader
        ]
    assert sum(per_batch) / len(per_batch) != pytest.approx(expected, abs=1e-3)


def test_training_validation_and_test_py_report_it(tmp_path, capsys, monkeypatch):
    """An epoch metric is logged for training and validation (metrics.csv), can be monitored,
    and test.py reports it for a checkpoint."""
    monkeypatch.chdir(PROJECT_DIR)
    log = build_trainer(METRICS, MONITOR, "trainer.epochs=1").train(tmp_path)
    assert {"BalancedAccuracy", "val_BalancedAccuracy"} <= log.keys()
    (row,) = metrics_rows(tmp_path)
    assert float(row["val_BalancedAccuracy"]) == pytest.approx(log["val_BalancedAccuracy"], rel=1e-9)
    assert test_script.main(["-r", str(tmp_path / "model_best.pth"), "-d", "cpu"]) == 0
    assert "BalancedAccuracy" in capsys.readouterr().out


def test_a_run_stopped_mid_epoch_and_resumed_reports_the_uninterrupted_value(tmp_path):
    """SIGTERM in the middle of epoch 2 saves the metric's state (plain tensors) in the checkpoint;
    the resumed run logs the same values as a run never stopped, epoch metric included."""
    reference = build_trainer(METRICS, MONITOR, "trainer.epochs=2").train(tmp_path / "reference")
    interrupted = build_trainer(METRICS, MONITOR, "trainer.epochs=2")
    signal_at_loss_call(interrupted, 30)  # 21 batches per epoch
    with pytest.raises(Interrupted):
        interrupted.train(tmp_path / "run")
    (path,) = (tmp_path / "run").glob("checkpoint-epoch2-step*.pth")
    checkpoint = load_checkpoint(path)
    state = checkpoint["train_metrics"]["states"]["BalancedAccuracy"]
    assert set(state) == {"hits", "seen"} and int(state["seen"].sum()) == checkpoint["samples_done"]
    resumed = build_trainer(METRICS, MONITOR, "trainer.epochs=2")
    resumed.load_state_dict(checkpoint, path)
    assert resumed.train(tmp_path / "run") == reference


def test_a_metric_state_that_does_not_fit_is_one_line(tmp_path, capsys, monkeypatch):
    """A mid-epoch checkpoint whose metric state the metric refuses: one line naming the file and
    the metric, exit 2, nothing written."""
    monkeypatch.chdir(PROJECT_DIR)
    trainer = build_trainer(METRICS, MONITOR, "trainer.epochs=2")
    trainer.train(tmp_path)  # (a finished epoch: made a mid-epoch one below)
    checkpoint = torch.load(tmp_path / "checkpoint-epoch2.pth", weights_only=True)
    checkpoint.update(epoch=1, samples_done=64, train_metrics={"sums": {"loss": 64.0}, "counts": {"loss": 64}})
    checkpoint["train_metrics"]["states"] = {"BalancedAccuracy": {"hits": torch.zeros(10), "seen": torch.zeros(3)}}
    bad = tmp_path / "bad" / "checkpoint-epoch2-step22.pth"
    bad.parent.mkdir()
    torch.save(checkpoint, bad)
    assert train.main(["-r", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"checkpoint '{bad}': 'train_metrics' state of BalancedAccuracy" in err
    assert list(bad.parent.iterdir()) == [bad]


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_processes_report_the_value_of_one(tmp_path):
    """Under torchrun (2 CPU processes, gloo), each process validates half of the samples; the
    logged value is the one a single process computes from all of them with the same weights."""
    result = torchrun("train.py", *one_epoch(tmp_path, METRICS))
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path)
    (row,) = metrics_rows(run_dir)
    single = build_trainer(METRICS, MONITOR)
    single.raw_model.load_state_dict(load_checkpoint(run_dir / "checkpoint-epoch1.pth")["state_dict"])
    alone = single.evaluate(single.valid_data_loader)
    assert float(row["val_BalancedAccuracy"]) == alone["BalancedAccuracy"]
    assert float(row["val_loss"]) == pytest.approx(alone["loss"], rel=1e-5)


TORCHMETRICS_RECALL = '{"type": "torchmetrics.classification.MulticlassRecall", "args": {"num_classes": 10}}'
TORCHMETRICS = f'metrics=["tests.parts.BalancedAccuracy", {TORCHMETRICS_RECALL}]'


def test_a_torchmetrics_metric_works_as_it_is(tmp_path):
    """A torchmetrics Metric named in the config with its args: its macro recall is the balanced
    accuracy, in training and in validation."""
    pytest.importorskip("torchmetrics")
    log = build_trainer(TORCHMETRICS, MONITOR, "trainer.epochs=1").train(tmp_path)
    for prefix in ("", "val_"):
        assert log[f"{prefix}MulticlassRecall"] == pytest.approx(log[f"{prefix}BalancedAccuracy"], abs=1e-6)


@pytest.mark.slow
def test_a_torchmetrics_metric_under_torchrun_counts_every_process_once(tmp_path):
    """torchmetrics syncs its state over the processes itself, in compute(): the trainer must not
    add it up a second time."""
    pytest.importorskip("torchmetrics")
    result = torchrun("train.py", *one_epoch(tmp_path, TORCHMETRICS))
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = metrics_rows(only_run_dir(tmp_path))
    for prefix in ("", "val_"):
        assert float(row[f"{prefix}MulticlassRecall"]) == pytest.approx(
            float(row[f"{prefix}BalancedAccuracy"]), abs=1e-6
        )


def test_a_batch_mean_function_takes_arguments_in_the_object_form():
    """An entry `{"type": FUNCTION, "args": {"k": 1}}` (top_k_acc with k, say) sets the argument and
    stays a batch mean, logged under the function's name: in the top 1 is the accuracy."""
    entry = '{"type": "tests.parts.in_top", "args": {"k": 1}}'
    trainer = build_trainer(f'metrics=["tests.parts.accuracy", {entry}]', "trainer.monitor=max val_in_top")
    log = trainer.evaluate(trainer.valid_data_loader)
    assert log["in_top"] == pytest.approx(log["accuracy"])
