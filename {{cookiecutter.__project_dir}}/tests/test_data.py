"""Data loaders: the batch order a resumed run can reproduce, the validation split, the test split,
and loaders written the way pytorch-template users write them."""

import pytest
import torch

import test as test_script
from base import BaseDataLoader
from base.base_data_loader import ResumableBatchSampler
from parse_config import ConfigParser
from tests.helpers import PROJECT_DIR, build_trainer, config_for_tests
from tests.parts import Digits, TemplateStyleDigits

DATA = str(PROJECT_DIR / "data")


def test_batch_order_depends_only_on_seed_and_epoch():
    """Two loaders with the same seed give the same batches in an epoch; epochs differ; skipping
    samples leaves out exactly the first batches."""
    a = BaseDataLoader(Digits(DATA, True), 32, validation_split=0.1, seed=3)
    b = BaseDataLoader(Digits(DATA, True), 32, validation_split=0.1, seed=3)
    a.batch_sampler.set_epoch(2)
    b.batch_sampler.set_epoch(2)
    assert all(torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    b.batch_sampler.set_epoch(3)
    assert not all(torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    b.batch_sampler.set_epoch(2, skip_samples=4 * 32)
    assert [y[1].tolist() for y in b] == [x[1].tolist() for x in list(a)[4:]]


def test_in_memory_tensors_and_worker_processes_give_the_same_batches():
    """A TensorDataset is sliced directly; the same data through torch's DataLoader with worker
    processes and a collate function yields the very same batches."""
    plain = Digits(DATA, True)
    fast = BaseDataLoader(torch.utils.data.TensorDataset(plain.images, plain.labels), 100, seed=1)
    workers = BaseDataLoader(plain, 100, True, 0.0, 2, torch.utils.data.default_collate, seed=1)
    for x, y in zip(fast, workers, strict=True):
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])


@pytest.mark.parametrize("split, held_out", [(0.2, 287), (100, 100)])
def test_validation_split_is_a_fraction_or_a_count_and_disjoint(split, held_out):
    loader = BaseDataLoader(Digits(DATA, True), 64, validation_split=split, seed=0)
    assert len(loader.valid_indices) == held_out and loader.n_samples == 1437 - held_out
    train = {i for x in loader.batch_sampler.batches() for i in x.tolist()}
    assert train.isdisjoint(loader.valid_indices.tolist())
    assert sum(len(y) for _, y in loader.split_validation()) == held_out


@pytest.mark.parametrize("split", [1437, 2000, 0.0001])
def test_a_split_that_leaves_nothing_is_refused_in_one_line(split):
    from utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"config key 'data_loader\.args\.validation_split'"):
        BaseDataLoader(Digits(DATA, True), 64, validation_split=split, seed=0)


def test_shards_cover_each_global_batch_and_count_positions_in_samples():
    """Under DDP each process gets its part of every global batch, all get the same number of
    batches (padding repeats a few samples), and the position after k batches counts the samples
    of the whole epoch consumed, never more than it has."""
    indices = torch.arange(10)
    shards = [ResumableBatchSampler(indices, 2, shuffle=False, seed=0) for _ in range(3)]
    for rank, sampler in enumerate(shards):
        sampler.shard(rank, 3)
    batches = [sampler.batches() for sampler in shards]
    assert [len(b) for b in batches] == [2, 2, 2]
    assert torch.cat([batches[r][0] for r in range(3)]).tolist() == [0, 1, 2, 3, 4, 5]
    assert shards[0].position(1) == 6 and shards[0].position(2) == 12 and shards[0].position(9) == 12
    shards[0].set_epoch(1, skip_samples=12)
    assert len(shards[0]) == 0 and shards[0].batches() == []


def test_a_pytorch_template_style_loader_works_from_the_config(tmp_path):
    """A loader without `seed`, with `collate_fn` passed positionally and worker processes, trains
    from the config by its dotted path; its order follows the config's seed."""
    trainer = build_trainer(
        "data_loader.type=tests.parts.TemplateStyleDigits", "data_loader.args.num_workers=1", "trainer.epochs=1"
    )
    assert isinstance(trainer.data_loader, TemplateStyleDigits)
    assert trainer.data_loader.seed == 0 and trainer.data_loader.collate_fn is torch.utils.data.default_collate
    assert trainer.train(tmp_path)["val_accuracy"] > 0.3


def test_test_split_is_evaluated_whole_whatever_the_loader_does_with_validation_split(tmp_path, capsys):
    """test.py scores every test sample, also with a loader that applies validation_split to the
    test split (as pytorch-template's example loader does)."""
    trainer = build_trainer("trainer.epochs=1", f"trainer.save_dir={tmp_path.as_posix()}")
    (tmp_path / "run").mkdir()
    trainer.train(tmp_path / "run")
    data = ["--set", "data_loader.type=tests.parts.TemplateStyleDigits", "--set", f"data_loader.args.data_dir={DATA}"]
    assert test_script.main(["-r", str(tmp_path / "run" / "model_best.pth"), "-d", "cpu", *data]) == 0
    assert "360 samples" in capsys.readouterr().out
    config = ConfigParser(config_for_tests("data_loader.type=tests.parts.TemplateStyleDigits"))
    assert test_script.test_loader(config).n_samples == 360
    larger_than_the_test_split = ConfigParser(config_for_tests("data_loader.args.validation_split=400"))
    assert test_script.test_loader(larger_than_the_test_split).n_samples == 360
