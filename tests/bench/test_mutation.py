"""bench.mutation's own logic: the plan, the snapshot, the constants pass, reading
mutmut's verdicts, the equivalents list and the record (mutmut itself is not run)."""

from __future__ import annotations

import configparser
import json
import subprocess
from pathlib import Path

import pytest

from bench.mutation import (
    Mutant,
    changed_lines,
    constant_changes,
    equivalent_line,
    function_of,
    mirrored_test,
    mutmut_settings,
    parse_equivalents,
    plan,
    pytest_verdict,
    read_verdicts,
    snapshot,
    summary,
    tally,
    update_record,
    without_mutmut_table,
)


def test_tests_mirror_the_source_tree() -> None:
    assert mirrored_test("gateway/times.py") == "tests/gateway/test_times.py"
    assert mirrored_test("schema/cursors.py") == "tests/schema/test_cursors.py"
    assert (
        mirrored_test("gateway/upstreams/resilience.py")
        == "tests/gateway/upstreams/test_resilience.py"
    )


def make_files(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("")


def test_a_plan_is_the_modules_named_with_their_mirrors_and_the_tests_added(
    tmp_path: Path,
) -> None:
    make_files(
        tmp_path,
        "gateway/times.py",
        "tests/gateway/test_times.py",
        "schema/cursors.py",
        "tests/schema/test_cursors.py",
        "tests/schema/test_query.py",
    )
    chosen = plan(
        tmp_path,
        ["gateway/times.py", str(tmp_path / "schema/cursors.py")],
        extra_tests=["tests/schema/test_query.py"],
    )
    assert chosen.modules == ("gateway/times.py", "schema/cursors.py")
    assert chosen.tests_by_module["gateway/times.py"] == (
        "tests/gateway/test_times.py",
        "tests/schema/test_query.py",
    )
    assert chosen.tests == (
        "tests/gateway/test_times.py",
        "tests/schema/test_query.py",
        "tests/schema/test_cursors.py",
    )
    # Taken from the working tree: the modules and every test run; the rest from HEAD.
    assert set(chosen.own) == {*chosen.modules, *chosen.tests}


def test_a_plan_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    make_files(tmp_path, "gateway/caller.py", "bench/run.py")
    with pytest.raises(SystemExit) as refused:
        plan(tmp_path, ["gateway/caller.py", "bench/run.py", "gateway/nope.py"], extra_tests=[])
    assert str(refused.value) == (
        "bench.mutation:"
        " gateway/caller.py: no tests/gateway/test_caller.py; name its tests with --tests;"
        " bench/run.py: not in gateway/ or schema/;"
        " gateway/nope.py: no such module"
    )
    with pytest.raises(SystemExit, match=r"tests/missing\.py: no such test file"):
        plan(tmp_path, ["gateway/caller.py"], extra_tests=["tests/missing.py"])


def test_all_is_every_committed_module_as_committed(tmp_path: Path) -> None:
    committed = {
        "gateway/times.py",
        "gateway/caller.py",
        "tests/gateway/test_times.py",
        "schema/schema.graphql",
        "bench/run.py",
    }
    chosen = plan(tmp_path, [], extra_tests=[], committed=committed)
    assert chosen.modules == ("gateway/caller.py", "gateway/times.py")
    assert chosen.tests_by_module == {
        "gateway/caller.py": (),
        "gateway/times.py": ("tests/gateway/test_times.py",),
    }
    assert chosen.own == ()


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_the_snapshot_is_head_but_for_the_files_named(tmp_path: Path) -> None:
    repo, tree = tmp_path / "repo", tmp_path / "tree"
    make_files(repo, "gateway/times.py", "gateway/config.py", "tests/gateway/test_times.py")
    (repo / ".gitignore").write_text("gateway/static/\n__pycache__/\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    (repo / "gateway/times.py").write_text("# being rewritten\n")
    (repo / "gateway/config.py").write_text("someone else's half-done work\n")
    make_files(repo, "gateway/static/graphiql/app.js", "gateway/__pycache__/times.pyc")
    snapshot(repo, tree, ["gateway/times.py", "tests/gateway/test_times.py"])
    assert (tree / "gateway/times.py").read_text() == "# being rewritten\n"
    assert (tree / "gateway/config.py").read_text() == ""
    assert (tree / "gateway/static/graphiql/app.js").exists()  # built, ignored by git
    assert not (tree / "gateway/__pycache__").exists()


def test_mutmut_reads_the_settings_as_lists() -> None:
    text = mutmut_settings(
        ["gateway/times.py"], ["tests/gateway/test_times.py", "tests/x.py"], ["bench"]
    )
    section = configparser.ConfigParser()
    section.read_string(text)
    # mutmut splits a setting on newlines and drops the empty first line.
    read = {key: [v for v in value.split("\n") if v] for key, value in section["mutmut"].items()}
    assert read == {
        "source_paths": ["gateway", "schema"],
        "only_mutate": ["gateway/times.py"],
        "also_copy": ["bench"],
        "pytest_add_cli_args_test_selection": ["tests/gateway/test_times.py", "tests/x.py"],
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "--hypothesis-seed=0"],
        "process_isolation": ["forkserver"],
    }


def test_a_mutmut_table_in_pyproject_is_left_out_of_the_copy() -> None:
    pyproject = '[project]\nname = "x"\n\n[tool.mutmut]\nsource_paths = ["a"]\n\n[tool.ruff]\n'
    assert without_mutmut_table(pyproject) == '[project]\nname = "x"\n\n[tool.ruff]\n'


SOURCE = '''"""A module: its docstring is no constant."""
from typing import Literal, TypeVar

__all__ = ["LIMIT"]
T = TypeVar("T")
Kind = Literal["a", "b"]
LIMIT = 10
NAME = "é" + "c1"  # a two-byte character before a literal
RATE: float = 0.5
ON = True
LABEL = f"v{LIMIT}"


class Settings:
    retries: int = 2
    timeout = (1, 2.5)

    def method(self) -> int:
        inside = 99  # mutmut's to mutate
        return inside
'''


def test_the_constants_pass_changes_each_literal_of_a_constant_once() -> None:
    changes = constant_changes("gateway/x.py", SOURCE)
    changed = [
        (change.constant, change.line, change.source.splitlines()[change.line - 1])
        for change in changes
    ]
    # Not the docstring, __all__, TypeVar's or Literal's strings, an f-string, nor
    # what is inside a function (mutmut's to mutate).
    assert changed == [
        ("LIMIT", 7, "LIMIT = 11"),
        ("NAME", 8, "NAME = 'XXéXX' + \"c1\"  # a two-byte character before a literal"),
        ("NAME", 8, "NAME = \"é\" + 'XXc1XX'  # a two-byte character before a literal"),
        ("RATE", 9, "RATE: float = 1.5"),
        ("ON", 10, "ON = False"),
        ("Settings.retries", 15, "    retries: int = 3"),
        ("Settings.timeout", 16, "    timeout = (2, 2.5)"),
        ("Settings.timeout", 16, "    timeout = (1, 3.5)"),
    ]
    # Only that line changes, and the diff shows it.
    first = changes[0]
    assert first.diff.splitlines() == [
        "--- gateway/x.py:7",
        "+++ gateway/x.py:7",
        "@@ -1 +1 @@",
        "-LIMIT = 10",
        "+LIMIT = 11",
    ]
    assert [line for line in first.source.splitlines() if line not in SOURCE.splitlines()] == [
        "LIMIT = 11"
    ]
    assert len(first.source.splitlines()) == len(SOURCE.splitlines())


def test_verdicts_are_read_from_mutmut_s_meta_file(tmp_path: Path) -> None:
    meta = tmp_path / "mutants/gateway/times.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"gateway.times.x_a__mutmut_1": 1, "gateway.times.x_a__mutmut_2": 0}
    meta.write_text(json.dumps({"exit_code_by_key": codes, "durations_by_key": {}}))
    status = {1: "killed", 0: "survived"}.__getitem__
    assert read_verdicts(tmp_path / "mutants", "gateway/times.py", status) == [
        ("gateway.times.x_a__mutmut_1", "killed"),
        ("gateway.times.x_a__mutmut_2", "survived"),
    ]
    assert read_verdicts(tmp_path / "mutants", "schema/cursors.py", status) == []


def test_a_constant_is_killed_by_a_failing_or_crashing_test_run() -> None:
    assert [pytest_verdict(code) for code in (0, 1, 2, 3, 4, 5, -11)] == [
        "survived",
        "killed",
        "killed",
        "killed",
        "suspicious",  # a usage error: the command, not the mutant
        "suspicious",  # no test collected
        "segfault",
    ]


def test_a_survivor_is_named_by_its_function_or_method() -> None:
    assert function_of("gateway.times.x_whole_second__mutmut_5") == "whole_second"
    assert function_of("gateway.cache.pages.xǁPageCacheǁget__mutmut_12") == "PageCache.get"


DIFF = """--- gateway/times.py
+++ gateway/times.py
@@ -1,4 +1,4 @@
 def format_iso(moment: datetime) -> str:
-    return orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:24].decode() + "Z"
+    return orjson.dumps(moment, option=None)[1:24].decode() + "Z"
"""


def mutant(name: str, status: str, diff: str = "") -> Mutant:
    return Mutant(
        "gateway/times.py", name, function_of(name) if "__" in name else name, status, diff
    )


def test_survivors_listed_as_equivalent_are_counted_apart() -> None:
    survivor = mutant("gateway.times.x_format_iso__mutmut_15", "survived", DIFF)
    line = equivalent_line(survivor, "the option only writes the offset, cut off")
    assert line == (
        "- `gateway/times.py` `format_iso`:"
        ' `return orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:24].decode() + "Z"` →'
        ' `return orjson.dumps(moment, option=None)[1:24].decode() + "Z"`:'
        " the option only writes the offset, cut off"
    )
    assert changed_lines(DIFF)[1] == 'return orjson.dumps(moment, option=None)[1:24].decode() + "Z"'
    equivalents = parse_equivalents(f"# Mutation testing\n\nSome text.\n\n{line}\n")
    counted = tally(
        "gateway/times.py",
        [
            mutant("gateway.times.x_a__mutmut_1", "killed"),
            mutant("gateway.times.x_a__mutmut_2", "killed"),
            mutant("gateway.times.x_a__mutmut_3", "timeout"),
            mutant("gateway.times.x_a__mutmut_5", "segfault"),
            survivor,
            mutant("gateway.times.x_a__mutmut_4", "no tests", "-a\n+b\n"),
            mutant("gateway/times.py:22:_MIN_MS", "survived", "-_MIN_MS = 1\n+_MIN_MS = 2\n"),
        ],
        equivalents,
    )
    assert (counted.killed, counted.timeout, counted.survived, counted.total) == (2, 2, 3, 7)
    assert (counted.equivalent, counted.constants, counted.others) == (1, 1, {"no tests": 1})
    assert counted.kill_rate == pytest.approx(4 / 7)
    assert counted.rate_with_equivalents == pytest.approx(5 / 7)
    assert summary(counted) == (
        "gateway/times.py: 2 killed / 3 survived (1 shown equivalent, 1 no tests)"
        " / 2 timeout / 7 total (1 of them constants): kill rate 57.1%,"
        " 71.4% with the equivalents"
    )


def test_the_record_keeps_its_text_and_other_modules_rows() -> None:
    first = update_record("", {"schema/cursors.py": "| `schema/cursors.py` | 1 |"})
    assert first.startswith("# Mutation testing\n\n<!-- kill rates")
    written = update_record(
        "# Mutation testing\n\nHow to read a survivor.\n"
        + first.partition("# Mutation testing\n")[2]
        + "\n## Survivors shown equivalent\n",
        {"gateway/times.py": "| `gateway/times.py` | 2 |"},
    )
    again = update_record(written, {"gateway/times.py": "| `gateway/times.py` | 3 |"})
    rows = [line for line in again.splitlines() if line.startswith("| `")]
    assert rows == ["| `gateway/times.py` | 3 |", "| `schema/cursors.py` | 1 |"]
    assert "How to read a survivor." in again
    assert again.endswith("## Survivors shown equivalent\n")
