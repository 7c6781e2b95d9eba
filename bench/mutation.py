"""Mutation testing of chosen modules: ``python -m bench.mutation gateway/times.py``.

A mutant is a small change to the code (``<`` for ``<=``, ``None`` for an argument, a
constant one off); a test suite that notices it kills it, one that does not lets it
survive. This runs mutmut on the modules named (``--all``: every module of ``gateway/``
and ``schema/``, as committed) with their mirrored tests (``gateway/times.py`` ->
``tests/gateway/test_times.py``) and any ``--tests`` added, then a pass of its own over
the modules' constants, which mutmut leaves alone: each number, string and boolean in a
module-level or class-level assignment changed in turn (``n + 1``, ``"XX" + s + "XX"``,
``not b``), the module's tests run once per change.

It works on a snapshot in a temporary directory: the committed tree (HEAD) with the
working tree's version of the modules named, of their tests and of any ``--uncommitted``
files, so that what others have half-done in the same checkout cannot break the run,
and edits made during it do not change it. mutmut's settings are written there
(``setup.cfg``; the repository's pyproject.toml is copied, never changed); only the
modules named are mutated and only their tests run. The snapshot, with mutmut's
``mutants/``, is removed at the end unless ``--keep``.

It prints, per module, killed / survived / timeout / total and the kill rate, each
survivor's diff (marked when ``bench/MUTATION.md`` lists it as shown equivalent), and
writes the kill rates with the command and date into ``bench/MUTATION.md``. Needs the
``mutation`` extra: ``.venv/bin/pip install -e '.[mutation]'``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "bench" / "MUTATION.md"
PACKAGES = ("gateway", "schema")
# What copies of the working tree leave out: version control, environments, caches,
# npm's trees (about 14 MB that no Python test reads), and mutmut's own output.
_NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".venv-tools",
    "node_modules",
    "__pycache__",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
    "mutants",
    "out",
)
# Reproducible verdicts: the same examples on every run (a mutant that only some
# random draw catches is a gap to close with a fixed example). No .pytest_cache.
PYTEST_ARGS = ("-p", "no:cacheprovider", "--hypothesis-seed=0")
CAUGHT = frozenset({"killed", "timeout", "segfault"})
"""mutmut's verdicts that mean the tests noticed: a failure, a run that never ends, or
one that crashed (mutmut's "segfault": killed by a signal)."""


NOT_CHECKED = "not checked"
"""mutmut's verdict for a mutant it did not get to (the run was stopped)."""


def _git(root: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=True).stdout


def mirrored_test(module: str) -> str:
    """``gateway/upstreams/resilience.py`` -> ``tests/gateway/upstreams/test_resilience.py``."""
    path = Path(module)
    return str(Path("tests") / path.parent / f"test_{path.name}")


def all_modules(files: Iterable[str]) -> list[str]:
    """The modules of the packages among ``files``."""
    return sorted(
        path for path in files if path.endswith(".py") and Path(path).parts[0] in PACKAGES
    )


def committed_files(root: Path) -> set[str]:
    listing = _git(root, "ls-tree", "-r", "-z", "--name-only", "HEAD").decode()
    return set(listing.split("\0")) - {""}


def _relative(root: Path, path: str) -> str:
    given = Path(path)
    if given.is_absolute() and given.is_relative_to(root):
        given = given.relative_to(root)
    return given.as_posix()


@dataclass(frozen=True)
class Plan:
    modules: tuple[str, ...]
    tests: tuple[str, ...]
    """Every test file run for mutmut's mutants (mutmut picks, per mutant, the tests
    that call its function)."""
    tests_by_module: Mapping[str, tuple[str, ...]]
    """The test files run for each module's constants: its mirror and the added ones."""
    own: tuple[str, ...]
    """The files taken as the working tree has them; the rest as HEAD has them."""


def plan(
    root: Path,
    modules: Sequence[str],
    *,
    extra_tests: Sequence[str],
    committed: Collection[str] | None = None,
) -> Plan:
    """The modules to mutate and the tests to run: the modules named with their
    mirrored tests, as the working tree has them, or with ``committed`` (HEAD's files)
    every module there is, as committed. ``SystemExit`` with the reason for a module
    or a test that is not there."""
    problems: list[str] = []

    def exists(path: str) -> bool:
        return path in committed if committed is not None else (root / path).is_file()

    chosen = (
        all_modules(committed)
        if committed is not None
        else [_relative(root, module) for module in modules]
    )
    extra = [_relative(root, test) for test in extra_tests]
    problems += [f"{test}: no such test file" for test in extra if not (root / test).is_file()]
    tests_by_module: dict[str, tuple[str, ...]] = {}
    for module in chosen:
        if not module.endswith(".py") or not exists(module):
            problems.append(f"{module}: no such module")
            continue
        if Path(module).parts[0] not in PACKAGES:
            problems.append(f"{module}: not in {' or '.join(f'{p}/' for p in PACKAGES)}")
            continue
        mirror = mirrored_test(module)
        mirrors = [mirror] if exists(mirror) else []
        if not mirrors and not extra and committed is None:
            problems.append(f"{module}: no {mirror}; name its tests with --tests")
        tests_by_module[module] = tuple(dict.fromkeys([*mirrors, *extra]))
    if not chosen:
        problems.append("no module named (or --all)")
    if problems:
        raise SystemExit("bench.mutation: " + "; ".join(problems))
    tests = tuple(dict.fromkeys(test for tests in tests_by_module.values() for test in tests))
    own = tuple(extra) if committed is not None else tuple(dict.fromkeys([*chosen, *tests]))
    return Plan(tuple(chosen), tests, tests_by_module, own)


# --- the snapshot and mutmut's settings ----------------------------------------------


def snapshot(root: Path, tree: Path, own: Iterable[str]) -> None:
    """The committed tree (HEAD), with the working tree's version of the files named in
    ``own`` (the modules, their tests, ``--uncommitted``) and of the built files git
    ignores in the packages (GraphiQL's assets): what another engineer has half-done in
    the same checkout cannot break the run."""
    tree.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(_git(root, "archive", "--format=tar", "HEAD"))) as tar:
        tar.extractall(tree, filter="data")
    built = _git(root, "ls-files", "--others", "--ignored", "--exclude-standard", "--directory")
    ignored = [
        path
        for path in built.decode().splitlines()
        if Path(path).parts[0] in PACKAGES
        and not {"node_modules", "__pycache__"}.intersection(Path(path).parts)
        and not path.endswith(".pyc")
    ]
    for path in [*ignored, *own]:
        source, target = root / path, tree / path
        if source.is_dir():
            shutil.copytree(source, target, ignore=_NOT_COPIED, dirs_exist_ok=True)
        elif source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif target.is_file():  # deleted in the working tree
            target.unlink()


def without_mutmut_table(pyproject: str) -> str:
    """pyproject.toml less any ``[tool.mutmut]`` table, which would win over ours."""
    return re.sub(r"(?ms)^\[tool\.mutmut\]\s*$.*?(?=^\[|\Z)", "", pyproject)


def mutmut_settings(modules: Iterable[str], tests: Iterable[str], also_copy: Iterable[str]) -> str:
    """mutmut's ``[mutmut]`` section of setup.cfg (read when pyproject.toml has no
    ``[tool.mutmut]``). The whole packages are copied into ``mutants/`` so that every
    import works; only the modules named are mutated."""

    def listing(values: Iterable[str]) -> str:
        return "".join(f"\n    {value}" for value in values)

    return (
        "[mutmut]\n"
        f"source_paths ={listing(PACKAGES)}\n"
        f"only_mutate ={listing(modules)}\n"
        f"also_copy ={listing(also_copy)}\n"
        f"pytest_add_cli_args_test_selection ={listing(tests)}\n"
        f"pytest_add_cli_args ={listing(PYTEST_ARGS)}\n"
        # Each run (stats, the clean run, every mutant) forked from a process that has
        # collected the tests but run none: with mutmut's default, mutants are forked
        # from the process that ran them all, and a test counting from a fresh
        # process's state (a metric's total) would fail, "killing" every mutant.
        "process_isolation = forkserver\n"
    )


def prepare(root: Path, tree: Path, the_plan: Plan, uncommitted: Sequence[str]) -> None:
    snapshot(root, tree, [*the_plan.own, *uncommitted])
    pyproject = tree / "pyproject.toml"
    pyproject.write_text(without_mutmut_table(pyproject.read_text()))
    # mutmut copies tests/ and pyproject.toml into mutants/ itself; the rest a test
    # may read (bench/, k8s/, README.md) comes along too.
    also_copy = sorted(
        entry.name
        for entry in tree.iterdir()
        if entry.name not in {*PACKAGES, "tests", "pyproject.toml", "setup.cfg"}
    )
    (tree / "setup.cfg").write_text(mutmut_settings(the_plan.modules, the_plan.tests, also_copy))


def mutmut_command() -> list[str]:
    # The console script, not ``python -m mutmut``: mutmut's own modules must not be
    # imported twice (it warns, and its state would be split in two).
    script = Path(sys.executable).with_name("mutmut")
    if not script.exists():
        raise SystemExit(
            "bench.mutation: mutmut is not installed: .venv/bin/pip install -e '.[mutation]'"
        )
    return [str(script)]


# --- reading mutmut's verdicts --------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    module: str
    name: str
    """mutmut's name (``gateway.times.x_whole_second__mutmut_5``) or, for a constant,
    ``<module>:<line>:<constant>``."""
    function: str
    """Where the change is: a function, ``Class.method``, or a constant's name."""
    status: str
    diff: str = ""

    @property
    def caught(self) -> bool:
        return self.status in CAUGHT


def function_of(mutant_name: str) -> str:
    """``gateway.times.x_whole_second__mutmut_5`` -> ``whole_second``;
    ``gateway.cache.pages.xǁPageCacheǁget__mutmut_2`` -> ``PageCache.get``."""
    mangled = mutant_name.partition("__mutmut_")[0].rpartition(".")[2]
    if "ǁ" in mangled:
        _, class_name, method = mangled.split("ǁ")
        return f"{class_name}.{method}"
    return mangled.removeprefix("x_")


def read_verdicts(
    mutants_dir: Path, module: str, status_of: Callable[[int | None], str]
) -> list[tuple[str, str]]:
    """(mutant name, verdict) of each of the module's mutants, from mutmut's meta file."""
    meta = mutants_dir / f"{module}.meta"
    if not meta.exists():
        return []
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return [(name, status_of(code)) for name, code in exit_codes.items()]


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def mutmut_mutants(tree: Path, module: str) -> list[Mutant]:
    """The module's mutmut mutants with their verdicts, and a diff for each not caught."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    found = []
    for name, status in read_verdicts(tree / "mutants", module, status_by_exit_code.__getitem__):
        diff = ""
        if status not in CAUGHT and status != NOT_CHECKED:
            with working_directory(tree):  # mutmut reads mutants/ from where it runs
                diff = get_diff_for_mutant(name, path=module)
        found.append(Mutant(module, name, function_of(name), status, diff))
    return found


# --- the constants pass ---------------------------------------------------------------


@dataclass(frozen=True)
class ConstantChange:
    constant: str
    line: int
    """1-based line of the literal's start."""
    source: str
    """The module's whole text with the change."""
    diff: str


_NOT_CONSTANTS = frozenset({"__all__", "__slots__", "__match_args__"})
_TYPING_CALLS = frozenset({"TypeVar", "NewType", "ParamSpec", "TypeVarTuple", "TypeAliasType"})


def _changed_literal(node: ast.Constant) -> str | None:
    value = node.value
    if isinstance(value, bool):
        return repr(not value)
    if isinstance(value, int | float):
        return repr(value + 1)
    if isinstance(value, str):
        return repr(f"XX{value}XX")
    if isinstance(value, bytes):
        return repr(b"XX" + value + b"XX")
    return None


def _literals(value: ast.expr) -> Iterator[ast.Constant]:
    """The literals of an assigned value a change to which is a real constant changed:
    not type machinery (``TypeVar("T")``, ``Literal[...]``) nor f-string parts."""
    if isinstance(value, ast.Call):
        called = value.func
        name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
        if name in _TYPING_CALLS:
            return
    if isinstance(value, ast.Subscript):
        subscripted = value.value
        name = getattr(subscripted, "attr", getattr(subscripted, "id", ""))
        if name in {"Literal", "Annotated"}:
            return
    if isinstance(value, ast.JoinedStr):
        return
    if isinstance(value, ast.Constant):
        if _changed_literal(value) is not None:
            yield value
        return
    for child in ast.iter_child_nodes(value):
        if isinstance(child, ast.expr):
            yield from _literals(child)


def _assignments(body: Sequence[ast.stmt], prefix: str = "") -> Iterator[tuple[str, ast.expr]]:
    """(constant name, value) of the assignments of a module's or a class's body."""
    for statement in body:
        if isinstance(statement, ast.ClassDef):
            yield from _assignments(statement.body, f"{prefix}{statement.name}.")
            continue
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        names = [target.id for target in targets if isinstance(target, ast.Name)]
        if names and not _NOT_CONSTANTS.intersection(names):
            yield prefix + "/".join(names), value


def constant_changes(module: str, text: str) -> list[ConstantChange]:
    """One change per literal in the module's constants (mutmut mutates only the code
    inside functions)."""
    lines = text.splitlines(keepends=True)
    changes = []
    for constant, value in _assignments(ast.parse(text).body):
        for literal in _literals(value):
            # Parsed nodes always have their end; ast's columns count UTF-8 bytes.
            first, last = literal.lineno - 1, (literal.end_lineno or literal.lineno) - 1
            head = lines[first].encode()[: literal.col_offset].decode()
            tail = lines[last].encode()[literal.end_col_offset or 0 :].decode()
            changed = head + str(_changed_literal(literal)) + tail
            source = "".join([*lines[:first], changed, *lines[last + 1 :]])
            diff = "\n".join(
                difflib.unified_diff(
                    [line.rstrip("\n") for line in lines[first : last + 1]],
                    changed.rstrip("\n").split("\n"),
                    fromfile=f"{module}:{literal.lineno}",
                    tofile=f"{module}:{literal.lineno}",
                    lineterm="",
                )
            )
            changes.append(ConstantChange(constant, literal.lineno, source, diff))
    return changes


def pytest_verdict(returncode: int) -> str:
    # 1 tests failed, 2 interrupted (an import failing), 3 pytest's internal error;
    # below 0, killed by a signal (a crash), as mutmut's "segfault".
    if returncode < 0:
        return "segfault"
    return {0: "survived", 1: "killed", 2: "killed", 3: "killed"}.get(returncode, "suspicious")


def run_pytest(tree: Path, tests: Sequence[str], timeout: float) -> tuple[str, float]:
    """The verdict of one run of ``tests`` in ``tree``, and its duration."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", *PYTEST_ARGS, *tests]
    # No bytecode: a changed module of the same size, written within the second, would
    # otherwise be read from the unchanged one's .pyc.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - started
    return pytest_verdict(done.returncode), time.monotonic() - started


def constant_mutants(tree: Path, the_plan: Plan, workers: int) -> list[Mutant]:
    """Each module's constant changes, run against its tests in copies of the snapshot
    (one per worker, so that they run side by side)."""
    work: list[tuple[str, ConstantChange]] = []
    for module in the_plan.modules:
        if the_plan.tests_by_module[module]:
            text = (tree / module).read_text()
            work += [(module, change) for change in constant_changes(module, text)]
    if not work:
        return []
    copies = [tree.parent / f"constants-{index}" for index in range(max(1, workers))]
    for copy in copies:
        shutil.copytree(tree, copy, ignore=_NOT_COPIED)
    baseline: dict[str, float] = {}
    for module in dict.fromkeys(module for module, _ in work):
        verdict, took = run_pytest(copies[0], the_plan.tests_by_module[module], timeout=3600)
        if verdict != "survived":
            raise SystemExit(f"bench.mutation: {module}'s tests fail before any change")
        baseline[module] = took
    free = list(copies)

    def run(item: tuple[str, ConstantChange]) -> Mutant:
        module, change = item
        copy = free.pop()
        target = copy / module
        original = target.read_text()
        try:
            target.write_text(change.source)
            timeout = baseline[module] * 10 + 30
            status, _ = run_pytest(copy, the_plan.tests_by_module[module], timeout)
        finally:
            target.write_text(original)
            free.append(copy)
        name = f"{module}:{change.line}:{change.constant}"
        return Mutant(
            module, name, change.constant, status, "" if status in CAUGHT else change.diff
        )

    print(f"Running {len(work)} constant mutants")
    with ThreadPoolExecutor(max_workers=len(copies)) as pool:
        return list(pool.map(run, work))


# --- survivors shown equivalent -------------------------------------------------------


@dataclass(frozen=True)
class Equivalent:
    """A survivor shown equivalent, as bench/MUTATION.md lists it: where, and the
    line before and after (each stripped, several joined by a space)."""

    module: str
    function: str
    before: str
    after: str


_EQUIVALENT_LINE = re.compile(
    r"^- `(?P<module>[^`]+)` `(?P<function>[^`]+)`: `(?P<before>[^`]*)` → `(?P<after>[^`]*)`:"
)


def parse_equivalents(markdown: str) -> set[Equivalent]:
    return {
        Equivalent(match["module"], match["function"], match["before"], match["after"])
        for match in map(_EQUIVALENT_LINE.match, markdown.splitlines())
        if match
    }


def changed_lines(diff: str) -> tuple[str, str]:
    """The lines a diff removes and adds, each side stripped and joined by a space."""
    body = [line for line in diff.splitlines() if not line.startswith(("---", "+++", "@@"))]
    removed = " ".join(line[1:].strip() for line in body if line.startswith("-"))
    added = " ".join(line[1:].strip() for line in body if line.startswith("+"))
    return removed, added


def equivalent_key(mutant: Mutant) -> Equivalent:
    before, after = changed_lines(mutant.diff)
    return Equivalent(mutant.module, mutant.function, before, after)


def equivalent_line(mutant: Mutant, why: str = "WHY") -> str:
    """The line to add to bench/MUTATION.md for a survivor shown equivalent."""
    key = equivalent_key(mutant)
    return f"- `{key.module}` `{key.function}`: `{key.before}` → `{key.after}`: {why}"


# --- tallies and the record -----------------------------------------------------------


@dataclass
class Tally:
    module: str
    total: int = 0
    killed: int = 0
    timeout: int = 0
    """Hangs, and crashes of the test process."""
    survived: int = 0
    """Every verdict but killed and timeout (mutmut's "no tests" and "suspicious" too)."""
    equivalent: int = 0
    """Survivors bench/MUTATION.md lists as shown equivalent."""
    constants: int = 0
    others: dict[str, int] = field(default_factory=dict)

    @property
    def kill_rate(self) -> float:
        return (self.killed + self.timeout) / self.total if self.total else 0.0

    @property
    def rate_with_equivalents(self) -> float:
        caught = self.killed + self.timeout + self.equivalent
        return caught / self.total if self.total else 0.0

    def add(self, mutant: Mutant, equivalents: set[Equivalent]) -> None:
        self.total += 1
        if mutant.status == "killed":
            self.killed += 1
        elif mutant.status in {"timeout", "segfault"}:  # noticed, as a hang or a crash
            self.timeout += 1
        else:
            self.survived += 1
            if mutant.status != "survived":
                self.others[mutant.status] = self.others.get(mutant.status, 0) + 1
            if equivalent_key(mutant) in equivalents:
                self.equivalent += 1
        if ":" in mutant.name:
            self.constants += 1


def tally(module: str, mutants: Iterable[Mutant], equivalents: set[Equivalent]) -> Tally:
    result = Tally(module)
    for mutant in mutants:
        result.add(mutant, equivalents)
    return result


def summary(counted: Tally) -> str:
    others = "".join(f", {count} {status}" for status, count in sorted(counted.others.items()))
    return (
        f"{counted.module}: {counted.killed} killed / {counted.survived} survived"
        f" ({counted.equivalent} shown equivalent{others}) / {counted.timeout} timeout"
        f" / {counted.total} total ({counted.constants} of them constants):"
        f" kill rate {counted.kill_rate:.1%}, {counted.rate_with_equivalents:.1%}"
        " with the equivalents"
    )


_TABLE_START = "<!-- kill rates: written by python -m bench.mutation -->"
_TABLE_END = "<!-- end of kill rates -->"
_TABLE_HEAD = (
    "| module | killed | survived | shown equivalent | timeout | total (constants)"
    " | kill rate | with equivalents | date, code | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|\n"
)


def record_row(counted: Tally, command: str, day: str) -> str:
    return (
        f"| `{counted.module}` | {counted.killed} | {counted.survived} | {counted.equivalent}"
        f" | {counted.timeout} | {counted.total} ({counted.constants})"
        f" | {counted.kill_rate:.1%} | {counted.rate_with_equivalents:.1%} | {day}"
        f" | `{command}` |"
    )


def update_record(markdown: str, rows: Mapping[str, str]) -> str:
    """The record with each module's row replaced or added (rows kept sorted by
    module); the file's other text is left as it is."""
    if _TABLE_START not in markdown:
        markdown = (markdown or "# Mutation testing\n").rstrip("\n")
        markdown += f"\n\n{_TABLE_START}\n{_TABLE_HEAD}{_TABLE_END}\n"
    before, _, rest = markdown.partition(_TABLE_START)
    table, _, after = rest.partition(_TABLE_END)
    kept: dict[str, str] = {}
    for line in table.splitlines():
        cell = re.match(r"^\| `([^`]+)` \|", line)
        if cell:
            kept[cell[1]] = line
    kept.update(rows)
    body = "".join(f"{kept[module]}\n" for module in sorted(kept))
    return f"{before}{_TABLE_START}\n{_TABLE_HEAD}{body}{_TABLE_END}{after}"


# --- the command ----------------------------------------------------------------------


def report(mutants: Sequence[Mutant], equivalents: set[Equivalent]) -> None:
    for mutant in mutants:
        if mutant.caught:
            continue
        known = equivalent_key(mutant) in equivalents
        print(f"\n# {mutant.name}: {mutant.status}{' (shown equivalent)' if known else ''}")
        print(mutant.diff or "(no diff)")
        if not known and mutant.diff:
            print(f"shown equivalent? add to {RECORD.relative_to(ROOT)}:")
            print(equivalent_line(mutant))


def revision(root: Path, own: Sequence[str]) -> str:
    """Where a run's code came from: HEAD, and whether the files taken from the working
    tree differed from it."""
    head = _git(root, "rev-parse", "--short", "HEAD").decode().strip()
    changed = subprocess.run(
        ["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", *own], check=False
    ).returncode
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "--", *own) if own else b""
    return f"{head} + working tree" if own and (changed or untracked.strip()) else head


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mutation", description=__doc__.splitlines()[0]
    )
    parser.add_argument("modules", nargs="*", help="source paths, e.g. gateway/times.py")
    parser.add_argument("--all", action="store_true", help="every module of gateway/ and schema/")
    parser.add_argument("--tests", nargs="+", default=[], help="test files to run besides mirrors")
    parser.add_argument(
        "--uncommitted",
        nargs="+",
        default=[],
        help="other files or folders to take as the working tree has them (default: HEAD's)",
    )
    parser.add_argument(
        "--max-children", type=int, default=os.cpu_count() or 2, help="mutants run at once"
    )
    parser.add_argument("--no-constants", action="store_true", help="skip the constants pass")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/MUTATION.md")
    parser.add_argument("--keep", action="store_true", help="keep the snapshot (mutmut browse)")
    args = parser.parse_args(argv)
    if args.all and args.modules:
        parser.error("name modules or --all, not both")
    committed = committed_files(ROOT) if args.all else None
    the_plan = plan(ROOT, args.modules, extra_tests=args.tests, committed=committed)
    command = shlex.join(["python", "-m", "bench.mutation", *(argv or sys.argv[1:])])
    started = time.monotonic()
    workspace = Path(tempfile.mkdtemp(prefix="mutation-"))
    tree = workspace / "tree"
    try:
        prepare(ROOT, tree, the_plan, [_relative(ROOT, path) for path in args.uncommitted])
        run = [*mutmut_command(), "run", "--max-children", str(args.max_children)]
        print(f"{len(the_plan.modules)} module(s), tests: {' '.join(the_plan.tests)}", flush=True)
        if subprocess.run(run, cwd=tree, check=False).returncode != 0:
            print("\nbench.mutation: mutmut stopped (its reason is above)")
            return 1
        print()
        mutants = [mutant for module in the_plan.modules for mutant in mutmut_mutants(tree, module)]
        unchecked = sum(mutant.status == NOT_CHECKED for mutant in mutants)
        if unchecked:
            print(f"bench.mutation: mutmut stopped with {unchecked} mutants not checked")
            return 1
        if not args.no_constants:
            mutants += constant_mutants(tree, the_plan, args.max_children)
        equivalents = parse_equivalents(RECORD.read_text() if RECORD.exists() else "")
        report(mutants, equivalents)
        print()
        tallies = [
            tally(module, [m for m in mutants if m.module == module], equivalents)
            for module in the_plan.modules
        ]
        for counted in tallies:
            print(summary(counted))
        if args.all:
            overall = tally("gateway/, schema/ (all)", mutants, equivalents)
            print(summary(overall))
            tallies.append(overall)
        print(f"{(time.monotonic() - started) / 60:.1f} minutes")
        if not args.no_record:
            day = f"{datetime.now(UTC):%Y-%m-%d}, {revision(ROOT, the_plan.own)}"
            rows = {counted.module: record_row(counted, command, day) for counted in tallies}
            current = RECORD.read_text() if RECORD.exists() else ""
            RECORD.write_text(update_record(current, rows))
            print(f"kill rates written to {RECORD.relative_to(ROOT)}")
        return 0
    finally:
        if args.keep:
            print(f"snapshot kept: cd {tree} && {mutmut_command()[0]} browse")
        else:
            shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
