"""The import graph of ``jaxrl/``: every arrow points down the layers below, and there is no cycle.

Imports are read from the source (``ast``), including imports inside functions: a lazy import does not
hide an arrow. An edge goes to the module named (``from jaxrl.algos import base`` -> ``jaxrl.algos.base``;
``from jaxrl.algos.base import X`` -> ``jaxrl.algos.base``); the parent package's ``__init__`` that Python
runs on the way is not counted (every algorithm module imports ``jaxrl.algos.base``, whose package
imports every algorithm: that is how registration works, not a dependency of the algorithm).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "jaxrl"

# Lowest first. A module belongs to the first layer with a pattern it matches (exact name, or a
# ``prefix.*``); it may import modules of its own layer or any layer before it, never after.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "leaves",
        [
            "jaxrl.version",
            "jaxrl.cpu",
            "jaxrl.optim",
            "jaxrl.schedules",
            "jaxrl.normalization",
            "jaxrl.sandbox",
            "jaxrl.sharding",
            "jaxrl.errors",
            "jaxrl.replay",
            "jaxrl.losses",
            "jaxrl.losses.*",
            "jaxrl.networks",
            "jaxrl.networks.*",
            "jaxrl.lm",
            "jaxrl.lm.*",
            "jaxrl.envs",
            "jaxrl.envs.*",
            "jaxrl.tasks",
            "jaxrl.tasks.*",
            "jaxrl.data",
            "jaxrl.data.*",
            "jaxrl.runtime.logs",
            "jaxrl.runtime.progress",
            "jaxrl.runtime.settings",
        ],
    ),
    ("stepping", ["jaxrl.rollout", "jaxrl.batching", "jaxrl.policies"]),
    (
        "algorithm support",
        [
            "jaxrl.algos.prng",
            "jaxrl.algos.named_metrics",
            "jaxrl.algos.stacking",
            "jaxrl.algos.checks",
            "jaxrl.algos.env_building",
            "jaxrl.algos.base",
            "jaxrl.algos.offpolicy",
            "jaxrl.runtime.configs",
            "jaxrl.runtime.checkpoint",
        ],
    ),
    ("run directory", ["jaxrl.runtime.rundir"]),
    ("algorithms", ["jaxrl.algos", "jaxrl.algos.*"]),  # registry matched first below
    ("registry", ["jaxrl.algos.registry"]),
    ("entry points", ["jaxrl.evaluation", "jaxrl.api", "jaxrl.parallel", "jaxrl.runtime.chunks"]),
    (
        "runtime",
        [
            "jaxrl.runtime",
            "jaxrl.runtime.plan",
            "jaxrl.runtime.driver",
            "jaxrl.runtime.plots",
            "jaxrl.runtime.export",
        ],
    ),
    ("interface", ["jaxrl.cli", "jaxrl"]),
]


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(path: pathlib.Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {_resolve(a.name) for a in node.names if a.name.split(".")[0] == "jaxrl"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] == "jaxrl":
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.add(full if full in MODULES else _resolve(node.module))
    return out


def _layer(name: str) -> int:
    exact = [i for i, (_, pats) in enumerate(LAYERS) if name in pats]
    if exact:
        return exact[0]
    for i, (_, pats) in enumerate(LAYERS):
        if any(p.endswith(".*") and name.startswith(p[:-1]) for p in pats):
            return i
    # A module not placed yet counts as the top layer: it may import anything, nothing may import it.
    return len(LAYERS) - 1


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def test_every_module_is_placed_in_a_layer():
    """New modules go in LAYERS; until then they count as the top layer (see _layer)."""
    placed = {p for _, pats in LAYERS for p in pats}
    unplaced = [
        n
        for n in MODULES
        if n not in placed and not any(p.endswith(".*") and n.startswith(p[:-1]) for p in placed)
    ]
    assert not unplaced, f"add these modules to a layer in tests/test_layers.py: {unplaced}"


def test_no_upward_import():
    up = []
    for a, targets in GRAPH.items():
        for b in targets:
            if _layer(b) > _layer(a):
                up.append(f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})")
    assert not up, "imports pointing up the layers:\n" + "\n".join(sorted(up))


def test_no_import_cycle():
    graph = GRAPH
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append(" -> ".join(stack[stack.index(m) :] + [n, m]))
            elif m not in state:
                visit(m, stack + [n])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    "src, edge",
    [
        ("from jaxrl import rollout\n", ("jaxrl.envs.base", "jaxrl.rollout")),
        ("def f():\n    from jaxrl.runtime import driver\n", ("jaxrl.envs.base", "jaxrl.runtime.driver")),
    ],
)
def test_checker_sees_upward_and_lazy_imports(tmp_path, src, edge):
    """The checker itself: a top-level and a lazy (in-function) upward import are both found."""
    p = tmp_path / "m.py"
    p.write_text(src)
    found = _imports(p)
    assert edge[1] in found
    assert _layer(edge[1]) > _layer(edge[0])


def test_algos_base_holds_only_the_algorithm_contract():
    """``algos/base.py`` defines the :class:`Algorithm` contract and its registration; the helpers
    algorithms share live in modules by job, and the old ``base.<name>`` paths still reach them."""
    from jaxrl.algos import base, checks, env_building, named_metrics, prng, stacking

    tree = ast.parse(MODULES["jaxrl.algos.base"].read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    assert defined == {"Presentation", "Algorithm", "register", "registered"}
    moved = {
        checks: [
            "check_divides",
            "check_one_iteration",
            "check_positive",
            "check_positive_ints",
            "check_range",
        ],
        env_building: ["env_is_stateful", "init_env_and_params", "make_env", "restart_envs"],
        named_metrics: ["metrics_type"],
        prng: ["as_key"],
        stacking: ["stack_configs"],
    }
    for module, names in moved.items():
        for name in names:
            assert getattr(base, name) is getattr(module, name), name


def test_readme_layout_names_every_module():
    """The README's layout section lists every module file (a new module goes there too)."""
    readme = (ROOT.parent / "README.md").read_text()
    start = readme.index("## Layout")
    block = readme[readme.index("```", start) : readme.index("```", readme.index("```", start) + 3)]
    missing = sorted(
        str(p.relative_to(ROOT.parent))
        for p in ROOT.rglob("*.py")
        if p.name != "__init__.py" and p.name not in block
    )
    assert not missing, f"README.md's layout section does not name: {missing}"
