"""The ``--json`` outputs documented in docs/contracts.md, checked against the real commands.

The document is the golden fixture: its scenario is run as written, then every command under
a ``###`` heading, and each output must match the example below the heading (same keys in the
same order, same types, same values; ``"..."`` in a list means more items of the first one's
shape). Renaming, dropping or retyping a key fails here; so does an undocumented new key.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
from datetime import datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dripline.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "contracts.md"
_SCENARIO = re.compile(r"Scenario:\s*```sh\n(.*?)```", re.S)
_CONTRACT = re.compile(r"^### `(dripline [^`]*--json[^`]*)`\n.*?```json\n(.*?)```", re.S | re.M)
MORE = "..."
NOW_MARK = "<time>"
ANY_STRING = "<string>"


def _contracts() -> list[tuple[str, object]]:
    return [
        (command, json.loads(example)) for command, example in _CONTRACT.findall(DOC.read_text())
    ]


def conforms(example: object, actual: object, where: str = "$") -> list[str]:
    """Where ``actual`` differs from ``example`` (empty when it matches the contract)."""
    if isinstance(example, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {type(actual).__name__}"]
        if list(actual) != list(example):
            return [f"{where}: keys {list(actual)} != documented {list(example)}"]
        return [p for k in example for p in conforms(example[k], actual[k], f"{where}.{k}")]
    if isinstance(example, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {type(actual).__name__}"]
        shown = [e for e in example if e != MORE]
        if (MORE in example and len(actual) < len(shown)) or (
            MORE not in example and len(actual) != len(shown)
        ):
            return [f"{where}: {len(actual)} items, documented {len(shown)}"]
        problems = [
            p
            for i, (e, a) in enumerate(zip(shown, actual, strict=False))
            for p in conforms(e, a, f"{where}[{i}]")
        ]
        for i, item in enumerate(actual[len(shown) :], start=len(shown)):
            problems += _same_shape(shown[0], item, f"{where}[{i}]") if shown else []
        return problems
    if example == NOW_MARK:  # the moment the command ran
        ok = isinstance(actual, str) and datetime.fromisoformat(actual).tzinfo is not None
        return [] if ok else [f"{where}: {actual!r} is not an ISO 8601 time with offset"]
    if example == ANY_STRING:  # differs on every run (a Message-ID, a digest)
        ok = isinstance(actual, str) and actual != ""
        return [] if ok else [f"{where}: {actual!r} is not a non-empty string"]
    if isinstance(example, str) and example.startswith(".../"):  # a path under the project
        ok = isinstance(actual, str) and actual.endswith(example[3:])
        return [] if ok else [f"{where}: {actual!r} does not end with {example[3:]!r}"]
    if type(example) is not type(actual) or example != actual:
        return [f"{where}: {actual!r} != documented {example!r}"]
    return []


def _same_shape(example: object, actual: object, where: str) -> list[str]:
    if isinstance(example, dict):
        if not isinstance(actual, dict) or list(actual) != list(example):
            return [f"{where}: keys differ from the documented item"]
        return [p for k in example for p in _same_shape(example[k], actual[k], f"{where}.{k}")]
    if type(example) is not type(actual):
        return [f"{where}: {type(actual).__name__} != documented {type(example).__name__}"]
    return []


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contracts")
    shutil.copytree(ROOT / "campaigns", root / "campaigns")
    shutil.copytree(ROOT / "templates", root / "templates")
    # The bounce mailbox the scenario processes (Maildir: new/ holds the report).
    shutil.copytree(ROOT / "tests/fixtures/contracts/bounces", root / "bounces")
    for folder in ("cur", "tmp"):
        (root / "bounces" / folder).mkdir()
    scenario = _SCENARIO.search(DOC.read_text())
    assert scenario, "docs/contracts.md lost its scenario block"
    for line in scenario.group(1).splitlines():
        result = _run(root, line)
        assert result.exit_code == 0, f"{line}\n{result.output}"
    return root


def _run(root: Path, command: str):
    """Run one documented command line (``VAR=value ... dripline ...``) in the project."""
    args = shlex.split(command)
    env = {}
    while args and "=" in args[0] and not args[0].startswith("-"):
        name, _, value = args.pop(0).partition("=")
        env[name] = value
    assert args[0] == "dripline", command
    with contextlib.chdir(root):  # relative paths in the scenario are the project's
        return CliRunner(env=env).invoke(
            main, ["--root", str(root), *args[1:]], catch_exceptions=False
        )


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DRIPLINE_DATABASE_URL", "DRIPLINE_ROOT", "DRIPLINE_DEBUG"):
        monkeypatch.delenv(var, raising=False)


def _json_commands(group: click.Group, prefix: str = "dripline") -> list[str]:
    """Every command (``dripline suppress list``) that has a ``--json`` option."""
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):  # the CLI loads its commands on demand
        command = group.get_command(context, name)
        assert command is not None, name
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found += _json_commands(command, path)
        elif any("--json" in p.opts for p in command.params if isinstance(p, click.Option)):
            found.append(path)
    return found


def test_every_json_command_has_a_documented_contract() -> None:
    documented = [command for command, _ in _contracts()]
    commands = _json_commands(main)
    assert "dripline status" in commands and "dripline bounces list" in commands
    assert "dripline report" in commands and "dripline event" in commands
    assert "dripline subscriber show" in commands
    missing = [c for c in commands if not any(d.startswith(c + " ") for d in documented)]
    assert missing == [], f"--json outputs without a contract in docs/contracts.md: {missing}"


@pytest.mark.parametrize(("command", "example"), _contracts(), ids=lambda v: str(v)[:40])
def test_json_output_matches_its_documented_contract(
    project: Path, command: str, example: object
) -> None:
    result = _run(project, command)
    assert result.exit_code == 0, result.output
    assert conforms(example, json.loads(result.output)) == []


def test_the_checker_catches_each_kind_of_break() -> None:
    doc = {"a": 1, "b": [{"c": "x", "d": 2}, MORE]}
    assert conforms(doc, {"a": 1, "b": [{"c": "x", "d": 2}, {"c": "y", "d": 3}]}) == []
    assert conforms(doc, {"a": 1, "b": [{"c": "x", "d": 2}], "e": 0})  # undocumented key
    assert conforms(doc, {"b": [{"c": "x", "d": 2}], "a": 1})  # order
    assert conforms(doc, {"a": "1", "b": [{"c": "x", "d": 2}]})  # type
    assert conforms(doc, {"a": 1, "b": [{"c": "x", "d": 2}, {"c": "y"}]})  # later item's shape
    assert conforms(doc, {"a": 1, "b": []})  # fewer items than shown
    assert conforms({"n": 1}, {"n": True})  # bool is not int
    assert conforms([1, 2], [1, 2, 3])  # no "...": exactly the items shown
    assert conforms({"t": NOW_MARK}, {"t": "2026-11-29T16:18:51+00:00"}) == []
    assert conforms({"t": NOW_MARK}, {"t": "2026-11-29T16:18:51"})  # no offset
    assert conforms({"f": ".../a/b.md"}, {"f": "/tmp/x/a/b.md"}) == []
    assert conforms({"f": ".../a/b.md"}, {"f": "/tmp/x/a/c.md"})


_EXPERIMENT = re.compile(r'^    "experiment": (\{\n.*?^    \})\n', re.S | re.M)


def test_the_documented_experiment_object_matches_the_report():
    """The A/B ``experiment`` object of ``report --json`` (documented in prose, its
    example indented under `dripline report`): the real function's output for a decided
    test has the documented keys, in order, with the documented types and values."""
    from datetime import UTC

    from dripline.campaign import load_campaign
    from dripline.results._experiment import experiment_json
    from dripline.store import KeyTally, StoredWinner, VariantTally, subject_key
    from dripline.store._results_report import StepResults

    (block,) = _EXPERIMENT.findall(DOC.read_text())
    documented = json.loads(block)
    texts = [v["subject"] for v in documented["variants"]]
    project = ROOT / "campaigns" / "ketamine-therapy"
    campaign = load_campaign(project)
    step = campaign.steps[0]
    step = type(step)(**{**step.__dict__, "subjects": tuple(texts), "subject": None})
    campaign = type(campaign)(
        **{**campaign.__dict__, "steps": (step, *campaign.steps[1:]), "winner_after": 100}
    )
    keys = [subject_key(t) for t in texts]
    assert keys == [v["key"] for v in documented["variants"]]
    counts = documented["winner"]["counts"]
    rows = [
        KeyTally(step.id, keys[0], 1, texts[0], False, 152, 45),
        KeyTally(step.id, keys[0], 1, texts[0], True, 200, 0),
        KeyTally(step.id, keys[1], 2, texts[1], False, 148, 7),
    ]
    results = StepResults(step.id, 1, texts[0], variant_rows=rows)
    winner = StoredWinner(
        campaign.slug,
        step.id,
        1,
        texts[0],
        keys[0],
        datetime(2026, 3, 6, 13, 0, 30, tzinfo=UTC),
        5.6906,
        1.27e-08,
        tuple(
            VariantTally(c["variant"], c["sent"], c["clicks"], c["key"], c["subject"])
            for c in counts
        ),
    )
    actual = experiment_json(campaign, results, winner)
    assert conforms(documented, actual) == []
