# Ategnatos' environment probe: one short run inside a trainer's own Python
# (src/environment/python.rs runs it with `python -c`, one JSON argument).
#
# It never imports the trainer. It reads the import statements of the
# trainer's entry scripts (and of the trainer's own modules they import, in
# turn) and asks Python whether each outside module can be found, so every
# missing module is named at once instead of one failed start at a time.
# Then it imports torch to ask about CUDA and MPS. The answer is one line:
# `ATEGNATOS_PROBE <json>`.
import ast
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys

MAX_FILES = 3000
# `if` tests that choose by platform or type checking: their imports are
# not needed on every machine.
SKIPPED_TESTS = ("TYPE_CHECKING", "'platform'", "version_info", "attr='name'")
GUARDS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def guarded(node):
    for handler in node.handlers:
        if handler.type is None:
            return True
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        for n in names:
            if isinstance(n, ast.Name) and n.id in GUARDS:
                return True
            if isinstance(n, ast.Attribute) and n.attr in GUARDS:
                return True
    return False


def imports_of(body, out):
    """Imports that run when the module is imported (not inside functions)."""
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((alias.name, 0, []))
        elif isinstance(node, ast.ImportFrom):
            out.append((node.module or "", node.level, [a.name for a in node.names]))
        elif isinstance(node, ast.If):
            if any(word in ast.dump(node.test) for word in SKIPPED_TESTS):
                continue
            imports_of(node.body, out)
            imports_of(node.orelse, out)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            if not guarded(node):
                imports_of(node.body, out)
            imports_of(node.orelse, out)
            imports_of(node.finalbody, out)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            imports_of(node.body, out)


def local_files(root, dotted):
    """The trainer's own files a dotted name refers to (package and module)."""
    parts = [p for p in dotted.split(".") if p]
    found = []
    for i in range(1, len(parts) + 1):
        base = os.path.join(root, *parts[:i])
        if os.path.isfile(base + ".py"):
            found.append(base + ".py")
        elif os.path.isfile(os.path.join(base, "__init__.py")):
            found.append(os.path.join(base, "__init__.py"))
        elif not os.path.isdir(base):
            break
    return found


def check_imports(root, entries, extras):
    missing, checked, seen, unreadable = {}, set(), set(), []
    absent_entries = [e for e in entries if not os.path.isfile(os.path.join(root, e))]
    queue = [os.path.join(root, e) for e in entries if os.path.isfile(os.path.join(root, e))]
    while queue and len(seen) < MAX_FILES:
        path = os.path.normpath(queue.pop(0))
        if path in seen:
            continue
        seen.add(path)
        rel = os.path.relpath(path, root)
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read(), path)
        except (OSError, SyntaxError, ValueError) as e:
            unreadable.append(f"{rel}: {e}")
            continue
        found = []
        imports_of(tree.body, found)
        package = os.path.dirname(rel).replace(os.sep, ".")
        for module, level, names in found:
            if level > 0:
                base = package.split(".") if package else []
                base = base[: len(base) - (level - 1)] if level > 1 else base
                dotted = ".".join([p for p in base + [module] if p])
                files = local_files(root, dotted) if dotted else []
                for n in names:
                    files += local_files(root, f"{dotted}.{n}" if dotted else n)
                queue.extend(files)
                continue
            files = local_files(root, module)
            if files:
                queue.extend(files)
                for n in names:
                    queue.extend(local_files(root, f"{module}.{n}"))
                continue
            top = module.split(".")[0]
            if not top or top in checked:
                continue
            checked.add(top)
            try:
                spec = importlib.util.find_spec(top)
            except (ImportError, ValueError):
                spec = None
            if spec is None:
                missing.setdefault(top, rel)
    for module in extras:
        top = module.split(".")[0]
        if top in checked or top in missing:
            continue
        checked.add(top)
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            missing[top] = "the plan"
    return {
        "scanned": len(seen),
        "missing": [{"module": m, "imported_by": by} for m, by in sorted(missing.items())],
        "missing_entry_scripts": absent_entries,
        "unreadable": unreadable[:20],
    }


def version(dist):
    try:
        return importlib.metadata.version(dist)
    except Exception:
        return None


def torch_info():
    if importlib.util.find_spec("torch") is None:
        return {"installed": False}
    try:
        import torch
    except Exception as e:
        return {"installed": True, "error": f"{type(e).__name__}: {e}"}
    t = {
        "installed": True,
        "version": str(getattr(torch, "__version__", "")),
        "cuda": getattr(getattr(torch, "version", None), "cuda", None),
        "version_file": getattr(getattr(torch, "version", None), "__file__", None),
    }
    try:
        t["cuda_available"] = bool(torch.cuda.is_available())
        if t["cuda_available"]:
            n = int(torch.cuda.device_count())
            t["device_count"] = n
            t["devices"] = [str(torch.cuda.get_device_name(i)) for i in range(n)]
            t["arch_list"] = [str(a) for a in torch.cuda.get_arch_list()]
            t["bf16"] = bool(torch.cuda.is_bf16_supported())
    except Exception as e:
        t["cuda_error"] = f"{type(e).__name__}: {e}"
    try:
        mps = torch.backends.mps
        t["mps_available"] = bool(mps.is_available())
        t["mps_built"] = bool(mps.is_built())
        if t["mps_available"] and hasattr(torch, "mps") and hasattr(torch.mps, "recommended_max_memory"):
            t["mps_memory_bytes"] = int(torch.mps.recommended_max_memory())
    except Exception:
        pass
    return t


def main():
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    out = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": sys.platform,
        "machine": platform.machine(),
    }
    try:
        out["memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    install = args.get("install_dir")
    if install:
        sys.path.insert(0, install)
        out["imports"] = check_imports(install, args.get("entry_scripts", []), args.get("extra_modules", []))
    out["packages"] = {
        name: version(name)
        for name in ("accelerate", "diffusers", "transformers", "xformers", "bitsandbytes")
    }
    out["torch"] = torch_info()
    print("ATEGNATOS_PROBE " + json.dumps(out), flush=True)


main()
