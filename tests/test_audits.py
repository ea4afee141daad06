"""The CI and packaging files of every baked project pass the real tools that audit them, offline,
at the versions pinned in requirements-dev.txt:

- check-jsonschema's GitHub schemas: `.github/workflows/ci.yml` is a valid workflow and
  `.github/dependabot.yml` a valid Dependabot config;
- zizmor (offline, pedantic persona): no finding in the workflow, the Dependabot config or the
  pre-commit config (actions pinned to commits, a read-only token, no persisted credentials,
  a cooldown before updates are proposed, ...);
- pre-commit validate-config: `.pre-commit-config.yaml` is a config pre-commit accepts;
- validate-pyproject: `pyproject.toml` holds valid metadata (PEP 621, SPDX license, PEP 508
  dependencies, known trove classifiers).

The curated combinations are audited (tests/helpers.py ``CURATED``: every value of every option
next to every value of every other; all 2,304 with ``-m full_product``), each baked once per run
(conftest.py ``baked``). Many share identical files, so each tool runs once, over one file for
each distinct content: a file that fails fails for every combination that has it, and the
output names one of them. The
template repository's own CI files pass the same audits. The last tests break a real file on
purpose and check that each audit rejects it: none of these audits can pass by doing nothing.
"""

import re
import shutil
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from helpers import COMBINATIONS, CURATED, REPO, TEMPLATE, combination_id, run

# The audited files of a project, and whether a combination has them.
AUDITED = {
    "workflow": ".github/workflows/ci.yml",
    "dependabot": ".github/dependabot.yml",
    "pre-commit": ".pre-commit-config.yaml",
    "pyproject": "pyproject.toml",
}
# The files zizmor audits (it finds them itself in a project folder).
ZIZMOR_KINDS = ("workflow", "dependabot", "pre-commit")
# requirements-dev.txt name -> distribution name, for the version check.
AUDIT_TOOLS = {
    "check-jsonschema": "check-jsonschema",
    "zizmor": "zizmor",
    "pre-commit": "pre-commit",
    "validate-pyproject[all]": "validate-pyproject",
}
TOOL_TIMEOUT_S = 300
FULL_SHA = re.compile(r"[0-9a-f]{40}")


def has_file(kind, answers):
    """Whether a project made with ``answers`` has the file of ``kind``."""
    return {
        "workflow": answers["github_actions"],
        "dependabot": answers["github_actions"],
        "pre-commit": answers["pre_commit"],
        "pyproject": True,
    }[kind]


def zizmor_executable():
    """The zizmor installed next to this interpreter (requirements-dev.txt), else on PATH."""
    found = shutil.which("zizmor", path=sysconfig.get_path("scripts")) or shutil.which("zizmor")
    if found is None:
        pytest.fail("zizmor is not installed: python -m pip install -r requirements-dev.txt")
    return found


def audit_command(kind, paths):
    """The command that audits files of ``kind`` (for zizmor: project folders), all in one run."""
    paths = [str(path) for path in paths]
    if kind == "workflow":
        return [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *paths]
    if kind == "dependabot":
        return [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.dependabot", *paths]
    if kind == "zizmor":
        # --strict-collection: a file zizmor cannot parse is an error, not a warning and a skip.
        options = ["--offline", "--no-config", "--strict-collection", "--persona", "pedantic", "--no-progress"]
        return [zizmor_executable(), *options, *paths]
    if kind == "pre-commit":
        return [sys.executable, "-m", "pre_commit", "validate-config", *paths]
    if kind == "pyproject":
        return [sys.executable, "-m", "validate_pyproject", *paths]
    raise ValueError(kind)


def run_audit(kind, paths, workdir):
    """Run one audit, offline and without touching the user's caches; return the finished process."""
    env = {
        "VALIDATE_PYPROJECT_NO_NETWORK": "1",  # classifiers come from the trove-classifiers package
        "PRE_COMMIT_HOME": str(Path(workdir) / "pre-commit-home"),
        "NO_COLOR": "1",
    }
    return run(audit_command(kind, paths), cwd=workdir, timeout=TOOL_TIMEOUT_S, env=env)


def describe(groups):
    """Which combinations each audited file stands for, for failure messages."""
    lines = []
    for paths in groups.values():
        others = len(paths) - 1
        lines.append(f"{paths[0]} (and {others} other combinations with the same content)")
    return "\n".join(lines)


COMBINATION_SETS = [
    pytest.param(CURATED, id="curated"),
    pytest.param(COMBINATIONS, id="full-product", marks=pytest.mark.full_product),
]


@pytest.fixture(scope="module", params=COMBINATION_SETS)
def combinations(request):
    """The combinations to audit: the curated ones, or (``-m full_product``) all of them."""
    return request.param


@pytest.fixture(scope="module")
def distinct_files(baked, combinations):
    """{kind: {content: [the file in each combination that has it]}} over the combinations."""
    groups = {kind: {} for kind in AUDITED}
    for answers in combinations:
        project, error = baked(answers)
        if error is not None:
            continue  # test_every_combination_has_the_files_to_audit reports it
        for kind, relative in AUDITED.items():
            path = project / relative
            if path.is_file():
                groups[kind].setdefault(path.read_bytes(), []).append(path)
    return groups


def test_every_combination_has_the_files_to_audit(baked, combinations):
    """Each combination bakes, with a workflow and a Dependabot config exactly when GitHub
    Actions was chosen, a pre-commit config exactly when pre-commit was, and a pyproject.toml:
    the audits below cannot skip a file by its absence."""
    problems = []
    for answers in combinations:
        name = combination_id(answers)
        project, error = baked(answers)
        if error is not None:
            problems.append(f"{name}: {error}")
            continue
        for kind, relative in AUDITED.items():
            if (project / relative).is_file() != has_file(kind, answers):
                problems.append(f"{name}: {relative} {'missing' if has_file(kind, answers) else 'unexpected'}")
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize(
    ("kind", "success"),
    [
        ("workflow", "ok -- validation done"),
        ("dependabot", "ok -- validation done"),
        ("pre-commit", None),
        ("pyproject", "Valid file"),
    ],
    ids=["workflow-schema", "dependabot-schema", "pre-commit-validate-config", "validate-pyproject"],
)
def test_every_baked_file_passes_its_validator(distinct_files, tmp_path, kind, success):
    """Every combination's workflow and Dependabot config pass check-jsonschema's GitHub
    schemas, its pre-commit config passes `pre-commit validate-config` and its pyproject.toml
    passes validate-pyproject."""
    groups = distinct_files[kind]
    assert groups, f"no {AUDITED[kind]} was baked"
    result = run_audit(kind, [paths[0] for paths in groups.values()], tmp_path)
    assert result.returncode == 0, f"{result.stdout[-6000:]}\nAudited:\n{describe(groups)}"
    if success is not None:
        assert success in result.stdout, result.stdout[-2000:]


def test_zizmor_finds_nothing_in_any_baked_project(distinct_files, tmp_path):
    """zizmor, offline and at its pedantic persona, reports no finding in any combination's
    workflow, Dependabot config or pre-commit config: actions pinned to full commit hashes, a
    read-only token, no credentials left in the checkout, a cooldown on Dependabot updates."""
    projects = {}  # project folder -> None: ordered, one per distinct content of each file
    for kind in ZIZMOR_KINDS:
        for paths in distinct_files[kind].values():
            projects.setdefault(project_of(paths[0], kind), None)
    result = run_audit("zizmor", projects, tmp_path)
    described = "\n".join(describe(distinct_files[kind]) for kind in ZIZMOR_KINDS)
    assert result.returncode == 0, f"{result.stdout[-6000:]}\nAudited:\n{described}"
    assert "No findings to report" in result.stdout, result.stdout[-2000:]


def project_of(path, kind):
    """The project folder of an audited file."""
    return path.parents[len(Path(AUDITED[kind]).parts) - 1]


def test_template_repository_ci_files_pass_the_same_audits(tmp_path):
    """The template repository's own workflow and Dependabot config pass the GitHub schemas
    and zizmor, and its pyproject.toml passes validate-pyproject."""
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows
    for kind, paths in (
        ("workflow", workflows),
        ("dependabot", [REPO / ".github" / "dependabot.yml"]),
        ("pyproject", [REPO / "pyproject.toml"]),
        ("zizmor", [REPO / ".github"]),
    ):
        result = run_audit(kind, paths, tmp_path)
        assert result.returncode == 0, f"{kind}:\n{result.stdout[-6000:]}"


def uses(workflow_text):
    """{action: (commit, version comment)} for every `uses:` line of a workflow."""
    found = {}
    for action, ref, comment in re.findall(r"uses:\s*([\w./-]+)@(\S+)(?:\s*#\s*(\S+))?", workflow_text):
        assert found.get(action, (ref, comment)) == (ref, comment), f"{action} is used at two versions"
        found[action] = (ref, comment)
    return found


def test_generated_workflow_pins_the_same_actions_as_the_template_workflow():
    """The generated workflow and the template's own use the same actions at the same full
    commit hashes, each with its version in a comment: Dependabot keeps the template's current,
    and this test makes the generated project's follow."""
    generated = uses((TEMPLATE / AUDITED["workflow"]).read_text(encoding="utf-8"))
    own = uses((REPO / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    assert generated == own
    for action, (commit, version) in generated.items():
        assert FULL_SHA.fullmatch(commit), action
        assert re.fullmatch(r"v\d+\.\d+\.\d+", version or ""), f"{action}: the version comment is missing"


def test_generated_workflow_covers_three_systems_and_keeps_the_slow_tests_on_linux(distinct_files):
    """Every generated workflow tests on Linux, macOS and Windows with CPU-only torch and pip
    caching, runs every step under bash (Windows included), cancels superseded runs, runs the
    whole suite on Linux and the fast tier (no POSIX signals, no torchrun) elsewhere."""
    for paths in distinct_files["workflow"].values():
        workflow = yaml.safe_load(paths[0].read_text(encoding="utf-8"))
        assert workflow["permissions"] == {"contents": "read"}, paths[0]
        assert workflow["concurrency"]["cancel-in-progress"] is True, paths[0]
        job = workflow["jobs"]["test"]
        assert job["strategy"]["matrix"]["os"] == ["ubuntu-latest", "macos-latest", "windows-latest"]
        assert job["defaults"]["run"]["shell"] == "bash"
        steps = job["steps"]
        (setup,) = [step for step in steps if step.get("uses", "").startswith("actions/setup-python@")]
        assert setup["with"]["cache"] == "pip"
        install = " ".join(step.get("run", "") for step in steps if "pip install" in step.get("run", ""))
        assert "--index-url https://download.pytorch.org/whl/cpu" in install
        tests = {step.get("if"): step["run"] for step in steps if step.get("run", "").startswith("python -m pytest")}
        assert tests == {
            "runner.os == 'Linux'": 'python -m pytest -m "slow or not slow"',
            "runner.os != 'Linux'": "python -m pytest",
        }, paths[0]


def pinned_versions():
    """{requirement name: version} of the `name==version` lines of requirements-dev.txt."""
    text = (REPO / "requirements-dev.txt").read_text(encoding="utf-8")
    return dict(re.findall(r"^([\w.\[\]-]+)==(\S+)", text, flags=re.MULTILINE))


def test_audit_tools_are_the_pinned_versions():
    """The audits run the tool versions pinned in requirements-dev.txt (what they report
    changes between releases), and the generated projects pin the template's ruff."""
    pins = pinned_versions()
    for requirement, distribution in AUDIT_TOOLS.items():
        assert requirement in pins, f"{requirement} is not pinned in requirements-dev.txt"
        assert metadata.version(distribution) == pins[requirement], (
            f"{distribution} {metadata.version(distribution)} is installed, requirements-dev.txt pins "
            f"{pins[requirement]}: python -m pip install -r requirements-dev.txt"
        )
    assert f'"ruff=={pins["ruff"]}"' in (TEMPLATE / "pyproject.toml").read_text(encoding="utf-8")


# --- each audit can fail -----------------------------------------------------------------------

# name: (audit, file of the default project, pattern, replacement, what the tool must report)
BROKEN = {
    "workflow-schema-job-without-runs-on": ("workflow", "workflow", r"\n    runs-on:", "\n    runs_on:", "runs-on"),
    "dependabot-schema-unknown-interval": (
        "dependabot",
        "dependabot",
        r"interval: weekly",
        "interval: fortnightly",
        "fortnightly",
    ),
    "zizmor-unpinned-checkout": (
        "zizmor",
        "workflow",
        r"actions/checkout@[0-9a-f]{40}",
        "actions/checkout@v4",
        "unpinned-uses",
    ),
    "zizmor-default-permissions": (
        "zizmor",
        "workflow",
        r"\npermissions:\n  contents: read\n",
        "\n",
        "excessive-permissions",
    ),
    "zizmor-persisted-credentials": (
        "zizmor",
        "workflow",
        r"\n\s+with:\n\s+persist-credentials: false",
        "",
        "artipacked",
    ),
    "zizmor-dependabot-without-cooldown": (
        "zizmor",
        "dependabot",
        r"\n\s+cooldown:\n\s+default-days: \d+",
        "",
        "dependabot-cooldown",
    ),
    "pre-commit-repo-without-rev": ("pre-commit", "pre-commit", r"\n\s+rev: v[\d.]+", "", "Missing required key: rev"),
    "validate-pyproject-bad-dependency": ("pyproject", "pyproject", r'"torch>=', '"torch>=>', "must be pep508"),
    "validate-pyproject-unknown-classifier": (
        "pyproject",
        "pyproject",
        r"Python :: 3\.14",
        "Python :: 3.99",
        "trove-classifier",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_each_audit_rejects_a_broken_file(default_project, tmp_path, case):
    """Each audit fails, naming the problem, on a default project's file with one flaw put in:
    a job without runs-on, an unknown Dependabot interval, an action pinned to a tag, the
    default token permissions, credentials kept in the checkout, no Dependabot cooldown, a
    pre-commit repo without rev, an invalid dependency, an unknown classifier."""
    audit, kind, pattern, replacement, reported = BROKEN[case]
    original = (default_project / AUDITED[kind]).read_text(encoding="utf-8")
    broken, count = re.subn(pattern, replacement, original)
    assert count, f"{pattern!r} is not in the default project's {AUDITED[kind]}: update this case"
    project = tmp_path / "project"
    path = project / AUDITED[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(broken, encoding="utf-8")
    result = run_audit(audit, [project if audit == "zizmor" else path], tmp_path)
    assert result.returncode != 0, result.stdout[-3000:]
    assert reported in result.stdout, result.stdout[-3000:]
