"""Replay the fault campaign against freshly baked projects and print, per class, tried/held.

    OMP_NUM_THREADS=1 python scripts/reliability_campaign.py            # about 15 minutes on 2 cores
    OMP_NUM_THREADS=1 python scripts/reliability_campaign.py --keep /tmp/campaign

Bakes the default project (digits, TensorBoard), an image-folder one and a YAML + MLflow one,
then runs the generated projects' own table-driven fault tests (slow ones included) with pytest:
each case is a real run hit by a real fault (signals to a process or its whole group, kill -9, damaged checkpoints,
configs that fail only when training, a second writer, failing writers, torchrun, checkpoints and
studies forged to run code, tracking servers out of reach, malformed config values). A case held
when its test passed. Exit code 0 when every case held.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTORCH_TEMPLATE_SKIP_SMOKE": "1"}
# class of fault: the tests (file, or file::test name prefix) that replay it, per baked project
CLASSES = {
    "1. any stop point resumes bit-identically": [
        "test_resume.py::test_any_stop_point",
        "test_trainer.py::test_signal_saves_and_resume_ends_bit_identical",
        "test_reliability.py::test_signal_to_a_real_process",
        "test_distributed.py::test_sigterm_to_torchrun",
        "test_distributed.py::test_two_processes",
        "test_resume.py::test_augmentation_in_workers",
        "test_image_folder.py::test_shipped_config_resumes_bit_identically",
    ],
    "2. signals as clusters send them": [
        "test_signals.py",
        "test_slurm.py",
        "test_resume.py::test_sigusr1",
        "test_reliability.py::test_a_signal_delivered_twice",
        "test_reliability.py::test_a_later_second_signal",
        "test_reliability.py::test_kill_9",
        "test_image_folder.py::test_sigterm_to_the_process_group",
    ],
    "3. dry run before any file is written": ["test_dry_run.py"],
    "4. checkpoint contents checked where read": [
        "test_checkpoint_contents.py",
        "test_checkpoint.py::test_unusable_checkpoint",
    ],
    "5. one writer per run folder": [
        "test_run_folder_lock.py",
        "test_reliability.py::test_two_runs_started_together",
    ],
    "6. background writers fail in one line": [
        "test_tensorboard.py::test_a_failing_tensorboard_writer",
        "test_checkpoint.py::test_a_failed_save",
    ],
    "7. DDP: one failure ends all, one message": [
        "test_distributed.py::test_a_failed_save_on_the_main_process",
        "test_distributed.py::test_a_config_error_under_torchrun",
        "test_distributed.py::test_a_mistake_on_one_process_alone",
    ],
    "8. shared files never choose code or addresses": [
        "test_shared_files.py",
        "test_sweep.py::test_the_best_config_takes_only_declared_values",
        "test_sweep.py::test_a_trials_values_must_be_points",
    ],
    "9. trackers never break a run that trained": [
        "test_trackers.py::test_a_tracker_that_cannot_write",
        "test_trackers.py::test_a_bug_in_a_tracker",
        "test_trackers.py::test_tracker_mistakes_are_one_line",
        "test_mlflow.py::test_a_trial_killed",
        "test_mlflow.py::test_a_tracking_uri_mlflow_refuses",
        "test_mlflow.py::test_a_tracking_server_out_of_reach",
        "test_mlflow.py::test_each_trial_of_a_sweep",
    ],
    "10. config values refused in one line": [
        "test_config_errors.py::test_broken_config_gives_one_line",
        "test_config_errors.py::test_torchrun_device_choices",
        "test_config_errors.py::test_broken_yaml",
        "test_example.py::test_model_arguments_out_of_range",
        "test_dry_run.py::test_devices_that_are_not_there",
    ],
    "11. one traceback for one bug, no wrong advice": [
        "test_signals.py::test_an_error_exit_with_worker_processes",
        "test_reliability.py::test_kill_9_during_the_first_save",
        "test_checkpoint.py::test_a_failed_first_save",
        "test_image_folder.py::test_verbosity_2",
        "test_image_folder.py::test_smoke_sample_and_training_follow",
        "test_image_folder.py::test_wrong_number_of_classes",
    ],
}
PROJECTS = {
    "digits": [],
    "image_folder": ["dataset=image_folder"],
    "mlflow_yaml": ["mlflow=yes", "config_format=yaml"],
}


def bake(folder: Path, answers: list[str]) -> Path:
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(folder), str(TEMPLATE), *answers]
    subprocess.run(command, check=True, env=ENV, capture_output=True)
    return folder / "my_project"


def classify(test_id: str) -> str | None:
    for name, patterns in CLASSES.items():
        if any(test_id.startswith(pattern) for pattern in patterns):
            return name
    return None


def replay(project: Path, report: Path) -> list[tuple[str, bool]]:
    """Run the project's fault tests; return (test id, held) for each case that ran."""
    files = sorted({pattern.split("::")[0] for patterns in CLASSES.values() for pattern in patterns})
    present = [f"tests/{name}" for name in files if (project / "tests" / name).is_file()]
    command = [sys.executable, "-m", "pytest", "-q", "-m", "slow or not slow", "-p", "no:cacheprovider"]
    subprocess.run([*command, f"--junitxml={report}", *present], cwd=project, env=ENV)
    cases = []
    for case in ElementTree.parse(report).iter("testcase"):  # noqa: S314 - written by our own pytest run
        if case.find("skipped") is not None:
            continue
        test_id = f"{case.get('classname').rsplit('.', 1)[-1]}.py::{case.get('name')}"
        cases.append((test_id, case.find("failure") is None and case.find("error") is None))
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="bake into this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="campaign-") as tmp:
        root = args.keep or Path(tmp)
        tried, held, failed = Counter(), Counter(), []
        for name, answers in PROJECTS.items():
            project = bake(root / name, answers)
            for test_id, ok in replay(project, root / f"{name}.xml"):
                kind = classify(test_id)
                if kind is None:
                    continue
                tried[kind] += 1
                held[kind] += ok
                failed += [] if ok else [f"{name}: {test_id}"]
    print(f"\n{'class of fault':50s} tried  held")
    for kind in CLASSES:
        print(f"{kind:50s} {tried[kind]:5d} {held[kind]:5d}")
    print(f"{'all':50s} {sum(tried.values()):5d} {sum(held.values()):5d}")
    for test_id in failed:
        print(f"did not hold: {test_id}")
    return 0 if not failed and sum(tried.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
