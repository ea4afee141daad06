"""What pytorch-template users' code calls keeps working here (README: "Coming from
pytorch-template"); tests/parts.py holds a loader written in its style."""

import json

import torch

import tests.parts as module_arch
import train
from parse_config import ConfigParser
from tests.helpers import PROJECT_DIR, config_for_tests


def test_config_parser_takes_pytorch_templates_call_forms():
    """init_obj(name, module, *args) and init_ftn(name, module) as pytorch-template's train.py
    calls them, and config["key"] lookups."""
    config = ConfigParser(config_for_tests())
    model = config.init_obj("arch", module_arch)
    assert isinstance(model, module_arch.TinyCNN)
    trainable = filter(lambda p: p.requires_grad, model.parameters())
    optimizer = config.init_obj("optimizer", torch.optim, trainable)
    scheduler = config.init_obj("lr_scheduler", torch.optim.lr_scheduler, optimizer)
    assert isinstance(optimizer, torch.optim.AdamW) and isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    make_scheduler = config.init_ftn("lr_scheduler", torch.optim.lr_scheduler)
    assert make_scheduler(optimizer).step_size == 2
    assert config["trainer"]["epochs"] == 3
    assert config.init_ftn("arch", module_arch)().num_classes == 10


def test_a_config_with_n_gpu_and_without_seed_trains(tmp_path, monkeypatch):
    """pytorch-template's configs carry `n_gpu` and no `seed`: both are fine (n_gpu 0 means the CPU)."""
    monkeypatch.chdir(PROJECT_DIR)
    config = config_for_tests("trainer.epochs=1", f"trainer.save_dir={tmp_path.as_posix()}", "n_gpu=0")
    del config["seed"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    assert train.main(["-c", str(path)]) == 0
