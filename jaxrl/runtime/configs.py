"""Config <-> JSON, ``key=value`` overrides typed by the dataclass fields, and field documentation.

Used by the CLI (``--set``, ``--sweep``, ``--config``) and by the driver (``config.json`` in every run
directory, compared on resume). Works for the ``Config`` of every registered algorithm: values are
parsed from the field's type annotation (``int``, ``float``, ``bool``, ``str``, ``tuple[int, ...]``,
``X | None``, ``Literal[...]``), and ``env_params.<field>=value`` edits the environment's parameters.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import itertools
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxrl.algos import checks

UNSERIALIZABLE = "__unserializable__"


# ------------------------------------------------------------------------------------- FIELDS
@dataclasses.dataclass(frozen=True)
class FieldInfo:
    name: str
    type: Any  # resolved annotation
    default: Any
    static: bool  # pytree_node=False: sets a shape or a flag, cannot be vmapped over
    doc: str  # the comment next to the field in the source ("" if none)


def fields(config_cls: type) -> list[FieldInfo]:
    """The fields of an algorithm's ``Config`` with types, defaults and their source comments."""
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # an annotation that does not resolve: fall back to the raw strings
        hints = {}
    docs = field_docs(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        out.append(
            FieldInfo(
                name=f.name,
                type=hints.get(f.name, f.type),
                default=default,
                static=not f.metadata.get("pytree_node", True),
                doc=docs.get(f.name, ""),
            )
        )
    return out


_FIELD_START = re.compile(r"^\s+(\w+)\s*:")
_COMMENT_LINE = re.compile(r"^\s+#\s?(.*)$")


def _code_and_comment(line: str) -> tuple[str, str]:
    """Split ``x = f("a#b")  # note`` into code and comment (a ``#`` inside quotes is code)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i], line[i + 1 :].strip()
    return line, ""


@functools.cache
def _class_source_lines(config_cls: type) -> list[str]:
    """The class's source lines (``[]`` if unavailable), read once per class.

    ``inspect.getsource`` parses the module with ``ast``; CPython 3.11.7's ``ast`` keeps its recursion
    counters per interpreter, not per thread, so a parse racing another thread's (3.11's traceback
    formatting parses source lines too, e.g. orbax logging a background task's error) can fail with
    ``SystemError: AST constructor recursion depth mismatch``. Cached, and retried on that error."""
    for attempt in range(3):
        try:
            return inspect.getsource(config_cls).splitlines()
        except (OSError, TypeError):
            return []
        except SystemError:
            if attempt == 2:
                raise
    return []


def _is_section_header(text: str) -> bool:
    words = re.findall(r"[A-Za-z]+", text.split("(")[0])
    return bool(words) and all(w.isupper() for w in words)


def field_docs(config_cls: type) -> dict[str, str]:
    """``{field: comment}`` from the class source: a ``# comment`` on the field's line(s), or the
    comment lines right above it (a section header, a comment whose words are all upper case, is not
    part of a field's text)."""
    lines = _class_source_lines(config_cls)
    if not lines:
        return {}
    names = {f.name for f in dataclasses.fields(config_cls)}
    docs: dict[str, str] = {}
    above: list[str] = []
    i = 0
    while i < len(lines):
        c = _COMMENT_LINE.match(lines[i])
        if c:
            text = c.group(1).strip()
            if not _is_section_header(text):
                above.append(text)
            i += 1
            continue
        m = _FIELD_START.match(lines[i])
        if m and m.group(1) in names and m.group(1) not in docs:
            # A definition may span lines (``x: int = struct.field(\n ...\n)  # comment``).
            code, comment = _code_and_comment(lines[i])
            depth = code.count("(") - code.count(")")
            while depth > 0 and i + 1 < len(lines):
                i += 1
                code, more = _code_and_comment(lines[i])
                depth += code.count("(") - code.count(")")
                comment = comment or more
            docs[m.group(1)] = (comment or " ".join(above)).strip()
        above = []
        i += 1
    return docs


def type_name(tp: Any) -> str:
    if isinstance(tp, str):
        return tp
    if tp is Any:
        return "any"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


# ------------------------------------------------------------------------------------ PARSING
# Words only: a number in a bool field is refused as it is through the Python API (``normalize_obs=1``).
_TRUE = {"true", "yes", "on", "y", "t"}
_FALSE = {"false", "no", "off", "n", "f"}


def parse_value(tp: Any, text: str, name: str = "value") -> Any:
    """Parse ``text`` as a value of annotation ``tp``; ``ValueError`` says what was expected."""
    text = text.strip()
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return parse_value(a, text, name)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(f"{name}: cannot parse {text!r} as {type_name(tp)}")
    if origin is typing.Literal:
        for a in args:
            if str(a) == text:
                return a
        raise ValueError(f"{name} must be one of {', '.join(map(str, args))}; got {text!r}")
    if origin in (tuple, list):
        inner = text.strip("()[] ")
        parts = [p for p in (s.strip() for s in inner.split(",")) if p] if inner else []
        elem = args[0] if args else Any
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[int, str]: fixed length
            if len(parts) != len(args):
                raise ValueError(f"{name} needs {len(args)} comma-separated values, got {text!r}")
            return tuple(parse_value(a, p, name) for a, p in zip(args, parts, strict=True))
        vals = [parse_value(elem, p, name) for p in parts]
        return tuple(vals) if origin is tuple else vals
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{name} is a bool: use true or false, got {text!r}")
    if tp is int:
        # "3.0" or "1e6" is a float, refused as the API refuses Config(n=3.0) (see parse_field)
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise ValueError(f"{name} is an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text.replace("_", ""))
        except ValueError:
            raise ValueError(f"{name} is a number, got {text!r}") from None
    if tp is str:
        return text
    # Any / unknown: a Python literal if it is one, else the string itself.
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _close(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def unknown_field(config_cls: type, name: str) -> ValueError:
    if name in getattr(config_cls, "RENAMED_FIELDS", {}):
        return ValueError(checks.renamed_message(config_cls, name))
    names = [f.name for f in dataclasses.fields(config_cls)]
    return ValueError(
        f"{config_cls.__module__.split('.')[-1]} config has no field {name!r}.{_close(name, names)} "
        f"Fields: {', '.join(names)}"
    )


def split_assignment(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ValueError(f"expected field=value, got {text!r} (e.g. --set learning_rate=3e-4)")
    k, v = text.split("=", 1)
    return k.strip(), v


def apply_overrides(cfg: Any, assignments: Sequence[str]) -> Any:
    """``cfg`` with each ``"field=value"`` applied (``env_params.<field>=value`` for env parameters)."""
    infos = {f.name: f for f in fields(type(cfg))}
    for text in assignments:
        key, value = split_assignment(text)
        if key.startswith("env_params."):
            cfg = cfg.replace(env_params=_set_env_param(cfg, key.removeprefix("env_params."), value))
            continue
        if key not in infos:
            raise unknown_field(type(cfg), key)
        cfg = cfg.replace(**{key: parse_field(type(cfg), infos[key], value)})
    return cfg


def parse_field(config_cls: type, info: FieldInfo, text: str) -> Any:
    """The value ``--set name=text`` gives a field, checked exactly as ``Config(name=value)`` is.

    ``text`` is read by the field's annotation (``parse_value``: words for bools, bare strings, comma
    lists). Text it cannot read is taken as the Python value it spells (``3.0`` a float, ``two`` a
    string), and the API's own check (:func:`jaxrl.algos.checks.check_field`) says what is wrong with
    it, so the CLI and the Python API refuse the same values with the same message."""
    from jaxrl.algos import checks

    try:
        value = parse_value(info.type, text, info.name)
    except ValueError as e:
        checks.check_field(config_cls, info.name, _python_value(text))
        raise e  # the API would accept the value the text spells; keep the parser's message
    checks.check_field(config_cls, info.name, value)
    return value


def _python_value(text: str) -> Any:
    """What ``text`` spells as a Python literal (``"3.0"`` -> 3.0, ``"64,64.5"`` -> (64, 64.5)), else
    the string itself."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text.strip()


def parse_sweep(cfg: Any, specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["learning_rate=1e-4,3e-4"]`` -> ``{"learning_rate": [1e-4, 3e-4]}``; only tunable fields."""
    infos = {f.name: f for f in fields(type(cfg))}
    out: dict[str, list[Any]] = {}
    for text in specs:
        key, values = split_assignment(text)
        if key not in infos:
            raise unknown_field(type(cfg), key)
        if infos[key].static:
            raise ValueError(
                f"--sweep {key}: {key} sets shapes or program structure (a static field), so its values "
                f"cannot share one compiled program; sweep a tunable field "
                f"({', '.join(f.name for f in infos.values() if not f.static)}) or run separate jobs"
            )
        vals = [parse_field(type(cfg), infos[key], v) for v in values.split(",") if v.strip()]
        if not vals:
            raise ValueError(f"--sweep {key}= needs at least one value")
        out[key] = vals
    return out


def sweep_configs(cfg: Any, sweep: dict[str, Sequence[Any]] | None) -> tuple[list[Any], list[dict[str, Any]]]:
    """The grid of configs of a sweep (first field varies slowest) and each member's swept values."""
    if not sweep:
        return [cfg], [{}]
    keys = list(sweep)
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(sweep[k] for k in keys))]
    return [cfg.replace(**p) for p in points], points


# --------------------------------------------------------------------------------- ENV PARAMS
def default_env_params(env: Any) -> Any:
    from jaxrl import envs

    params = envs.make(env, 1).params
    if params is None:
        raise ValueError(f"environment {env!r} has no env_params to override")
    return params


def _set_env_param(cfg: Any, name: str, text: str) -> Any:
    params = cfg.env_params if cfg.env_params is not None else default_env_params(cfg.env)
    if not dataclasses.is_dataclass(params):
        raise ValueError(f"env_params of {cfg.env!r} are not a dataclass; cannot set {name}")
    names = [f.name for f in dataclasses.fields(params)]
    if name not in names:
        raise ValueError(
            f"env_params of {cfg.env!r} have no field {name!r}.{_close(name, names)} Fields: {', '.join(names)}"
        )
    return params.replace(**{name: _like(getattr(params, name), parse_value(Any, text, name))})


def _like(template: Any, value: Any) -> Any:
    """``value`` converted to the type of a default env parameter (python scalar or array)."""
    if isinstance(template, bool):
        return bool(value)
    if isinstance(template, int):
        # a float stays a float and is refused as through the API (checks.check_env_params), not truncated
        return int(value) if isinstance(value, int) else value
    if isinstance(template, float):
        return float(value)
    if hasattr(template, "dtype"):
        return np.asarray(value, dtype=template.dtype)
    return value


# ------------------------------------------------------------------------------------- JSON
def _plain(x: Any) -> Any:
    """A JSON-able version of a config value, or an ``{UNSERIALIZABLE: repr}`` marker."""
    if x is None or isinstance(x, bool | int | float | str):
        return x
    if isinstance(x, tuple | list):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray | np.generic) or hasattr(x, "__array__"):
        return np.asarray(x).tolist()
    ref = getattr(x, "config_ref", None)  # an object that can be named, e.g. a GRPO task as "module:attr"
    if callable(ref) and isinstance(ref(), str):
        return ref()
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    return {UNSERIALIZABLE: f"{type(x).__module__}.{type(x).__qualname__}"}


def to_dict(cfg: Any) -> dict[str, Any]:
    """Every field of ``cfg`` as JSON-able values (tuples become lists, env params a dict)."""
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def is_rerunnable(d: dict[str, Any]) -> bool:
    return not any(isinstance(v, dict) and UNSERIALIZABLE in v for v in d.values())


def from_dict(config_cls: type, d: dict[str, Any]) -> Any:
    """Inverse of :func:`to_dict`; unknown keys and unserializable values raise ``ValueError``."""
    infos = {f.name: f for f in fields(config_cls)}
    kwargs = {}
    for k, v in d.items():
        if k not in infos:
            raise unknown_field(config_cls, k)
        if isinstance(v, dict) and UNSERIALIZABLE in v:
            raise ValueError(
                f"field {k!r} was a Python object ({v[UNSERIALIZABLE]}) that JSON cannot hold; "
                f"rebuild the config in Python and pass it to jaxrl.run"
            )
        if k == "env_params":
            continue
        kwargs[k] = _typed(infos[k].type, v)
    cfg = config_cls(**kwargs)
    if d.get("env_params") is not None:
        base = default_env_params(cfg.env)
        ep = d["env_params"]
        cfg = cfg.replace(env_params=base.replace(**{k: _like(getattr(base, k), v) for k, v in ep.items()}))
    return cfg


def _typed(tp: Any, v: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if v is None:
            return None
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    if origin is tuple and isinstance(v, list):
        args = typing.get_args(tp)
        elem = args[0] if args else Any
        return tuple(_typed(elem, x) for x in v)
    if tp is float and isinstance(v, int):
        return float(v)
    return v


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"config": {"gamma": 0.9}}`` -> ``{"config.gamma": 0.9}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and UNSERIALIZABLE not in v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable ``key: a -> b`` lines for the (nested) keys whose values differ."""
    fa, fb = flatten(a), flatten(b)
    out = []
    for k in sorted(set(fa) | set(fb)):
        va, vb = fa.get(k, "<absent>"), fb.get(k, "<absent>")
        if va != vb:
            out.append(f"{k}: {va!r} -> {vb!r}")
    return out
