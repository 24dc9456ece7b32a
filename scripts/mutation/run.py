"""`make mutation`: mutation testing of qwenchat's core with Cosmic Ray's operators (issue #17).

Why Cosmic Ray (8.x) and not mutmut 3: Cosmic Ray writes each mutant into the real source file
on disk, so every process a test starts sees it: the `qwenchat` CLI run as a subprocess, the
emulated phone's daemon, the simulated genie-t2t-run. mutmut 3 instead rewrites every function
into a trampoline in a `mutants/` copy and switches mutants in-process by an environment
variable after a whole-suite stats pass under its own pytest plugin; our tests that start the
emulated phone and run the CLI in other processes import qwenchat from elsewhere and would
silently judge the unmutated code. Cosmic Ray's own runner has no per-module test selection and
mutates one tree in place, so this driver uses Cosmic Ray as a library (its operators, the
mutation positions it finds, the mutated source it writes) and does the scheduling itself:
  - each module is judged only by its own test files (scripts/mutation/targets.toml), with
    pytest -x, so a killed mutant costs seconds;
  - `--jobs` private copies of the tree run mutants side by side (PYTHONPATH points every
    process of a run at its copy; bytecode is never written there, so a mutant of the same
    size and mtime second can never be served from a stale .pyc);
  - a package with more mutants than its `sample` runs a seeded random sample (seed printed);
  - survivors listed in scripts/mutation/equivalent.toml (matched by file and source-line
    text, not line numbers, so the list survives edits elsewhere in the file) are taken out of
    the score; any package under --threshold (90%) fails the run.

Usage: python scripts/mutation/run.py [--package NAME ...] [--jobs 2] [--seed 17] [--all]
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cosmic_ray.plugins
from cosmic_ray.ast import ast_nodes, get_ast
from cosmic_ray.mutating import mutate_code

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_SEED = 17
TIMEOUT_FACTOR = 3
TIMEOUT_SLACK_S = 30  # for a whole run: pytest's start, collection, the phone's first start
TEST_SLACK_S = 10  # for one test (mutbound.py)
# Operators that need per-project arguments (variable names) are not run.
SKIP_OPERATORS = {"core/VariableReplacer", "core/VariableInserter"}
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", ".cache", "__pycache__", ".hypothesis", ".pytest_cache", ".ruff_cache",
    "build", "out", ".demo", "*.egg-info", "mutants",
)

SITECUSTOMIZE = """import builtins

class CosmicRayTestingException(Exception):
    pass

builtins.CosmicRayTestingException = CosmicRayTestingException
"""


@dataclass
class Mutant:
    package: str
    path: str  # repo-relative
    operator: str
    occurrence: int
    line: int
    col: int
    end_line: int
    tests: tuple[str, ...]  # the module's selection (targets.toml)
    run_tests: tuple[str, ...] = ()  # the tests that run the mutated line
    deselect: tuple[str, ...] = ()  # tests of run_tests' files that fail unmutated
    covered: bool = True  # some test ran the line in-process
    scope: str = ""  # an import-time line judged first by the tests of what it defines
    fallback: tuple[str, ...] = ()  # then, if it survived those, by these (the whole selection)
    fallback_deselect: tuple[str, ...] = ()
    original: str = ""  # the source line(s) before
    mutated: str = ""  # and after
    outcome: str = ""  # killed | survived | timeout | equivalent | error | not-run
    seconds: float = 0.0
    reason: str = ""  # why equivalent
    detail: str = ""  # last lines of pytest's output for an error

    @property
    def key(self) -> tuple:
        return (self.path, self.line, self.col, self.operator, self.occurrence)

    def describe(self) -> str:
        where = "" if self.covered else " (run at import or in a subprocess only)"
        if self.scope:
            where = f" (an import-time line of {self.scope})"
        return (f"{self.path}:{self.line} [{self.operator.split('/')[-1]}] "
                f"{self.original!r} -> {self.mutated!r}{where}")


@dataclass
class PackageResult:
    name: str
    total: int
    sampled: int
    seed: int | None
    mutants: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0  # wall time: its baseline runs and its mutants
    baseline_seconds: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(1 for m in self.mutants if m.outcome == outcome)

    @property
    def judged(self) -> int:
        return sum(1 for m in self.mutants if m.outcome in ("killed", "timeout", "survived"))

    @property
    def score(self) -> float:
        return (self.count("killed") + self.count("timeout")) / self.judged if self.judged else 0.0


def operators():
    for name in cosmic_ray.plugins.operator_names():
        if name in SKIP_OPERATORS:
            continue
        yield name, cosmic_ray.plugins.get_operator(name)()


def skipped_lines(source: str) -> set[int]:
    """Lines marked `# pragma: no mutate` (none today; an escape hatch with a visible marker)."""
    return {i for i, text in enumerate(source.splitlines(), 1) if "pragma: no mutate" in text}


def in_annotation(node) -> bool:
    """True inside a type annotation (a parameter's, a return's, a variable's)."""
    while node.parent is not None:
        parent = node.parent
        kids = parent.children
        if parent.type == "tfpdef" and kids.index(node) >= 2:
            return True
        if parent.type == "annassign" and kids.index(node) == 1:
            return True
        if parent.type == "funcdef" and any(
            getattr(k, "value", None) == "->" for k in kids[: kids.index(node)]
        ):
            if kids.index(node) < len(kids) - 1:  # not the body (the last child)
                return True
        node = parent
    return False


def enumerate_mutants(package: str, module: dict, skipped: dict) -> list[Mutant]:
    path = module["path"]
    source = (REPO / path).read_text(encoding="utf-8")
    tree = get_ast(source)
    nodes = list(ast_nodes(tree))
    skip = skipped_lines(source)
    # Under `from __future__ import annotations` no annotation is ever evaluated: a mutant
    # there (`str | None` -> `str >> None`) is equivalent by construction.
    lazy = "from __future__ import annotations" in source
    found = []
    for name, op in operators():
        occurrence = 0
        for node in nodes:
            for (line, col), (end_line, _) in op.mutation_positions(node):
                if lazy and in_annotation(node):
                    skipped["annotation"] += 1
                elif line in skip:
                    skipped["pragma"] += 1
                else:
                    found.append(Mutant(package, path, name, occurrence, line, col, end_line,
                                        tuple(module["tests"])))
                occurrence += 1
    return found


def describe_change(m: Mutant, source: str) -> bool:
    """Fill m.original/m.mutated with the changed lines; False when Cosmic Ray makes no change."""
    op = cosmic_ray.plugins.get_operator(m.operator)()
    try:
        mutated = mutate_code(source, op, m.occurrence)
    except (AttributeError, AssertionError):
        # Cosmic Ray's ExceptionReplacer cannot rewrite a dotted name (`except errors.X`).
        return False
    if mutated is None or mutated == source:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # `x is "lit"` is a warning, still a program
            compile(mutated, m.path, "exec")
    except SyntaxError:
        # Not a program (`{**x}` -> `{^x}`): no test could run it, so it is no mutant.
        return False
    before, after = source.splitlines(), mutated.splitlines()
    old, new = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after).get_opcodes():
        if tag != "equal":
            old += before[i1:i2]
            new += after[j1:j2]
    m.original = " / ".join(s.strip() for s in old)
    m.mutated = " / ".join(s.strip() for s in new)
    return True


def load_equivalents() -> list[dict]:
    data = tomllib.loads((HERE / "equivalent.toml").read_text(encoding="utf-8"))
    entries = data.get("equivalent", [])
    for e in entries:
        missing = {"file", "line", "reason"} - e.keys()
        if missing:
            raise SystemExit(f"equivalent.toml: entry {e} lacks {sorted(missing)}")
    return entries


def equivalent_reason(m: Mutant, entries: list[dict]) -> str | None:
    for e in entries:
        if e["file"] != m.path or e["line"] not in m.original:
            continue
        wanted = e.get("mutation")
        if isinstance(wanted, str):
            wanted = [wanted]
        if wanted is not None and not any(w in m.mutated for w in wanted):
            continue
        if "operator" in e and not m.operator.endswith(e["operator"]):
            continue
        if "context" in e and e["context"] not in _near(m):
            continue
        return e["reason"]
    return None


def _near(m: Mutant) -> str:
    """The mutated lines, the one before and the two after: tells apart identical lines (two
    `@dataclass` decorators, two `*,` markers) by what they decorate or follow."""
    lines = (REPO / m.path).read_text(encoding="utf-8").splitlines()
    return "\n".join(lines[max(0, m.line - 2) : m.end_line + 2])


class Workers:
    """`jobs` private copies of the tree; a mutant is written into one, judged, and undone."""

    def __init__(self, jobs: int):
        self.root = Path(tempfile.mkdtemp(prefix="qwenchat-mutation-"))
        self.free: queue.Queue[Path] = queue.Queue()
        for i in range(jobs):
            copy = self.root / f"w{i}"
            shutil.copytree(REPO, copy, ignore=COPY_IGNORE, symlinks=True)
            # Cosmic Ray's ExceptionReplacer writes `except CosmicRayTestingException:` (a
            # handler that no longer catches); give that name to every process of the copy.
            (copy / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
            self.free.put(copy)
        self.jobs = jobs
        self.stopping = threading.Event()
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def stop(self):
        """Ctrl-C or SIGTERM: no new runs; the running ones are interrupted, then killed."""
        self.stopping.set()
        with self._lock:
            running = list(self._running)
        for proc in running:
            _signal_group(proc, signal.SIGINT)
        deadline = time.monotonic() + 15
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def run_tests(self, copy: Path, tests: tuple[str, ...], timeout: float,
                  extra: list[str] = (), env: dict | None = None,
                  first: bool = True, bounds: dict[str, float] | None = None
                  ) -> tuple[str, float, str]:
        env = {**os.environ, **(env or {})}
        if bounds:
            # One bound per test (scripts/mutation/mutbound.py): a hang is stopped at its
            # own test's bound; `timeout` stays as the backstop for the whole run.
            path = copy.parent / f"bounds-{copy.name}.json"
            path.write_text(json.dumps(bounds), encoding="utf-8")
            env["MUTBOUND_JSON"] = str(path)
            extra = ["-p", "mutbound", *extra]
        env["PYTHONPATH"] = os.pathsep.join([str(copy), str(copy / "scripts" / "mutation")])
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        # The built tokenizer is shared with the real tree (its build code is not mutated here).
        env.setdefault("QWENCHAT_CACHE", str(REPO / ".cache"))
        # Hypothesis's pytest plugin imports all of hypothesis (~1.5 s) in every pytest run;
        # @given works without it, and a test file that uses hypothesis imports it itself.
        cmd = [sys.executable, "-m", "pytest", *(["-x"] if first else []), "-q",
               "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--no-header",
               "-o", "addopts=", *extra, *tests]
        start = time.monotonic()
        with self._lock:
            if self.stopping.is_set():
                return "not-run", 0.0, ""
            proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
            self._running.add(proc)
        try:
            return self._wait(proc, timeout, start)
        finally:
            with self._lock:
                self._running.discard(proc)

    def _wait(self, proc: subprocess.Popen, timeout: float, start: float) -> tuple[str, float, str]:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Ctrl-C first so fixtures stop their emulated phones, then the whole group.
            _signal_group(proc, signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                out, _ = proc.communicate()
            return "timeout", time.monotonic() - start, out[-2000:]
        seconds = time.monotonic() - start
        rc = proc.returncode
        if self.stopping.is_set():
            return "not-run", seconds, ""
        if rc == 0:
            return "survived", seconds, ""
        if rc == 1 and "from pytest-timeout" in out:
            # A test ran past its own bound (mutbound): the mutant hangs it.
            return "timeout", seconds, ""
        if rc in (1, 2, 3):  # a test failed, collection (import) broke, or pytest itself crashed
            return "killed", seconds, ""
        if rc == 4 and "ERROR collecting" in out:
            # The test ids collected unmutated; under the mutant their file no longer imports
            # (a module-level line raises), so pytest finds none of them: killed at import.
            return "killed", seconds, ""
        return "error", seconds, f"pytest exit {rc}\n" + out[-2000:]


def run_all(workers: Workers, fn, items) -> None:
    """fn over items on `jobs` threads; on Ctrl-C the queued items are dropped at once."""
    pool = ThreadPoolExecutor(workers.jobs)
    try:
        list(pool.map(fn, items))
    except BaseException:
        workers.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def judge(workers: Workers, m: Mutant, maps: dict) -> None:
    """Write the mutant into a free copy and run its tests. An import-time line narrowed to
    its scope's tests that survives them runs again with the module's whole selection, so
    the narrowing can only make a kill faster, never turn one into a survivor."""
    copy = workers.free.get()
    target = copy / m.path
    original = target.read_text(encoding="utf-8")
    try:
        op = cosmic_ray.plugins.get_operator(m.operator)()
        target.write_text(mutate_code(original, op, m.occurrence), encoding="utf-8")
        stages = [(m.run_tests, m.deselect)]
        if m.fallback:
            stages.append((m.fallback, m.fallback_deselect))
        m.seconds = 0.0
        durations = test_durations(maps)
        for tests, deselect in stages:
            bounds = {t: bound(durations[t], TEST_SLACK_S) for t in tests if t in durations}
            whole = bound(sum(durations.get(t, 0.0) for t in tests)
                          + sum(maps[f]["seconds"] for f in tests if f in maps and maps[f]))
            extra = [arg for test in deselect for arg in ("--deselect", test)]
            m.outcome, seconds, m.detail = workers.run_tests(copy, tests, whole, extra,
                                                             bounds=bounds)
            m.seconds += seconds
            if m.outcome != "survived":
                break
    finally:
        target.write_text(original, encoding="utf-8")
        workers.free.put(copy)


def test_durations(maps: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for cov in maps.values():
        if cov is not None:
            out.update(cov["durations"])
    return out


def baseline(workers: Workers, test_files: set[str], files: list[str], maps: dict) -> None:
    """Every selected test file runs once on the unmutated copy (modules share files),
    recording per test which lines of `files` it runs, how long it takes, and whether it
    passed (scripts/mutation/covmap.py). A test that fails unmutated cannot judge a mutant:
    it is left out of every selection and named in the output."""
    def one(test_file):
        copy = workers.free.get()
        out = copy.parent / f"covmap-{test_file.replace('/', '_')}.json"
        env = {"COVMAP_FILES": os.pathsep.join(str(copy / f) for f in files),
               "COVMAP_MODULES": ",".join(f.removesuffix(".py").replace("/", ".") for f in files),
               "COVMAP_OUT": str(out)}
        out.unlink(missing_ok=True)
        try:
            outcome, seconds, detail = workers.run_tests(
                copy, (test_file,), timeout=1800, extra=["-p", "covmap"], env=env, first=False)
        finally:
            workers.free.put(copy)
        if not out.is_file():
            # Collection failed or the run hung: nothing of this file can judge a mutant.
            print(f"  baseline {test_file}: {outcome}, LEFT OUT of every selection\n{detail}",
                  flush=True)
            maps[test_file] = None
            return
        data = json.loads(out.read_text(encoding="utf-8"))
        lines = {}
        for path, by_line in data["lines"].items():
            rel = os.path.relpath(path, os.path.realpath(copy))
            lines[rel] = {int(n): ctx for n, ctx in by_line.items()}
        failed = set(data["failed"])
        maps[test_file] = {"seconds": seconds, "lines": lines, "durations": data["durations"],
                           "failed": failed}
        note = f"; {len(failed)} failing unmutated, left out: {sorted(failed)}" if failed else ""
        print(f"  baseline {test_file}: {seconds:.0f} s{note}", flush=True)

    run_all(workers, one, sorted(test_files))


def bound(unmutated_s: float, slack: float | None = None) -> float:
    """How long a mutant's tests may run: their unmutated time (from the baseline) with room
    for a machine busier than during the baseline, plus pytest's own start."""
    return TIMEOUT_FACTOR * unmutated_s + (TIMEOUT_SLACK_S if slack is None else slack)


def select_tests(m: Mutant, maps: dict, scopes: Scopes) -> bool:
    """Set the tests that judge m: the module's tests that run the mutated line(s), fastest
    first. A line no test runs in-process runs at import (a def's signature and defaults, a
    decorator, a class body, a constant) or only in a subprocess such as the CLI: it is
    judged first by the tests that run what it defines (the function's body, the class's
    methods, the lines that read the constant), and if it survives those, by the module's
    whole selection. Tests that failed unmutated are never used. False: no test can judge it."""
    usable = [f for f in m.tests if maps.get(f) is not None]
    failed: set[str] = set()
    durations: dict[str, float] = {}
    for test_file in usable:
        durations.update(maps[test_file]["durations"])
        failed |= maps[test_file]["failed"]

    def tests_running(lines) -> list[str]:
        ids: set[str] = set()
        for test_file in usable:
            by_line = maps[test_file]["lines"].get(m.path, {})
            for n in lines:
                ids.update(by_line.get(n, ()))
        return sorted(ids - failed, key=lambda i: (durations.get(i, 0.0), i))

    own = tests_running(range(m.line, m.end_line + 1))
    if own:
        m.run_tests, m.covered = tuple(own), True
        return True
    m.covered = False
    if not usable:
        return False
    # Every test of the selection, fastest first across files: with -x the first failure
    # ends the run, so a mutant that a fast test kills never starts the emulated phone.
    every = sorted((i for i in durations if i not in failed), key=lambda i: (durations[i], i))
    whole: tuple[str, ...] = tuple(every) if every else tuple(usable)
    whole_deselect = () if every else tuple(sorted(failed))
    found = scopes.of(m.path, m.line)
    narrowed = tests_running(found[1]) if found else []
    if narrowed and len(narrowed) < len(whole):
        m.scope = found[0]
        m.run_tests = tuple(narrowed)
        m.fallback = tuple(i for i in whole if i not in set(narrowed))
        m.fallback_deselect = whole_deselect
    else:
        m.run_tests, m.deselect = whole, whole_deselect
    return True


class Scopes:
    """For a line that runs at import, the lines that run what it defines, from the module's
    syntax tree: a def's header or decorator -> the function's body; a class's header,
    decorator or class-level statement -> its methods' bodies and the module's lines that
    name the class; a module-level `NAME = ...` -> the lines that read NAME (or `.NAME`)."""

    def __init__(self) -> None:
        self._trees: dict[str, ast.Module] = {}

    def of(self, path: str, line: int) -> tuple[str, set[int]] | None:
        tree = self._trees.get(path)
        if tree is None:
            tree = self._trees[path] = ast.parse((REPO / path).read_text(encoding="utf-8"))
        return _scope_in(tree, tree.body, line)


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)])


def _body_lines(body: list[ast.stmt]) -> set[int]:
    return set(range(body[0].lineno, body[-1].end_lineno + 1))


def _in_a_body(body: list[ast.stmt], line: int) -> bool:
    """The line is inside a method's body (it runs when called, not at import)."""
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
               and n.body[0].lineno <= line <= n.end_lineno for n in body)


def _readers(tree: ast.Module, name: str, skip: ast.AST) -> set[int]:
    skipped = {id(n) for n in ast.walk(skip)}
    return {n.lineno for n in ast.walk(tree) if id(n) not in skipped and (
        (isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load))
        or (isinstance(n, ast.Attribute) and n.attr == name))}


def _scope_in(tree: ast.Module, body: list[ast.stmt], line: int,
              cls: ast.ClassDef | None = None) -> tuple[str, set[int]] | None:
    for node in body:
        if not _first_line(node) <= line <= node.end_lineno:
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if line < node.body[0].lineno:  # decorator, signature, defaults
                return f"def {node.name}", _body_lines(node.body)
            return None  # a line inside a body runs when called: coverage would have seen it
        if isinstance(node, ast.ClassDef):
            if line >= node.body[0].lineno:
                inner = _scope_in(tree, node.body, line, node)
                if inner is not None or _in_a_body(node.body, line):
                    return inner
            lines = _readers(tree, node.name, node)
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines |= _body_lines(item.body)
            return f"class {node.name}", lines
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        if targets:
            if cls is not None:  # a class attribute or dataclass field: the class's users too
                return None  # let the caller take the whole class
            return targets[0], set().union(*(_readers(tree, t, node) for t in targets))
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", action="append", help="only this package (repeatable)")
    ap.add_argument("--jobs", type=int, default=2, help="mutants judged side by side (2)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"sample seed ({DEFAULT_SEED})")
    ap.add_argument("--sample", type=int, help="override every package's sample size")
    ap.add_argument("--all", action="store_true", help="run every mutant, no sampling")
    ap.add_argument("--threshold", type=float, default=0.90)
    ap.add_argument("--list", action="store_true", help="only count the mutants")
    ap.add_argument("--json", type=Path, default=REPO / "build" / "mutation" / "report.json")
    ap.add_argument("--audit-equivalents", action="store_true",
                    help="run only the mutants equivalent.toml lists (all of them, not a "
                         "sample) and name any a test kills: its entry matches too much")
    ap.add_argument("--rescore", type=Path, metavar="JSON",
                    help="re-apply equivalent.toml to an earlier run's JSON; runs nothing")
    ap.add_argument("--recheck", type=Path, metavar="JSON",
                    help="the same sample as an earlier run's JSON: its killed and timed-out "
                         "mutants keep their outcome, only its survivors (and unrun ones) run "
                         "again, against today's tests and equivalent.toml")
    args = ap.parse_args()
    started = time.monotonic()
    if args.rescore:
        return rescore(args)

    config = tomllib.loads((HERE / "targets.toml").read_text(encoding="utf-8"))["packages"]
    names = args.package or list(config)
    unknown = set(names) - set(config)
    if unknown:
        ap.error(f"unknown package(s) {sorted(unknown)}; known: {', '.join(config)}")
    equivalents = load_equivalents()

    results: list[PackageResult] = []
    for name in names:
        pkg = config[name]
        pool = []
        sources = {}
        skipped = {"annotation": 0, "pragma": 0}
        for module in pkg["modules"]:
            sources[module["path"]] = (REPO / module["path"]).read_text(encoding="utf-8")
            pool += enumerate_mutants(name, module, skipped)
        pool.sort(key=lambda m: m.key)
        size = args.sample or pkg.get("sample", 100)
        seed = None if args.all or len(pool) <= size else args.seed
        if seed is not None:
            # A seeded shuffle, taken in order until `size` mutants Cosmic Ray can build.
            random.Random(f"{seed}/{name}").shuffle(pool)
        chosen = []
        if args.audit_equivalents:
            # Every mutant of the package that an entry matches, sampled or not: an entry
            # must fit each mutant it would ever take out of a score.
            seed = None
            chosen = [m for m in pool if describe_change(m, sources[m.path])
                      and equivalent_reason(m, equivalents)]
        else:
            for m in pool:
                if seed is not None and len(chosen) == size:
                    break
                if describe_change(m, sources[m.path]):
                    chosen.append(m)
        chosen.sort(key=lambda m: m.key)
        if len(chosen) < size:
            seed = None  # fewer valid mutants than the sample: every one of them runs
        listed = 0
        for m in chosen:
            # Judged equivalent by a person (equivalent.toml, with the reason): running it
            # could only move it from "equivalent" to "killed", at the cost of every test of
            # its selection (an equivalent mutant survives them all), so it is not run.
            # --audit-equivalents runs them to find an entry that matches too much.
            reason = equivalent_reason(m, equivalents)
            if reason and not args.audit_equivalents:
                m.outcome, m.reason, m.detail = "equivalent", reason, "listed; not run"
                listed += 1
        results.append(PackageResult(name, len(pool), len(chosen), seed, chosen))
        how = (f"seeded random sample of {len(chosen)} (seed {seed})" if seed is not None
               else f"all {len(chosen)}")
        if args.audit_equivalents:
            how = f"the {len(chosen)} that equivalent.toml lists (--audit-equivalents)"
        print(f"{name}: {len(pool)} mutants in {len(pkg['modules'])} modules; running {how} "
              f"(not counted: {skipped['annotation']} in type annotations, never evaluated "
              f"under `from __future__ import annotations`; {skipped['pragma']} on lines "
              f"marked `pragma: no mutate`); {listed} of them listed as equivalent, not run",
              flush=True)
    if args.list:
        return 0
    earlier_seconds: dict[str, float] = {}
    if args.recheck:
        earlier_seconds = carry_over(results, args.recheck, equivalents)

    workers = Workers(args.jobs)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    interrupted = False
    try:
        # Every module's lines are mapped in each baseline run, so a test file shared by two
        # packages runs unmutated once, in the first package's time.
        files = sorted({m.path for r in results for m in r.mutants})
        maps: dict[str, dict | None] = {}
        scopes = Scopes()
        lock = threading.Lock()
        for r in results:
            t1 = time.monotonic()
            todo = [m for m in r.mutants if not m.outcome]
            pending = {f for m in todo for f in m.tests} - maps.keys()
            baseline(workers, pending, files, maps)
            r.baseline_seconds = time.monotonic() - t1
            print(f"{r.name}: baseline: {len(pending)} test files run unmutated, lines mapped "
                  f"to tests ({r.baseline_seconds:.0f} s)", flush=True)
            done = [0]

            def one(m: Mutant, r=r, done=done, todo=todo, t1=t1):
                if not select_tests(m, maps, scopes):
                    m.outcome, m.detail = "error", "every test file of this module failed unmutated"
                else:
                    judge(workers, m, maps)
                reason = equivalent_reason(m, equivalents)
                if m.outcome == "survived" and reason:
                    m.outcome, m.reason = "equivalent", reason
                elif reason and m.outcome in ("killed", "timeout"):
                    print(f"  LISTED AS EQUIVALENT BUT {m.outcome.upper()}: {m.describe()} "
                          "(narrow its entry in equivalent.toml)", flush=True)
                with lock:
                    done[0] += 1
                    if m.outcome in ("survived", "error"):
                        print(f"  [{r.name} {done[0]}/{len(todo)}] {m.outcome.upper()}: "
                              f"{m.describe()}", flush=True)
                    elif done[0] % 10 == 0:
                        print(f"  [{r.name} {done[0]}/{len(todo)}] "
                              f"{time.monotonic() - t1:.0f} s", flush=True)

            run_all(workers, one, todo)
            r.seconds = time.monotonic() - t1 + earlier_seconds.get(r.name, 0.0)
            print(f"{r.name}: {r.score:.1%} killed; wall time {r.seconds:.0f} s (baseline "
                  f"{r.baseline_seconds:.0f} s + mutants {r.seconds - r.baseline_seconds:.0f} s)",
                  flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping the running tests", file=sys.stderr, flush=True)
        workers.stop()
    finally:
        workers.stop()
        workers.close()
    if interrupted:
        for r in results:
            for m in r.mutants:
                m.outcome = m.outcome or "not-run"
        report(results, args, time.monotonic() - started)
        return 130

    return report(results, args, time.monotonic() - started)


def carry_over(results: list[PackageResult], path: Path, equivalents: list[dict]) -> dict:
    """--recheck: outcomes an earlier run settled (killed, timeout) are kept for the same
    mutant (same file, position, operator and occurrence, same source change); the rest run
    again. Returns each package's earlier wall time (the recheck adds its own)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    earlier = {}
    seconds = {}
    for p in data["packages"]:
        seconds[p["name"]] = p["seconds"]
        for raw in p["mutants"]:
            key = (raw["path"], raw["line"], raw["col"], raw["operator"], raw["occurrence"])
            earlier[(p["name"], key)] = raw
    for r in results:
        kept = 0
        for m in r.mutants:
            raw = earlier.get((r.name, m.key))
            if raw is None or (raw["original"], raw["mutated"]) != (m.original, m.mutated):
                continue  # not in that run, or the source changed since: judged afresh
            if raw["outcome"] in ("killed", "timeout"):
                m.outcome, m.seconds = raw["outcome"], raw["seconds"]
                m.run_tests, m.covered = tuple(raw["run_tests"]), raw["covered"]
                kept += 1
            elif raw["outcome"] in ("survived", "equivalent"):
                # It survived those tests; listed as equivalent now, it needs no new run.
                reason = equivalent_reason(m, equivalents)
                if reason:
                    m.outcome, m.reason, m.seconds = "equivalent", reason, raw["seconds"]
                    m.run_tests, m.covered = tuple(raw["run_tests"]), raw["covered"]
                    kept += 1
        print(f"{r.name}: --recheck {path}: {kept} outcomes kept, "
              f"{sum(1 for m in r.mutants if not m.outcome)} mutants run again", flush=True)
    return {r.name: seconds.get(r.name, 0.0) for r in results}


def rescore(args) -> int:
    """An earlier run's mutants, judged again against today's equivalent.toml."""
    data = json.loads(args.rescore.read_text(encoding="utf-8"))
    equivalents = load_equivalents()
    results = []
    for p in data["packages"]:
        mutants = []
        for raw in p["mutants"]:
            raw = {**raw, "tests": tuple(raw["tests"]), "run_tests": tuple(raw["run_tests"]),
                   "deselect": tuple(raw.get("deselect", ()))}
            m = Mutant(**raw)
            if m.outcome in ("survived", "equivalent"):
                reason = equivalent_reason(m, equivalents)
                m.outcome, m.reason = ("equivalent", reason) if reason else ("survived", "")
            mutants.append(m)
        r = PackageResult(p["name"], p["total"], p["sampled"], p["seed"], mutants)
        r.seconds = p["seconds"]
        r.baseline_seconds = p.get("baseline_seconds", 0.0)
        results.append(r)
    args.json = args.rescore.with_suffix(".rescored.json")
    return report(results, args, data["elapsed_s"])


def report(results: list[PackageResult], args, elapsed: float) -> int:
    print()
    print(f"{'package':8} {'mutants':>7} {'run':>4} {'killed':>6} {'timeout':>7} {'survived':>8} "
          f"{'equiv':>5} {'error':>5} {'not-run':>7} {'score':>6} {'time':>6}  sample")
    failed = []
    for r in results:
        sample = f"seed {r.seed}" if r.seed is not None else "all"
        print(f"{r.name:8} {r.total:7} {r.sampled:4} {r.count('killed'):6} {r.count('timeout'):7} "
              f"{r.count('survived'):8} {r.count('equivalent'):5} {r.count('error'):5} "
              f"{r.count('not-run'):7} "
              f"{r.score:6.1%} {r.seconds:5.0f}s  {sample}")
        if r.score < args.threshold or r.count("error") or r.count("not-run"):
            failed.append(r.name)
    if any(r.count("timeout") for r in results):
        print(f"timeout: a test ran past its bound ({TIMEOUT_FACTOR} x its unmutated time + "
              f"{TEST_SLACK_S} s; the whole run: {TIMEOUT_FACTOR} x the sum + {TIMEOUT_SLACK_S} s) "
              "and was stopped; a mutant that hangs is counted as killed (the suite would "
              "never finish)")
    survivors = [m for r in results for m in r.mutants if m.outcome == "survived"]
    if survivors:
        print("\nsurviving mutants (kill them with a test, or list them in "
              "scripts/mutation/equivalent.toml with the reason):")
        for m in survivors:
            print(f"  {m.describe()}")
    errors = [m for r in results for m in r.mutants if m.outcome == "error"]
    for m in errors:
        print(f"\nERROR (pytest could not judge) {m.describe()}\n{m.detail}")
    equivalent = [m for r in results for m in r.mutants if m.outcome == "equivalent"]
    if equivalent:
        print("\nsurvivors judged equivalent (scripts/mutation/equivalent.toml):")
        for m in equivalent:
            print(f"  {m.describe()}\n      because: {m.reason}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(
        {"elapsed_s": round(elapsed, 1), "seed": args.seed,
         "packages": [{"name": r.name, "total": r.total, "sampled": r.sampled, "seed": r.seed,
                       "score": r.score, "seconds": round(r.seconds, 1),
                       "baseline_seconds": round(r.baseline_seconds, 1),
                       "mutants": [asdict(m) for m in r.mutants]} for r in results]},
        indent=1), encoding="utf-8")
    print(f"\nelapsed {elapsed / 60:.1f} min ({elapsed:.0f} s) with --jobs {args.jobs}; "
          f"details in {args.json}")
    if failed:
        print(f"FAILED: below {args.threshold:.0%} killed (or unjudged mutants) in: "
              f"{', '.join(failed)}")
        return 1
    print(f"OK: every package at or above {args.threshold:.0%} killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
