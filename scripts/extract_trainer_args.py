#!/usr/bin/env python3
"""Extract the options each external trainer accepts, from its source, into
`fixtures/trainer-args/*.json`.

Ategnatos writes configs for three trainers. Each trainer defines what it
accepts in its own Python source; this script reads that source statically
(with `ast`: nothing is imported, no torch, no trainer code runs) at the
commits pinned in `PINS`, and writes one JSON file per trainer script:

* kohya-ss/sd-scripts: the argparse parser that `setup_parser()` builds in
  `train_network.py`, `sdxl_train_network.py` and `flux_train_network.py`,
  following every helper that adds arguments (`library/train_util.py`,
  `config_util.py`, `custom_train_functions.py`, `deepspeed_utils.py`,
  `sdxl_train_util.py`, `flux_train_utils.py`, `sai_model_spec.py`,
  `utils.py`), with the flags those helpers are called with; plus the
  dataset TOML schema of `library/config_util.py::ConfigSanitizer`.
  How kohya reads `--config_file` (`train_util.read_config_from_file`):
  every `[section]` is flattened into one namespace, which is handed to
  `parser.parse_args(namespace=...)`. A key that is not an option is kept on
  the namespace and never read (silently ignored: a misspelt or missing
  option falls back to its default). A value is not converted: argparse only
  converts strings from the command line, so a TOML value keeps its TOML
  type (`5.0` stays a float, `"1e-4"` stays a string), and `choices` are not
  checked. The dataset TOML (`--dataset_config`) is different: voluptuous
  checks it, an unknown key stops the run, and `float` refuses an integer.
* bghira/SimpleTuner: its parser is built from the web UI's field registry
  (`simpletuner_sdk/server/services/field_registry/sections/*.py` and
  `helpers/models/field_registry/*.py`) by
  `helpers/configuration/cmd_args.py::_add_argument_from_field`; this script
  evaluates the registry's `ConfigField(...)` declarations and applies the
  same rules (checkbox: a boolean with an optional value; number: int unless
  a default, choice or rule value is a float; select: strings). `config.json`
  is turned into command-line text by
  `helpers/configuration/cli_utils.py::mapping_to_cli_args` (`true` →
  `--key`, `false` → `--key=false`, anything else → `--key=<str(value)>`,
  so `5.0` reaches an int option as the text `5.0` and argparse refuses it),
  and an unknown key stops the run (argparse). The keys of
  `multidatabackend.json` are those the data-backend code reads
  (`helpers/data_backend/factory.py`, `config/*.py`, `builders/*.py`); an
  unknown key there is ignored.
* ostris/ai-toolkit: the job YAML is read with `kwargs.get('key', default)`
  in `toolkit/config_modules.py` (SaveConfig, TrainConfig, ModelConfig, ...)
  and `self.get_conf('key', default)` in the process classes of
  `jobs/process/*.py`; unknown keys are ignored. A key's type is its
  annotation where the source writes one (`self.steps: int = ...`), else
  only the kind of its default is recorded.

Usage (each path is a git checkout or a bare git directory holding the pinned
commit; `fetch` gives bare ones under /work/.mirror/):

    scripts/extract_trainer_args.py \\
        --kohya /work/.mirror/kohya-ss+sd-scripts/repo \\
        --simpletuner /work/.mirror/bghira+SimpleTuner/repo \\
        --ai-toolkit /work/.mirror/ostris+ai-toolkit/repo \\
        [--out fixtures/trainer-args] [--check]

`--check` writes nothing and exits 1 when the committed files differ from
what the source gives. Python 3.9+ standard library only.

Types in the output: `int`, `float`, `str`, `bool` (a value that must be a
boolean), `flag` (argparse `store_true`: a boolean in a config file), `any`;
`a|b` is either; `nargs` marks a list of that type; `choices` lists the
accepted values. Where the source does not say a type, `default_kind` gives
the kind of the default (`int`, `float`, `str`, `bool`, `list`, `dict`,
`none`).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
from pathlib import PurePosixPath

PINS = {
    "kohya": {
        "repo": "kohya-ss/sd-scripts",
        "commit": "48d368fa557731ad0488c07304dfeba8c07910eb",
        "date": "2026-02-16",
    },
    "simpletuner": {
        "repo": "bghira/SimpleTuner",
        "commit": "bc8e6ab7738ce457a2ed8eb2d26cadd91c6442cb",
        "date": "2026-08-22",
    },
    "ai-toolkit": {
        "repo": "ostris/ai-toolkit",
        "commit": "27a03a91f23eb1b757d5ec2e80ee3e129cfcc350",
        "date": "2026-08-21",
    },
}

KOHYA_SCRIPTS = ["train_network.py", "sdxl_train_network.py", "flux_train_network.py"]

# argparse `type=` callables that are not int/float/str, as the JSON kinds
# they accept once a config file hands the value over unconverted.
CUSTOM_TYPES = {
    "Path": "str",
    "int_or_float": "int|float",
    "_parse_bool_flag": "bool",
    "_parse_validation_prompt_library_flag": "bool|str",
}


def warn(msg: str) -> None:
    print(f"extract_trainer_args: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------
# Source at a pinned commit


class Source:
    """Files of one repository at one commit, read through git."""

    def __init__(self, path: str, pin: dict):
        self.path = path
        self.pin = pin
        self.commit = pin["commit"]
        self._trees: dict[str, ast.Module] = {}
        self._files: list[str] | None = None
        probe = subprocess.run(
            ["git", "-C", path, "cat-file", "-t", self.commit], capture_output=True, text=True
        )
        if probe.stdout.strip() != "commit":
            raise SystemExit(
                f"`{path}` does not hold commit {self.commit} of {pin['repo']}; "
                f"point the option at a clone of {pin['repo']} that has it (git fetch)"
            )
        date = self.git("show", "-s", "--format=%cs", self.commit).strip()
        if date != pin["date"]:
            raise SystemExit(f"{path}: commit date {date}, pinned {pin['date']}")

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", "-C", self.path, *args], capture_output=True, text=True
        )
        if out.returncode != 0:
            raise SystemExit(f"git {' '.join(args)} in {self.path}: {out.stderr.strip()}")
        return out.stdout

    def files(self) -> list[str]:
        if self._files is None:
            self._files = self.git("ls-tree", "-r", "--name-only", self.commit).splitlines()
        return self._files

    def exists(self, rel: str) -> bool:
        return rel in set(self.files())

    def text(self, rel: str) -> str:
        return self.git("show", f"{self.commit}:{rel}")

    def tree(self, rel: str) -> ast.Module:
        if rel not in self._trees:
            self._trees[rel] = ast.parse(self.text(rel), filename=rel)
        return self._trees[rel]

    def try_tree(self, rel: str) -> ast.Module:
        """The module, or an empty one when it is not valid Python here."""
        try:
            return self.tree(rel)
        except (SyntaxError, ValueError) as e:
            warn(f"{rel}: not parsed ({e.__class__.__name__}); skipped")
            return ast.Module(body=[], type_ignores=[])

    def module_file(self, dotted: str) -> str | None:
        base = dotted.replace(".", "/")
        for cand in (f"{base}.py", f"{base}/__init__.py"):
            if self.exists(cand):
                return cand
        return None


def function(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node
    return None


def class_def(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    return None


# --------------------------------------------------------------------------
# A small evaluator for the literal parts of Python source


class Unknown:
    """A value the source computes at run time."""

    def __init__(self, why: str = ""):
        self.why = why

    def __repr__(self) -> str:
        return f"<unknown {self.why}>"


class PyType:
    def __init__(self, name: str):
        self.name = name


class ModuleRef:
    def __init__(self, rel: str):
        self.rel = rel


class FuncRef:
    def __init__(self, rel: str, node):
        self.rel = rel
        self.node = node


class Record(dict):
    """A call of a known record constructor (ConfigField, ValidationRule...)."""

    def __init__(self, kind: str, fields: dict):
        super().__init__(fields)
        self.kind = kind


def unknown(x) -> bool:
    return isinstance(x, Unknown)


def contains_unknown(x) -> bool:
    if unknown(x):
        return True
    if isinstance(x, (list, tuple, set)):
        return any(contains_unknown(v) for v in x)
    if isinstance(x, dict):
        return any(contains_unknown(v) for v in x.values())
    return False


BUILTIN_TYPES = {"int", "float", "str", "bool", "list", "dict", "tuple"}
STR_METHODS = {"replace", "title", "lower", "upper", "strip", "split", "join", "startswith", "endswith", "format"}


class Evaluator:
    """Evaluates expressions of one module with a chain of local scopes.

    Names resolve to locals, then module-level assignments of this module,
    then names imported from other modules of the same repository (their
    module-level literal assignments and functions). Anything computed at
    run time becomes `Unknown`.
    """

    def __init__(self, src: Source, rel: str, hooks: dict | None = None, records: dict | None = None):
        self.src = src
        self.rel = rel
        self.tree = src.tree(rel)
        self.hooks = hooks or {}
        self.records = records or {}
        self._module_env: dict | None = None

    # module scope --------------------------------------------------------
    def module_env(self) -> dict:
        if self._module_env is not None:
            return self._module_env
        env: dict = {}
        self._module_env = env
        pkg = str(PurePosixPath(self.rel).parent).replace("/", ".")
        if pkg == ".":
            pkg = ""
        is_init = self.rel.endswith("__init__.py")
        for node in self.tree.body:
            self._bind_module_stmt(node, env, pkg, is_init)
        return env

    def _bind_module_stmt(self, node, env, pkg, is_init):
        if isinstance(node, ast.Import):
            for a in node.names:
                rel = self.src.module_file(a.name)
                if rel:
                    if a.asname:
                        env[a.asname] = ModuleRef(rel)
                    else:
                        env.setdefault(a.name.split(".")[0], ModuleRef(rel))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".") if pkg else []
                up = node.level - 1
                if up:
                    parts = parts[:-up]
                base = ".".join([p for p in parts if p] + ([base] if base else []))
            for a in node.names:
                name = a.asname or a.name
                sub = self.src.module_file(f"{base}.{a.name}" if base else a.name)
                if sub:
                    env[name] = ModuleRef(sub)
                    continue
                mod = self.src.module_file(base) if base else None
                if mod:
                    env[name] = ("from", mod, a.name)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    env[t.id] = ("lazy", node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            env[node.target.id] = ("lazy", node.value)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            env[node.name] = FuncRef(self.rel, node)
        elif isinstance(node, ast.ClassDef):
            env[node.name] = ("class", self.rel, node)
        elif isinstance(node, (ast.If, ast.Try)):
            # Conditional imports and definitions: bind what they hold.
            for part in ("body", "orelse", "finalbody"):
                for sub in getattr(node, part, []):
                    self._bind_module_stmt(sub, env, pkg, is_init)
            for h in getattr(node, "handlers", []):
                for sub in h.body:
                    self._bind_module_stmt(sub, env, pkg, is_init)

    def lookup_global(self, name: str):
        env = self.module_env()
        if name not in env:
            if name in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[name]
            if name in BUILTIN_TYPES:
                return PyType(name)
            return Unknown(name)
        v = env[name]
        if isinstance(v, tuple) and v and v[0] == "lazy":
            env[name] = Unknown(f"{name} (cycle)")
            v = self.eval(v[1], [])
            env[name] = v
        elif isinstance(v, tuple) and v and v[0] == "from":
            other = Evaluator(self.src, v[1], self.hooks, self.records)
            v = other.lookup_global(v[2])
            env[name] = v
        return v

    def lookup(self, name: str, scopes: list):
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        if name in self.records:
            return ("record", name)
        return self.lookup_global(name)

    # expressions ---------------------------------------------------------
    def eval(self, node, scopes: list):
        try:
            return self._eval(node, scopes)
        except RecursionError:
            return Unknown("recursion")

    def _eval(self, node, scopes):
        if node is None:
            return None
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            out = []
            for e in node.elts:
                if isinstance(e, ast.Starred):
                    v = self._eval(e.value, scopes)
                    if unknown(v) or not isinstance(v, (list, tuple)):
                        return Unknown("starred")
                    out.extend(v)
                else:
                    out.append(self._eval(e, scopes))
            return tuple(out) if isinstance(node, ast.Tuple) else out
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values):
                if k is None:
                    sub = self._eval(v, scopes)
                    if isinstance(sub, dict):
                        out.update(sub)
                    else:
                        return Unknown("dict splat")
                    continue
                kk = self._eval(k, scopes)
                if unknown(kk) or isinstance(kk, (list, dict)):
                    return Unknown("dict key")
                out[kk] = self._eval(v, scopes)
            return out
        if isinstance(node, ast.Name):
            return self.lookup(node.id, scopes)
        if isinstance(node, ast.Attribute):
            return self._attribute(node, scopes)
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                if isinstance(v, ast.Constant):
                    parts.append(str(v.value))
                else:
                    x = self._eval(v.value, scopes)
                    if unknown(x):
                        return Unknown("f-string")
                    parts.append(str(x))
            return "".join(parts)
        if isinstance(node, ast.BinOp):
            a, b = self._eval(node.left, scopes), self._eval(node.right, scopes)
            if unknown(a) or unknown(b):
                return Unknown("binop")
            try:
                if isinstance(node.op, ast.Add):
                    return a + b
                if isinstance(node.op, ast.Sub):
                    return a - b
                if isinstance(node.op, ast.Mult):
                    return a * b
                if isinstance(node.op, ast.Div):
                    return a / b
                if isinstance(node.op, ast.BitOr) and isinstance(a, dict):
                    return {**a, **b}
            except Exception:
                return Unknown("binop")
            return Unknown("binop")
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, scopes)
            if unknown(v):
                return v
            if isinstance(node.op, ast.Not):
                return not v
            if isinstance(node.op, ast.USub):
                return -v
            return Unknown("unary")
        if isinstance(node, ast.BoolOp):
            vals = [self._eval(v, scopes) for v in node.values]
            if isinstance(node.op, ast.And):
                for v in vals:
                    if unknown(v):
                        return v
                    if not v:
                        return v
                return vals[-1]
            for v in vals:
                if unknown(v):
                    return v
                if v:
                    return v
            return vals[-1]
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            a, b = self._eval(node.left, scopes), self._eval(node.comparators[0], scopes)
            if unknown(a) or unknown(b):
                return Unknown("compare")
            op = node.ops[0]
            try:
                if isinstance(op, ast.Eq):
                    return a == b
                if isinstance(op, ast.NotEq):
                    return a != b
                if isinstance(op, ast.In):
                    return a in b
                if isinstance(op, ast.NotIn):
                    return a not in b
                if isinstance(op, ast.Is):
                    return a is b
                if isinstance(op, ast.IsNot):
                    return a is not b
            except Exception:
                return Unknown("compare")
            return Unknown("compare")
        if isinstance(node, ast.IfExp):
            t = self._eval(node.test, scopes)
            if unknown(t):
                return Unknown("ifexp")
            return self._eval(node.body if t else node.orelse, scopes)
        if isinstance(node, ast.Subscript):
            v = self._eval(node.value, scopes)
            k = self._eval(node.slice, scopes)
            if unknown(v) or unknown(k):
                return Unknown("subscript")
            try:
                return v[k]
            except Exception:
                return Unknown("subscript")
        if isinstance(node, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
            return self._comprehension(node, scopes)
        if isinstance(node, ast.Call):
            return self._call(node, scopes)
        return Unknown(type(node).__name__)

    def _attribute(self, node, scopes):
        dotted = ast.unparse(node)
        if dotted in self.hooks:
            return self.hooks[dotted]
        base = self._eval(node.value, scopes)
        if isinstance(base, ModuleRef):
            return Evaluator(self.src, base.rel, self.hooks, self.records).lookup_global(node.attr)
        if isinstance(base, tuple) and base and base[0] == "class":
            # Enum members and class constants: FieldType.SELECT -> "select".
            cls = base[2]
            for stmt in cls.body:
                if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == node.attr for t in stmt.targets
                ):
                    return Evaluator(self.src, base[1], self.hooks, self.records).eval(stmt.value, [])
            return Unknown(dotted)
        if isinstance(base, str) and node.attr in STR_METHODS:
            return ("strmethod", base, node.attr)
        if isinstance(base, dict) and node.attr in ("keys", "values", "items", "get"):
            return ("dictmethod", base, node.attr)
        return Unknown(dotted)

    def _comprehension(self, node, scopes):
        if len(node.generators) != 1:
            return Unknown("comprehension")
        gen = node.generators[0]
        it = self._eval(gen.iter, scopes)
        if unknown(it) or not isinstance(it, (list, tuple, dict, set, range)):
            return Unknown("comprehension iterable")
        out = []
        for item in it:
            local: dict = {}
            if not bind_target(gen.target, item, local):
                return Unknown("comprehension target")
            inner = scopes + [local]
            keep = True
            for cond in gen.ifs:
                c = self._eval(cond, inner)
                if unknown(c):
                    return Unknown("comprehension filter")
                keep = keep and bool(c)
            if keep:
                out.append(self._eval(node.elt, inner))
        return out

    def _call(self, node, scopes):
        dotted = ast.unparse(node.func)
        if dotted in self.hooks and callable(self.hooks[dotted]):
            return self.hooks[dotted]()
        f = self._eval(node.func, scopes)
        args = [self._eval(a, scopes) for a in node.args]
        kwargs = {kw.arg: self._eval(kw.value, scopes) for kw in node.keywords if kw.arg}
        if isinstance(f, tuple) and f and f[0] == "record":
            params = self.records[f[1]]
            fields = dict(zip(params, args))
            fields.update(kwargs)
            return Record(f[1], fields)
        if isinstance(f, tuple) and f and f[0] == "strmethod":
            _, s, m = f
            if any(unknown(a) for a in args):
                return Unknown("str method")
            try:
                return getattr(s, m)(*args)
            except Exception:
                return Unknown("str method")
        if isinstance(f, tuple) and f and f[0] == "dictmethod":
            _, d, m = f
            if m == "get":
                return d.get(*args) if args and not unknown(args[0]) else Unknown("get")
            return list(getattr(d, m)())
        if isinstance(f, PyType):
            if not args:
                return {"list": [], "dict": {}, "str": "", "int": 0, "float": 0.0, "bool": False, "tuple": ()}[f.name]
            if unknown(args[0]):
                return args[0]
            try:
                return {"list": list, "dict": dict, "str": str, "int": int, "float": float, "bool": bool, "tuple": tuple}[f.name](args[0])
            except Exception:
                return Unknown("conversion")
        if isinstance(f, Unknown) and dotted in ("range", "sorted", "len"):
            if any(unknown(a) for a in args):
                return Unknown(dotted)
            return {"range": lambda *a: list(range(*a)), "sorted": sorted, "len": len}[dotted](*args)
        return Unknown(f"call {dotted}")


def bind_target(target, value, local: dict) -> bool:
    if isinstance(target, ast.Name):
        local[target.id] = value
        return True
    if isinstance(target, (ast.Tuple, ast.List)):
        if unknown(value) or not isinstance(value, (list, tuple)) or len(value) != len(target.elts):
            return False
        return all(bind_target(t, v, local) for t, v in zip(target.elts, value))
    return False


def kind_of(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return "any"


def plain(value):
    """A JSON-friendly copy of a literal value, or None when not literal."""
    if contains_unknown(value):
        return None
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict) and not isinstance(value, Record):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return None


# --------------------------------------------------------------------------
# argparse: walk the functions that build a parser


class ArgparseWalker:
    """Collects the options `add_argument` adds, following calls into helper
    functions of the same repository with their arguments bound, and taking
    `if` branches by evaluating their conditions."""

    def __init__(self, src: Source):
        self.src = src
        self.options: dict[str, dict] = {}
        self.order: list[str] = []
        self.sources: dict[str, str] = {}
        self.conditional: list[str] = []

    def walk(self, rel: str, fn, bound: dict, depth: int = 0):
        if depth > 12:
            return
        ev = Evaluator(self.src, rel)
        scope = dict(bound)
        self._block(ev, rel, fn.name, fn.body, [scope], depth)

    def _block(self, ev, rel, fname, body, scopes, depth):
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                self._call(ev, rel, fname, stmt.value, scopes, depth)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and isinstance(stmt.value, ast.Call):
                self._call(ev, rel, fname, stmt.value, scopes, depth)
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        scopes[-1][t.id] = Unknown("parser object")
            elif isinstance(stmt, ast.Assign):
                v = ev.eval(stmt.value, scopes)
                for t in stmt.targets:
                    bind_target(t, v, scopes[-1])
            elif isinstance(stmt, ast.If):
                test = ev.eval(stmt.test, scopes)
                if unknown(test):
                    self.conditional.append(f"{rel}::{fname}: if {ast.unparse(stmt.test)}")
                    self._block(ev, rel, fname, stmt.body, scopes, depth)
                    self._block(ev, rel, fname, stmt.orelse, scopes, depth)
                elif test:
                    self._block(ev, rel, fname, stmt.body, scopes, depth)
                else:
                    self._block(ev, rel, fname, stmt.orelse, scopes, depth)
            elif isinstance(stmt, (ast.With, ast.For)):
                self._block(ev, rel, fname, stmt.body, scopes, depth)
            elif isinstance(stmt, ast.Try):
                self._block(ev, rel, fname, stmt.body, scopes, depth)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                scopes[-1][stmt.name] = FuncRef(rel, stmt)
            elif isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Call):
                self._call(ev, rel, fname, stmt.value, scopes, depth)

    def _call(self, ev, rel, fname, call, scopes, depth):
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "add_argument":
            self._option(ev, rel, fname, call, scopes)
            return
        if isinstance(func, ast.Attribute) and func.attr in (
            "add_argument_group",
            "add_mutually_exclusive_group",
            "set_defaults",
            "parse_args",
        ):
            return
        target = ev.eval(func, scopes)
        if not isinstance(target, FuncRef):
            return
        params = target.node.args
        names = [a.arg for a in params.posonlyargs + params.args]
        defaults = params.defaults
        bound: dict = {}
        callee = Evaluator(self.src, target.rel)
        for name, d in zip(names[len(names) - len(defaults):], defaults):
            bound[name] = callee.eval(d, [])
        for name, a in zip(names, call.args):
            bound[name] = ev.eval(a, scopes)
        for kw in call.keywords:
            if kw.arg:
                bound[kw.arg] = ev.eval(kw.value, scopes)
        self.walk(target.rel, target.node, bound, depth + 1)

    def _option(self, ev, rel, fname, call, scopes):
        flags = [ev.eval(a, scopes) for a in call.args]
        flags = [f for f in flags if isinstance(f, str)]
        kw = {k.arg: k.value for k in call.keywords if k.arg}
        longs = [f for f in flags if f.startswith("--")]
        if "dest" in kw:
            dest = ev.eval(kw["dest"], scopes)
        elif longs:
            dest = longs[0][2:].replace("-", "_")
        elif flags and not flags[0].startswith("-"):
            dest = flags[0]
        else:
            dest = flags[0].lstrip("-") if flags else "?"
        entry: dict = {}
        action = ev.eval(kw["action"], scopes) if "action" in kw else None
        if action in ("store_true", "store_false", "store_const"):
            entry["type"] = "flag"
        elif action == "count":
            entry["type"] = "int"
        else:
            entry["type"] = self._type(ev, kw.get("type"), scopes)
            if action == "append":
                entry["nargs"] = "append"
        if "nargs" in kw:
            nargs = ev.eval(kw["nargs"], scopes)
            entry["nargs"] = nargs if not unknown(nargs) else "?"
        if "choices" in kw:
            choices = ev.eval(kw["choices"], scopes)
            if isinstance(choices, (list, tuple)) and not contains_unknown(choices):
                entry["choices"] = [c for c in choices if c is not None]
            else:
                entry["choices_not_static"] = ast.unparse(kw["choices"])
        if "default" in kw:
            d = plain(ev.eval(kw["default"], scopes))
            if d is not None and d != "":
                entry["default"] = d
        if "required" in kw and ev.eval(kw["required"], scopes) is True:
            entry["required"] = True
        extra = [f for f in flags if f != f"--{dest}" and f != dest]
        if extra:
            entry["flags"] = flags
        if dest in self.options:
            warn(f"`{dest}` added twice ({self.sources[dest]} and {rel}::{fname}); argparse refuses that")
        else:
            self.order.append(dest)
        self.options[dest] = entry
        self.sources[dest] = f"{rel}::{fname}"

    def _type(self, ev, node, scopes) -> str:
        if node is None:
            return "str"
        if isinstance(node, ast.Name) and node.id in ("int", "float", "str"):
            return node.id
        if isinstance(node, ast.Name) and node.id == "bool":
            return "any"
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if name in CUSTOM_TYPES:
            return CUSTOM_TYPES[name]
        warn(f"unknown argparse type `{ast.unparse(node)}`: recorded as any")
        return "any"


# --------------------------------------------------------------------------
# kohya-ss/sd-scripts


def kohya_script(src: Source, script: str) -> dict:
    fn = function(src.tree(script), "setup_parser")
    if fn is None:
        raise SystemExit(f"{script}: no setup_parser()")
    w = ArgparseWalker(src)
    w.walk(script, fn, {})
    if w.conditional:
        for c in w.conditional:
            warn(f"{script}: condition not decided statically, both branches kept: {c}")
    options = {k: w.options[k] for k in sorted(w.options)}
    helpers = sorted({v.split("::")[0] for v in w.sources.values()})
    return {
        "source": source_block(src, [script] + [h for h in helpers if h != script]),
        "script": script,
        "how_read": [
            "`--config_file <toml>` (library/train_util.py::read_config_from_file): every [section] is flattened into one namespace and passed to parser.parse_args(namespace=...).",
            "A key that is not an option below stays on the namespace unread: kohya ignores it without a word and the option keeps its default.",
            "Values are not converted: a TOML value keeps its TOML type (int stays int, 5.0 stays float, \"1e-4\" stays a string), and `choices` are not checked. Write every value with the type given here.",
            "`flag` options (store_true) take TOML booleans. Options with `nargs` take TOML arrays.",
            "Options given on the command line are converted by argparse and win over the file.",
        ],
        "options": options,
    }


VOLUPTUOUS_NAMES = {"bool": "bool", "int": "int", "float": "float", "str": "str", "dict": "dict"}


def voluptuous_type(node) -> str:
    """The value a voluptuous schema entry of config_util.py accepts."""
    if isinstance(node, ast.Name) and node.id in VOLUPTUOUS_NAMES:
        return VOLUPTUOUS_NAMES[node.id]
    if isinstance(node, ast.Call):
        fname = ast.unparse(node.func)
        if fname == "Any":
            parts = []
            for a in node.args:
                if isinstance(a, ast.Constant) and a.value is None:
                    parts.append("null")
                else:
                    parts.append(voluptuous_type(a))
            return "|".join(parts)
        if fname == "functools.partial" and node.args:
            inner = ast.unparse(node.args[0])
            klass = voluptuous_type(node.args[1]) if len(node.args) > 1 else "any"
            if "scalar_or_twodim" in inner:
                return f"{klass}|[{klass},{klass}]"
            if "twodim" in inner:
                return f"[{klass},{klass}]"
    warn(f"config_util: unknown schema entry `{ast.unparse(node)}`")
    return "any"


def kohya_dataset(src: Source, scripts: list[str]) -> dict:
    rel = "library/config_util.py"
    cls = class_def(src.tree(rel), "ConfigSanitizer")
    if cls is None:
        raise SystemExit(f"{rel}: no ConfigSanitizer")
    schemas: dict[str, dict] = {}
    for stmt in cls.body:
        if (
            isinstance(stmt, ast.Assign)
            and isinstance(stmt.value, ast.Dict)
            and stmt.targets[0].id.endswith("_SCHEMA")
        ):
            name = stmt.targets[0].id
            entries = {}
            for k, v in zip(stmt.value.keys, stmt.value.values):
                required = False
                if isinstance(k, ast.Call) and ast.unparse(k.func) == "Required":
                    required = True
                    k = k.args[0]
                key = k.value
                e = {"type": voluptuous_type(v)}
                if required:
                    e["required"] = True
                entries[key] = e
            schemas[name] = entries
    # How train_network.py builds its sanitizer: ConfigSanitizer(db, ft, cn, dropout).
    flags = None
    for script in scripts:
        for node in ast.walk(src.tree(script)):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "ConfigSanitizer":
                flags = [ast.unparse(a) for a in node.args]
    if flags is None:
        raise SystemExit("no ConfigSanitizer(...) call in the training scripts")
    init = next(s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__")
    params = [a.arg for a in init.args.args][1:]
    values = {}
    for p, f in zip(params, flags):
        # `args.masked_loss` is an option, False unless set; we never set it.
        values[p] = {"True": True, "False": False}.get(f, False)
    merged: dict[str, dict] = {}

    def resolve(node) -> dict:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            if node.attr in merged:
                return merged[node.attr]
            return schemas[node.attr]
        if isinstance(node, ast.IfExp):
            t = node.test
            ok = values.get(t.id, False) if isinstance(t, ast.Name) else False
            return resolve(node.body if ok else node.orelse)
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values):
                if isinstance(v, ast.List):
                    out[k.value] = {"type": "list", "items": ast.unparse(v.elts[0]).replace("self.", "")}
                else:
                    out[k.value] = resolve(v)
            return out
        raise SystemExit(f"config_util: cannot read `{ast.unparse(node)}`")

    for stmt in init.body:
        if (
            isinstance(stmt, ast.Assign)
            and isinstance(stmt.value, ast.Call)
            and ast.unparse(stmt.value.func).endswith("__merge_dict")
            and isinstance(stmt.targets[0], ast.Attribute)
            and stmt.targets[0].attr != "argparse_schema"
        ):
            out: dict = {}
            for a in stmt.value.args:
                out.update(resolve(a))
            merged[stmt.targets[0].attr] = out
    for need in ("general_schema", "db_dataset_schema", "db_subset_schema"):
        if need not in merged:
            raise SystemExit(f"config_util: no {need}")
    dataset = {k: v for k, v in merged["db_dataset_schema"].items() if k != "subsets"}
    return {
        "source": source_block(src, [rel] + scripts),
        "sanitizer": dict(zip(params, flags)),
        "how_read": [
            "`--dataset_config <toml>` is checked by voluptuous (library/config_util.py::ConfigSanitizer): a key not listed here stops the run (`extra keys not allowed`).",
            "Types are checked as written: `float` refuses an integer (0 is refused, 0.0 is accepted), `int` refuses a float, `int|[int,int]` is one number or a pair.",
            "These are the DreamBooth-style (image_dir + caption files) levels the training scripts use when no subset has `metadata_file`; `general` and `datasets` hold the dataset-level keys, `subsets` the subset keys.",
        ],
        "general": dict(sorted(merged["general_schema"].items())),
        "datasets": dict(sorted(dataset.items())),
        "subsets": dict(sorted(merged["db_subset_schema"].items())),
    }


# --------------------------------------------------------------------------
# bghira/SimpleTuner


class RegistryInterpreter:
    """Runs the field registry's register functions just far enough to see
    every `registry._add_field(ConfigField(...))` with its arguments."""

    def __init__(self, src: Source, hooks: dict):
        self.src = src
        self.hooks = hooks
        self.fields: dict[str, dict] = {}
        self.unknown_fields: list[str] = []
        types_rel = "simpletuner/simpletuner_sdk/server/services/field_registry/types.py"
        self.records = {
            "ConfigField": self._params(types_rel, "ConfigField"),
            "ValidationRule": self._params(types_rel, "ValidationRule"),
            "FieldDependency": self._params(types_rel, "FieldDependency"),
        }

    def _params(self, rel: str, name: str) -> list[str]:
        cls = class_def(self.src.tree(rel), name)
        return [
            s.target.id
            for s in cls.body
            if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
        ]

    def run(self, rel: str, fname: str):
        ev = Evaluator(self.src, rel, self.hooks, self.records)
        fn = function(ev.tree, fname)
        if fn is None:
            raise SystemExit(f"{rel}: no {fname}()")
        self._block(ev, fn.body, [{"registry": Unknown("registry")}])

    def _block(self, ev, body, scopes):
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                call = stmt.value
                if isinstance(call.func, ast.Attribute) and call.func.attr == "_add_field":
                    rec = ev.eval(call.args[0], scopes)
                    if isinstance(rec, Record):
                        name = rec.get("name")
                        if unknown(name) or not isinstance(name, str):
                            self.unknown_fields.append(ast.unparse(call.args[0])[:80])
                            continue
                        self.fields[name] = rec
                    else:
                        self.unknown_fields.append(ast.unparse(call.args[0])[:80])
            elif isinstance(stmt, ast.Assign):
                v = ev.eval(stmt.value, scopes)
                for t in stmt.targets:
                    bind_target(t, v, scopes[-1])
            elif isinstance(stmt, ast.For):
                it = ev.eval(stmt.iter, scopes)
                if unknown(it) or not isinstance(it, (list, tuple)):
                    if "_add_field" in ast.unparse(stmt):
                        self.unknown_fields.append(f"loop over {ast.unparse(stmt.iter)[:60]}")
                    continue
                for item in it:
                    local: dict = {}
                    bind_target(stmt.target, item, local)
                    self._block(ev, stmt.body, scopes + [local])
            elif isinstance(stmt, ast.If):
                t = ev.eval(stmt.test, scopes)
                if unknown(t):
                    self._block(ev, stmt.body, scopes)
                    self._block(ev, stmt.orelse, scopes)
                elif t:
                    self._block(ev, stmt.body, scopes)
                else:
                    self._block(ev, stmt.orelse, scopes)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                scopes[-1][stmt.name] = Unknown(f"local function {stmt.name}")


def enum_value(v):
    """`FieldType.SELECT` evaluates to the enum's value, "select"."""
    return v if isinstance(v, str) else None


def infer_numeric(field: dict, choice_values: list) -> str:
    """cmd_args.py::_infer_numeric_type."""
    candidates = []
    default = field.get("default_value")
    if default not in (None, "==SUPPRESS==") and not unknown(default):
        candidates.append(default)
    candidates.extend(choice_values)
    for rule in field.get("validation_rules") or []:
        if isinstance(rule, Record):
            value = rule.get("value")
            if value is not None and not unknown(value):
                candidates.append(value)
    for c in candidates:
        if isinstance(c, float):
            return "float"
        if isinstance(c, str):
            try:
                n = float(c)
            except ValueError:
                continue
            if "." in c or "e" in c.lower() or not n.is_integer():
                return "float"
    return "int"


def simpletuner_option(field: dict) -> tuple[list[str], dict] | None:
    """cmd_args.py::_add_argument_from_field, as data."""
    arg = field.get("arg_name")
    if not isinstance(arg, str) or not arg.startswith("--") or arg == "--help":
        return None
    default = field.get("default_value")
    if default == "==SUPPRESS==":
        return None
    ftype = enum_value(field.get("field_type"))
    flags = [arg] + [a for a in (field.get("aliases") or []) if isinstance(a, str) and a != arg]
    entry: dict = {}
    choices = field.get("choices")
    dynamic = field.get("dynamic_choices") is True
    choice_values: list = []
    static_choices = False
    if choices and not dynamic:
        # Only a choice's value reaches argparse; its label may be computed.
        values = [c.get("value") if isinstance(c, dict) else c for c in choices] if isinstance(choices, list) else choices
        if contains_unknown(values):
            entry["choices_not_static"] = True
        else:
            static_choices = True
            choice_values = list(values)
    cli_choices = [c for c in choice_values if c is not None]
    if ftype == "checkbox":
        entry["type"] = "bool"
        entry["nargs"] = "?"
        d = plain(default)
        if d is not None:
            entry["default"] = d
        return flags, entry
    if ftype == "select":
        cli_choices = [str(c) for c in cli_choices]
    if static_choices and cli_choices:
        entry["choices"] = cli_choices
    parser_type = enum_value(field.get("parser_type"))
    if parser_type:
        entry["type"] = {"string": "str", "integer": "int", "float": "float", "boolean": "bool"}[parser_type]
    elif ftype == "number":
        entry["type"] = infer_numeric(field, cli_choices)
    else:
        entry["type"] = "str"
    d = plain(default)
    if d is not None and d != "":
        entry["default"] = str(d) if ftype == "select" else d
    if dynamic:
        entry["choices_checked_at_run_time"] = True
    return flags, entry


def simpletuner(src: Source) -> dict:
    st = "simpletuner"
    metadata = json.loads(src.text(f"{st}/helpers/models/model_metadata.json"))
    families = {k: v for k, v in sorted(metadata.items())}

    # ModelRegistry.model_families() at run time = model_metadata.json plus
    # classes that register themselves; the metadata is the static part.
    hooks = {
        "ModelRegistry.model_families": lambda: dict(families),
    }
    interp = RegistryInterpreter(src, hooks)
    sections = f"{st}/simpletuner_sdk/server/services/field_registry/sections"
    init = src.tree(f"{sections}/__init__.py")
    order = []
    for node in ast.walk(init):
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and getattr(target, "id", "") == "_REGISTRARS":
            for e in node.value.elts:
                order.append((e.value.id, e.attr))
    if not order:
        raise SystemExit("field registry: no _REGISTRARS")
    for module, fname in order:
        interp.run(f"{sections}/{module}.py", fname)
    models_dir = f"{st}/helpers/models/field_registry/"
    model_mods = sorted(
        f for f in src.files()
        if f.startswith(models_dir) and f.endswith(".py") and "/" not in f[len(models_dir):]
        and not PurePosixPath(f).name.startswith("_")
    )
    for rel in model_mods:
        interp.run(rel, "register_fields")
    for u in interp.unknown_fields:
        warn(f"SimpleTuner: a field not read statically: {u}")

    options: dict[str, dict] = {}
    seen = set()
    ignored = []
    for name, field in interp.fields.items():
        made = simpletuner_option(field)
        if made is None:
            if field.get("arg_name") is None:
                ignored.append(name)
            continue
        flags, entry = made
        if flags[0] in seen:
            continue
        seen.add(flags[0])
        dest = flags[0][2:]
        if len(flags) > 1:
            entry["aliases"] = [f[2:] for f in flags[1:]]
        options[dest] = entry

    # Keys mapping_to_cli_args handles itself (renames and UI-only keys).
    cli_utils = f"{st}/helpers/configuration/cli_utils.py"
    handled = {}
    for node in src.tree(cli_utils).body:
        if isinstance(node, ast.FunctionDef):
            for d in node.decorator_list:
                if isinstance(d, ast.Call) and ast.unparse(d.func) == "_legacy_handler":
                    key = d.args[0].value
                    renamed = None
                    for sub in ast.walk(node):
                        if isinstance(sub, ast.Call) and ast.unparse(sub.func) in ("_format_key_value", "_ensure_prefixed"):
                            if sub.args and isinstance(sub.args[0], ast.Constant):
                                renamed = sub.args[0].value
                    handled[key] = f"becomes `{renamed}`" if renamed else "dropped (not a trainer option)"

    # `simpletuner train`'s own options.
    cli = f"{st}/cli/__init__.py"
    fn = function(src.tree(cli), "_add_train_parser")
    w = ArgparseWalker(src)
    w.walk(cli, fn, {})

    # Optimizer names: helpers/training/optimizer_param.py::optimizer_choices,
    # each group available when its library is installed.
    opt_rel = f"{st}/helpers/training/optimizer_param.py"
    optimizers: dict[str, str] = {}

    def collect(node, cond):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "optimizer_choices" and isinstance(node.value, ast.Dict):
            for k in node.value.keys:
                optimizers[k.value] = cond
        for sub in ast.walk(node) if not isinstance(node, ast.If) else []:
            if (
                isinstance(sub, ast.Call)
                and ast.unparse(sub.func) == "optimizer_choices.update"
                and isinstance(sub.args[0], ast.Dict)
            ):
                for k in sub.args[0].keys:
                    optimizers.setdefault(k.value, cond)
        if isinstance(node, ast.If):
            for s in node.body:
                collect(s, ast.unparse(node.test))

    for node in src.tree(opt_rel).body:
        collect(node, "always")

    data = simpletuner_databackend(src)
    return {
        "source": source_block(src, [
            f"{st}/helpers/configuration/cmd_args.py",
            f"{sections}/*.py",
            f"{models_dir}*.py",
            cli_utils,
            cli,
            opt_rel,
            f"{st}/helpers/models/model_metadata.json",
        ]),
        "how_read": [
            "config.json keys are the options below without `--` (helpers/configuration/json_file.py); cli_utils.py::mapping_to_cli_args turns each into command-line text for argparse, which stops the run on an unknown option.",
            "JSON true becomes `--key`, false `--key=false`: only `bool` options take booleans. Any other value becomes `--key=<str(value)>`: an `int` option refuses `5.0`; a `float` option takes 5 or 5.0.",
            "A `choices` option takes one of its strings. A list becomes the key repeated, which only an option with nargs keeps.",
            "`config_json_handled_keys` are read by mapping_to_cli_args itself (renamed or dropped); `ignored_keys` are registry fields with no option.",
        ],
        "launch": {
            "command": "simpletuner train",
            "options": {k: w.options[k] for k in sorted(w.options)},
            "note": "`--env <dir>` reads <dir>/config.json (helpers/configuration/json_file.py::_candidate_json_paths); an absolute <dir> is taken as it is.",
        },
        "options": dict(sorted(options.items())),
        "config_json_handled_keys": dict(sorted(handled.items())),
        "ignored_keys": sorted(ignored),
        "model_families": {k: v.get("flavour_choices", []) for k, v in families.items()},
        "optimizers": dict(sorted(optimizers.items())),
    }, data


def simpletuner_databackend(src: Source) -> dict:
    st = "simpletuner/helpers/data_backend"
    readers = {f"{st}/factory.py": {"backend"}}
    for f in src.files():
        if f.startswith(f"{st}/config/") or f.startswith(f"{st}/builders/"):
            if f.endswith(".py"):
                readers[f] = {"backend_dict"}
    keys: dict[str, set] = {}
    for rel, names in sorted(readers.items()):
        for node in ast.walk(src.tree(rel)):
            key = None
            default = "no default"
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "pop")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in names
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                key = node.args[0].value
                if len(node.args) > 1:
                    try:
                        default = kind_of(ast.literal_eval(node.args[1]))
                    except ValueError:
                        default = "computed"
                else:
                    default = "none"
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id in names
                and isinstance(node.slice, ast.Constant)
            ):
                key = node.slice.value
            elif (
                isinstance(node, ast.Compare)
                and len(node.ops) == 1
                and isinstance(node.ops[0], (ast.In, ast.NotIn))
                and isinstance(node.comparators[0], ast.Name)
                and node.comparators[0].id in names
                and isinstance(node.left, ast.Constant)
            ):
                key = node.left.value
            if isinstance(key, str):
                keys.setdefault(key, set())
                if default != "no default":
                    keys[key].add(default)
    out = {}
    for k in sorted(keys):
        kinds = sorted(keys[k] - {"none", "computed"})
        out[k] = {"default_kind": "|".join(kinds)} if kinds else {}
    # Values the validators accept: `validate_<key>` holding `valid_... = [...]`.
    validators = f"{st}/config/validators.py"
    for fn in src.tree(validators).body:
        if isinstance(fn, ast.FunctionDef) and fn.name.startswith("validate_"):
            key = fn.name[len("validate_"):]
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Assign)
                    and getattr(node.targets[0], "id", "").startswith("valid_")
                    and isinstance(node.value, ast.List)
                    and key in out
                ):
                    out[key]["choices"] = ast.literal_eval(node.value)
                    break
    dataset_types = f"{st}/dataset_types.py"
    enum = class_def(src.tree(dataset_types), "DatasetType")
    out["dataset_type"]["choices"] = [
        s.value.value for s in enum.body if isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant)
    ]
    return {
        "source": source_block(src, sorted(readers) + [validators, dataset_types]),
        "how_read": [
            "multidatabackend.json is a list of backends; each is a dict the data-backend code reads key by key (`backend.get(...)`, `backend[...]` in factory.py, `backend_dict...` in config/ and builders/). These are every key read there.",
            "An unknown key is ignored without a word. Values are not converted: `\"crop\": \"False\"` is a true string. `default_kind` is the kind of the default where the source gives a literal one.",
        ],
        "keys": out,
    }


# --------------------------------------------------------------------------
# ostris/ai-toolkit


def annotation_type(ann, ev: Evaluator) -> tuple[str | None, list | None]:
    """A Python annotation as (type, choices)."""
    if ann is None:
        return None, None
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        try:
            ann = ast.parse(ann.value, mode="eval").body
        except SyntaxError:
            return None, None
    if isinstance(ann, ast.Name):
        if ann.id in ("int", "float", "str", "bool"):
            return ann.id, None
        if ann.id in ("dict", "Dict"):
            return "dict", None
        if ann.id in ("list", "List"):
            return "list", None
        # A module-level alias such as `NetworkType = Literal[...]`.
        env = ev.module_env()
        v = env.get(ann.id)
        if isinstance(v, tuple) and v and v[0] == "lazy":
            return annotation_type(v[1], ev)
        return None, None
    if isinstance(ann, ast.Subscript):
        head = ast.unparse(ann.value)
        args = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
        if head == "Literal":
            values = [a.value for a in args if isinstance(a, ast.Constant)]
            kinds = sorted({kind_of(v) for v in values})
            return "|".join(kinds), values
        if head in ("Optional",):
            t, c = annotation_type(args[0], ev)
            return (f"{t}|null" if t else None), c
        if head == "Union":
            parts = []
            choices = None
            for a in args:
                if isinstance(a, ast.Constant) and a.value is None:
                    parts.append("null")
                    continue
                t, c = annotation_type(a, ev)
                if t is None:
                    return None, None
                parts.append(t)
                choices = choices or c
            return "|".join(parts), choices
        if head in ("List", "list", "Tuple", "tuple"):
            return "list", None
        if head in ("Dict", "dict"):
            return "dict", None
    return None, None


class ConfigClassReader:
    """Keys a config class reads from its `**kwargs`."""

    def __init__(self, src: Source, rel: str):
        self.src = src
        self.rel = rel
        self.ev = Evaluator(src, rel)
        self.classes: dict[str, dict] = {}

    def read(self, name: str) -> dict:
        if name in self.classes:
            return self.classes[name]
        cls = class_def(self.src.tree(self.rel), name)
        if cls is None:
            raise SystemExit(f"{self.rel}: no class {name}")
        keys: dict[str, dict] = {}
        self.classes[name] = keys
        init = next(s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__")
        kwarg = init.args.kwarg.arg if init.args.kwarg else "kwargs"
        tracked: dict[str, tuple[str, bool]] = {}

        def key_of(expr):
            """`kwargs.get('k', d)` / `kwargs['k']` inside `expr`: (key, default node or None, direct)."""
            if (
                isinstance(expr, ast.Call)
                and isinstance(expr.func, ast.Attribute)
                and expr.func.attr in ("get", "pop")
                and isinstance(expr.func.value, ast.Name)
                and expr.func.value.id == kwarg
                and expr.args
                and isinstance(expr.args[0], ast.Constant)
            ):
                return expr.args[0].value, (expr.args[1] if len(expr.args) > 1 else None)
            if (
                isinstance(expr, ast.Subscript)
                and isinstance(expr.value, ast.Name)
                and expr.value.id == kwarg
                and isinstance(expr.slice, ast.Constant)
            ):
                return expr.slice.value, None
            return None, None

        def note(key, default_node, ann, converted):
            e = keys.setdefault(key, {})
            t, choices = annotation_type(ann, self.ev) if ann is not None else (None, None)
            if converted:
                t = {"float": "int|float", "int": "int|float", "bool": "any"}.get(converted, t)
            if t and "type" not in e:
                e["type"] = t
            if choices and "choices" not in e:
                e["choices"] = choices
            if default_node is not None and "default_kind" not in e and "type" not in e:
                try:
                    e["default_kind"] = kind_of(ast.literal_eval(default_node))
                except ValueError:
                    pass

        for stmt in ast.walk(init):
            target_ann = None
            value = None
            if isinstance(stmt, ast.AnnAssign):
                target_ann, value = stmt.annotation, stmt.value
            elif isinstance(stmt, ast.Assign):
                value = stmt.value
            if value is None:
                continue
            converted = None
            inner = value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("float", "int", "bool") and value.args:
                converted, inner = value.func.id, value.args[0]
            key, default = key_of(inner)
            if key is not None:
                note(key, default, target_ann, converted)
                target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
                if isinstance(target, ast.Name):
                    tracked[target.id] = (key, False)
            elif target_ann is not None and isinstance(value, ast.Name) and value.id in tracked:
                # `linear = kwargs.get('linear')` ... `self.linear: int = linear`
                e = keys.get(tracked[value.id][0], {})
                t, choices = annotation_type(target_ann, self.ev)
                if t and "type" not in e:
                    e["type"] = t
                    e.pop("default_kind", None)
        for node in ast.walk(init):
            key, default = key_of(node)
            if key is not None and key not in keys:
                note(key, default, None, None)
            if (
                isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Constant)
                and isinstance(node.comparators[0], ast.Name)
                and node.comparators[0].id == kwarg
            ):
                keys.setdefault(node.left.value, {})
        # Nested configs: `SubConfig(**kwargs.get('k', {}))`, `SubConfig(**var)`.
        for node in ast.walk(init):
            if isinstance(node, ast.comprehension) and isinstance(node.iter, ast.Name) and node.iter.id in tracked:
                if isinstance(node.target, ast.Name):
                    tracked[node.target.id] = (tracked[node.iter.id][0], True)
        for node in ast.walk(init):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                for kw in node.keywords:
                    if kw.arg is None:
                        key, _ = key_of(kw.value)
                        many = False
                        if key is None and isinstance(kw.value, ast.Name) and kw.value.id in tracked:
                            key, many = tracked[kw.value.id]
                        if key is not None and class_def(self.src.tree(self.rel), node.func.id):
                            e = keys.setdefault(key, {})
                            if many:
                                e["type"] = "list"
                            elif "dict" not in e.get("type", ""):
                                e["type"] = "dict"
                            e.pop("default_kind", None)
                            e["schema"] = node.func.id
                            self.read(node.func.id)
        return keys


def ai_toolkit(src: Source) -> dict:
    rel = "toolkit/config_modules.py"
    reader = ConfigClassReader(src, rel)

    # The process class behind `type: sd_trainer` and its bases.
    process_types = {}
    for f in src.files():
        if f.startswith("extensions_built_in/") and f.endswith("__init__.py"):
            for node in src.try_tree(f).body:
                if isinstance(node, ast.ClassDef):
                    uid = None
                    for s in node.body:
                        if isinstance(s, ast.Assign) and getattr(s.targets[0], "id", "") == "uid":
                            uid = s.value.value
                    if uid is None:
                        continue
                    imported = None
                    for sub in ast.walk(node):
                        if isinstance(sub, ast.ImportFrom) and sub.level == 1:
                            imported = (str(PurePosixPath(f).parent / f"{sub.module}.py"), sub.names[0].name)
                    if imported is None:
                        # A subclass of another extension: same process.
                        base = node.bases[0].id if node.bases else None
                        imported = ("base", base)
                    process_types[uid] = imported
    ptype = "sd_trainer"
    if ptype not in process_types or process_types[ptype][0] == "base":
        raise SystemExit("ai-toolkit: no sd_trainer extension")
    ext_dir = str(PurePosixPath(process_types[ptype][0]).parent) + "/"
    classes_by_name = {}
    for f in src.files():
        if f.endswith(".py") and (f.startswith("jobs/") or f.startswith(ext_dir)):
            for node in src.try_tree(f).body:
                if isinstance(node, ast.ClassDef):
                    classes_by_name.setdefault(node.name, (f, node))
    chain = []
    name = process_types[ptype][1]
    while name and name in classes_by_name:
        f, node = classes_by_name[name]
        chain.append((f, node))
        name = ast.unparse(node.bases[0]).split(".")[-1] if node.bases else None
        if name == "object":
            break

    process: dict[str, dict] = {}
    for f, cls in chain:
        for fn in ast.walk(cls):
            if not isinstance(fn, ast.FunctionDef):
                continue
            tracked: dict[str, tuple[str, bool]] = {}
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "self.get_conf" and node.args and isinstance(node.args[0], ast.Constant):
                    key = node.args[0].value
                    e = process.setdefault(key, {})
                    if len(node.args) > 1 and "default_kind" not in e:
                        try:
                            e["default_kind"] = kind_of(ast.literal_eval(node.args[1]))
                        except ValueError:
                            pass
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    v = node.value
                    if isinstance(v, ast.Call) and ast.unparse(v.func) == "self.get_conf" and isinstance(v.args[0], ast.Constant):
                        tracked[node.targets[0].id] = (v.args[0].value, False)
                    elif isinstance(v, ast.Call) and v.args and isinstance(v.args[0], ast.Name) and v.args[0].id in tracked:
                        tracked[node.targets[0].id] = tracked[v.args[0].id]
                if isinstance(node, ast.For) and isinstance(node.iter, ast.Name) and node.iter.id in tracked and isinstance(node.target, ast.Name):
                    tracked[node.target.id] = (tracked[node.iter.id][0], True)
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    for kw in node.keywords:
                        if kw.arg is not None:
                            continue
                        key, many = None, False
                        if isinstance(kw.value, ast.Call) and ast.unparse(kw.value.func) == "self.get_conf":
                            key = kw.value.args[0].value
                        elif isinstance(kw.value, ast.Name) and kw.value.id in tracked:
                            key, many = tracked[kw.value.id]
                        if key is not None and class_def(src.tree(rel), node.func.id):
                            e = process.setdefault(key, {})
                            e.pop("default_kind", None)
                            e["type"] = "list" if many else "dict"
                            e["schema"] = node.func.id
                            reader.read(node.func.id)
    process["type"] = {"type": "str", "choices": sorted(process_types)}

    # Job and config levels (jobs/BaseJob.py, jobs/ExtensionJob.py).
    job_keys: dict[str, dict] = {}
    config_keys: dict[str, dict] = {}
    for f in ("jobs/BaseJob.py", "jobs/ExtensionJob.py"):
        for node in ast.walk(src.tree(f)):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "config" and isinstance(node.slice, ast.Constant):
                job_keys.setdefault(node.slice.value, {})
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and isinstance(node.comparators[0], ast.Name) and node.comparators[0].id == "config":
                job_keys.setdefault(node.left.value, {})
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "self.get_conf" and isinstance(node.args[0], ast.Constant):
                config_keys.setdefault(node.args[0].value, {})
            if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "self.config" and isinstance(node.slice, ast.Constant):
                config_keys.setdefault(node.slice.value, {})
    job_types = []
    for node in ast.walk(src.tree("toolkit/job.py")):
        if isinstance(node, ast.Compare) and ast.unparse(node.left) == "job" and isinstance(node.comparators[0], ast.Constant):
            job_types.append(node.comparators[0].value)
    job_keys["job"] = {"type": "str", "choices": job_types}
    job_keys["config"] = {"type": "dict", "schema": "config"}
    config_keys["process"] = {"type": "list", "schema": "process"}

    # Values checked at run time by string comparison.
    def compared_strings(rel_: str, fname: str, var: str) -> list[str]:
        fn = function(src.tree(rel_), fname)
        out = []
        for node in ast.walk(fn):
            if isinstance(node, ast.Compare) and ast.unparse(node.left) == var:
                for op, c in zip(node.ops, node.comparators):
                    if isinstance(op, ast.Eq) and isinstance(c, ast.Constant):
                        out.append(c.value)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith" and ast.unparse(node.func.value) == var:
                if isinstance(node.args[0], ast.Constant):
                    out.append(node.args[0].value)
        return sorted(set(out))

    reader.classes["TrainConfig"].setdefault("optimizer", {})["values"] = compared_strings(
        "toolkit/optimizer.py", "get_optimizer", "lower_type"
    )
    reader.classes["TrainConfig"]["optimizer"]["values_note"] = "toolkit/optimizer.py::get_optimizer compares optimizer.lower() with these (prodigy*, dadaptation* by prefix)"
    reader.classes["TrainConfig"].setdefault("lr_scheduler", {})["values"] = compared_strings(
        "toolkit/scheduler.py", "get_lr_scheduler", "name"
    )
    # preprocess_dataset_raw_config splits a list of resolutions into one dataset each.
    if function(src.tree(rel), "preprocess_dataset_raw_config") is None:
        raise SystemExit("ai-toolkit: preprocess_dataset_raw_config is gone; recheck datasets.resolution")
    reader.classes["DatasetConfig"]["resolution"]["type"] = "int|list"
    reader.classes["DatasetConfig"]["resolution"]["note"] = "a list is split into one dataset per resolution (preprocess_dataset_raw_config)"

    launch_fn = None
    for node in src.tree("run.py").body:
        if isinstance(node, ast.FunctionDef) and "add_argument" in ast.unparse(node):
            launch_fn = node
    w = ArgparseWalker(src)
    w.walk("run.py", launch_fn, {})

    schemas = {"job": dict(sorted(job_keys.items())), "config": dict(sorted(config_keys.items())), "process": dict(sorted(process.items()))}
    for name in sorted(reader.classes):
        schemas[name] = dict(sorted(reader.classes[name].items()))
    return {
        "source": source_block(src, ["jobs/BaseJob.py", "jobs/ExtensionJob.py", "toolkit/job.py"] + [f for f, _ in chain] + [rel, "toolkit/optimizer.py", "toolkit/scheduler.py", "run.py"]),
        "how_read": [
            "The job YAML is a mapping: `job`, `config` {name, process: [...]}, `meta`. Each process (type sd_trainer: " + " → ".join(c.name for _, c in chain) + ") reads its keys with self.get_conf('key', default); each section is handed to the config class named in `schema`, which reads it with kwargs.get('key', default).",
            "An unknown key is ignored without a word; values are used as YAML gives them.",
            "`type` is the key's annotation in the source; where there is none, `default_kind` is the kind of its default. `values` are compared at run time.",
        ],
        "launch": {"command": "python run.py", "options": {k: w.options[k] for k in sorted(w.options)}},
        "root": "job",
        "schemas": schemas,
    }


# --------------------------------------------------------------------------
# Output


def source_block(src: Source, files: list[str]) -> dict:
    return {
        "repo": src.pin["repo"],
        "commit": src.pin["commit"],
        "date": src.pin["date"],
        "files": files,
        "extracted_by": "scripts/extract_trainer_args.py",
    }


def is_leaf(v) -> bool:
    if isinstance(v, dict):
        return all(not isinstance(x, (dict,)) and (not isinstance(x, list) or all(not isinstance(y, (dict, list)) for y in x)) for x in v.values())
    if isinstance(v, list):
        return all(not isinstance(x, (dict, list)) for x in v)
    return True


def dump(v, indent: int = 0) -> str:
    """JSON with one line per leaf entry: compact, and diffs stay readable."""
    pad = "  " * (indent + 1)
    if isinstance(v, dict) and "type" in v:
        # An option reads type first.
        v = {"type": v["type"], **{k: x for k, x in v.items() if k != "type"}}
    if isinstance(v, dict) and v and not (indent >= 1 and is_leaf(v) and len(json.dumps(v)) < 160):
        items = [f"{pad}{json.dumps(k)}: {dump(x, indent + 1)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(v, list) and v and not (is_leaf(v) and len(json.dumps(v, ensure_ascii=False)) < 160):
        items = [f"{pad}{dump(x, indent + 1)}" for x in v]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kohya", required=True, help="git checkout or bare git dir of kohya-ss/sd-scripts")
    ap.add_argument("--simpletuner", required=True, help="git checkout or bare git dir of bghira/SimpleTuner")
    ap.add_argument("--ai-toolkit", required=True, help="git checkout or bare git dir of ostris/ai-toolkit")
    ap.add_argument("--out", default="fixtures/trainer-args")
    ap.add_argument("--check", action="store_true", help="compare with the committed files; write nothing")
    args = ap.parse_args()

    kohya = Source(args.kohya, PINS["kohya"])
    st = Source(args.simpletuner, PINS["simpletuner"])
    ait = Source(args.ai_toolkit, PINS["ai-toolkit"])

    files = {}
    for script in KOHYA_SCRIPTS:
        files[f"kohya-{script[:-3]}.json"] = kohya_script(kohya, script)
    files["kohya-dataset.json"] = kohya_dataset(kohya, KOHYA_SCRIPTS)
    st_args, st_data = simpletuner(st)
    files["simpletuner.json"] = st_args
    files["simpletuner-databackend.json"] = st_data
    files["ai-toolkit.json"] = ai_toolkit(ait)

    differ = []
    for name, data in files.items():
        text = dump(data) + "\n"
        path = os.path.join(args.out, name)
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        differ.append(path)
            except FileNotFoundError:
                differ.append(path)
        else:
            os.makedirs(args.out, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {path}")
    if differ:
        print("differs from the source: " + ", ".join(differ), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
