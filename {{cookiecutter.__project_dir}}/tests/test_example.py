"""The example model, loss and metrics (model/). These are the only tests that import them: when
you replace the example with your own, adapt or delete this file; the others keep working."""

import json

import pytest
import torch

import train
from data_loader.digits import DigitsDataLoader
from model.loss import cross_entropy
from model.metric import MacroF1, accuracy, top_k_acc
from model.model import SmallCNN
from tests.helpers import PROJECT_DIR, config_for_tests


def test_forward_gives_one_score_per_class():
    """The model maps a batch of 8x8 images to (batch, num_classes) scores."""
    model = SmallCNN(num_classes=10)
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_a_few_training_steps_lower_the_loss():
    """Repeated steps on one batch of the bundled data reduce its loss: gradients flow."""
    torch.manual_seed(0)
    loader = DigitsDataLoader(str(PROJECT_DIR / "data"), batch_size=64)
    data, target = next(iter(loader))
    model = SmallCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bundled_data_has_the_documented_split():
    """1,437 training and 360 test images, scaled to [0, 1], ten classes in each split."""
    train = DigitsDataLoader(str(PROJECT_DIR / "data"), batch_size=100)
    test = DigitsDataLoader(str(PROJECT_DIR / "data"), batch_size=100, training=False)
    assert (train.n_samples, test.n_samples) == (1437, 360)
    images, labels = test.dataset.tensors
    assert images.shape == (360, 1, 8, 8) and images.min() >= 0.0 and images.max() <= 1.0
    assert labels.unique().tolist() == list(range(10))


def test_metrics_on_a_known_batch():
    """accuracy and top-k accuracy count the right samples."""
    output = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    target = torch.tensor([1, 1, 0])
    assert abs(accuracy(output, target).item() - 1 / 3) < 1e-6
    assert abs(top_k_acc(output, target, k=2).item() - 2 / 3) < 1e-6


def test_macro_f1_on_a_known_batch():
    """MacroF1 averages the F1 of each class that occurs in the targets or the predictions, as
    scikit-learn's f1_score(average="macro") does: here (1/2 + 2/3 + 4/5) / 3, class 3 left out."""
    metric = MacroF1()
    predicted, target = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 2, 0])
    metric.update(torch.nn.functional.one_hot(predicted, 4).float(), target)
    assert metric.compute().item() == pytest.approx((1 / 2 + 2 / 3 + 4 / 5) / 3, abs=1e-12)


def test_macro_f1_is_the_same_in_batches_of_2_and_in_one_batch():
    """MacroF1 counts every sample into one confusion matrix: its value is the dataset's, not a
    mean over batches, so batches of 2 give exactly the value of all samples at once."""
    torch.manual_seed(0)
    output, target = torch.randn(101, 10), torch.randint(0, 10, (101,))
    whole, pairs = MacroF1(), MacroF1()
    whole.update(output, target)
    for i in range(0, len(target), 2):
        pairs.update(output[i : i + 2], target[i : i + 2])
    assert torch.equal(whole.compute(), pairs.compute())
    restored = MacroF1()  # (what a mid-epoch checkpoint holds, put back)
    restored.load_state_dict(pairs.state_dict())
    assert torch.equal(restored.compute(), whole.compute())


def test_macro_f1_agrees_with_torchmetrics():
    torchmetrics = pytest.importorskip("torchmetrics")
    torch.manual_seed(0)
    output, target = torch.randn(500, 10), torch.randint(0, 10, (500,))
    ours, theirs = MacroF1(), torchmetrics.classification.MulticlassF1Score(num_classes=10, average="macro")
    ours.update(output, target)
    theirs.update(output, target)
    assert ours.compute().item() == pytest.approx(theirs.compute().item(), abs=1e-6)


@pytest.mark.parametrize(
    "args, expected",
    [
        pytest.param(
            {"channels": -4},
            "config key 'arch.args.channels': -4 is not a positive integer; use 1 or more",
            id="channels-negative",
        ),
        pytest.param(
            {"channels": [8]}, "config key 'arch.args.channels': [8] is not a positive integer", id="channels-list"
        ),
        pytest.param(
            {"dropout": 2.0},
            "config key 'arch.args.dropout': 2.0 is not a probability; use a value in [0, 1)",
            id="dropout-2",
        ),
    ],
)
def test_model_arguments_out_of_range_are_one_line(tmp_path, capsys, args, expected):
    """The model checks its own arguments and raises ConfigError: one line, exit 2, no run folder."""
    config = config_for_tests(f"trainer.save_dir={(tmp_path / 'saved').as_posix()}")
    config["arch"] = {"type": "SmallCNN", "args": args}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    assert train.main(["-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "saved").exists()


def test_a_class_metric_on_a_regression_output_is_one_line(tmp_path, capsys):
    """The shipped class metrics check what they read: on a model of another task (one value per
    sample, a regression) the dry run stops with one line, before any file is written."""
    config = config_for_tests(f"trainer.save_dir={(tmp_path / 'saved').as_posix()}", "trainer.monitor=min val_loss")
    config.update(arch={"type": "tests.parts.Regressor"}, loss="tests.parts.squared_error", metrics=["accuracy"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    assert train.main(["-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config key 'metrics': accuracy needs class scores of shape (batch, classes)"), err
    assert err.count("\n") == 1 and not (tmp_path / "saved").exists()
