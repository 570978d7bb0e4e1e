"""Imports only point down: entry points -> pipelines -> {generation, utility, callbacks, tracking, review}
-> metrics -> data -> models -> the base (errors, plain data, atomic writes). docs/architecture.md draws it."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "synthset"
LAYERS = [
    ("entry points", ["train", "generate", "evaluate", "review", "synthset.cli"]),
    ("pipelines", ["synthset.pipelines", "synthset.config"]),
    ("services", ["synthset.generation", "synthset.utility", "synthset.callbacks", "synthset.tracking", "synthset.review"]),
    ("metrics", ["synthset.metrics"]),
    ("data", ["synthset.data"]),
    ("models", ["synthset.models"]),
    ("base", ["synthset.errors", "synthset.plaindata", "synthset.atomic", "synthset.cuda_probe", "synthset"]),
]


PEERS = "services"  # the one layer whose packages may not import each other


def place(module: str) -> tuple[int, str]:
    """(layer index, package) of a module: the longest prefix among the layer lists.

    Outside the services layer a layer is one package (entry points share ``synthset.cli``, pipelines
    share ``synthset.config``, the base modules use ``synthset.errors``).
    """
    layer, package = max(((i, p) for i, (_, packages) in enumerate(LAYERS) for p in packages
                          if module == p or module.startswith(p + ".")), key=lambda ip: len(ip[1]))
    return layer, package if LAYERS[layer][0] == PEERS else LAYERS[layer][0]


def modules() -> dict[str, Path]:
    found = {f"synthset.{'.'.join(p.relative_to(SRC).with_suffix('').parts)}".removesuffix(".__init__"): p
             for p in SRC.rglob("*.py")}
    found |= {name: REPO / f"{name}.py" for name in ("train", "generate", "evaluate", "review") if (REPO / f"{name}.py").is_file()}
    return found


def synthset_imports(path: Path) -> set[str]:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names if a.name.startswith("synthset")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synthset"):
            imported.add(node.module)
    return imported


def test_every_import_points_down_or_stays_in_its_package() -> None:
    wrong = []
    for module, path in modules().items():
        layer, package = place(module)
        for target in synthset_imports(path):
            target_layer, target_package = place(target)
            if target_layer < layer or (target_layer == layer and target_package != package):
                wrong.append(f"{module} ({LAYERS[layer][0]}) imports {target} ({LAYERS[target_layer][0]})")
    assert not wrong, "\n".join(wrong)


def test_nothing_read_back_is_instantiated() -> None:
    """Only synthset.config instantiates, and only configs the user composed; get_class appears nowhere else."""
    users = [name for name, path in modules().items()
             if any(word in path.read_text() for word in ("instantiate(", "get_class(", "_locate("))]
    assert users == ["synthset.config"], users


def test_the_check_itself_sees_a_sideways_import() -> None:
    assert place("synthset.generation.card") == (2, "synthset.generation")
    assert place("synthset.tracking.runs")[0] == place("synthset.generation.card")[0]  # peers: an arrow between them is wrong
    assert place("synthset.errors")[0] == len(LAYERS) - 1
