"""Every `python train.py|evaluate.py|generate.py ...` line in README's code blocks runs.

The lines run in README order, in one project folder, through the real entry points, with tiny step
and sample counts put in place of the large ones. Each must exit 0, or give the refusal README
documents beside it. Lines that need a network, GPUs or a SLURM cluster are parsed with Hydra's own
override grammar and checked against the shipped config groups instead of run.
"""

import glob
import re
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from synthset.cli import check_group_choices
from tests.conftest import REPO, run_entry

COMMAND = re.compile(r"^python (train|evaluate|generate)\.py\b(.*)$")
# Values that would take minutes (or a network, or hardware) on CI, replaced by tiny ones; key -> value.
SHRINK = {
    "trainer.max_steps": "4", "eval.num_samples": "20", "eval.every_n_steps": "2", "num_samples": "20",
    "shard_size": "10", "hydra.sweeper.n_trials": "2", "hydra.sweeper.n_jobs": "2", "utility.seeds": "1",
    "model.beta": "1,2",
}
APPEND = {
    "train": ["trainer.max_steps=4", "model.width=8", "trainer.enable_progress_bar=false", "eval.reference_samples=40",
              "callbacks.sample_grid.every_n_steps=100", "metrics.is_extractor=none", "metrics.progress=false"],
    "evaluate": ["eval.num_samples=20", "eval.reference_samples=40", "metrics.is_extractor=none",
                 "metrics.progress=false", "utility.steps=30", "progress=false", "metrics.precision_recall=false"],
    "generate": ["num_samples=20", "card.eval_samples=20", "card.reference_samples=40", "card.fidelity=false",
                 "progress=false", "metrics.is_extractor=none", "metrics.progress=false", "num_workers=1"],
}
NOT_RUN = {  # fragment -> why the line is only parsed here
    "data.download=true": "downloads CIFAR-10 (no network in CI)",
    "trainer.devices=8": "needs 8 GPUs",
    "hydra/launcher=slurm": "needs a SLURM cluster",
}
REFUSED = {  # fragment -> the refusal README documents beside the line
    "data.path=/my/images": "data.path=/my/images is not a folder",
    "trainer=gpu": "asks for a GPU, but this machine has no CUDA device",
    "gate.max_fid=30": "worse than gate.max_fid=30",
}


def readme_commands() -> list[tuple[str, list[str], str]]:
    """(script, arguments, the line) for every command line in README's bash blocks, in order."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            match = COMMAND.match(line)
            if match:
                found.append((f"{match.group(1)}.py", match.group(2).split(), line))
    return found


def shrunk(script: str, args: list[str], root: Path) -> list[str]:
    """The line's arguments with large counts made tiny, placeholders filled, and relative outputs kept in ``root``."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in SHRINK and not (key == "num_samples" and "labels=" in " ".join(args)):
            value = SHRINK[key]
        if "<" in value:  # outputs/runs/<date>/<time>-wgan-digits/...: the newest such file in this project
            value = sorted(glob.glob(str(root / re.sub(r"<[^>]+>", "*", value))))[-1]
        elif value.startswith("outputs/"):
            value = str(root / value)
        out.append(f"{key}{sep}{value}" if sep else arg)
    given = {a.partition("=")[0] for a in out}
    extra = [a for a in APPEND[script.removesuffix(".py")] if a.partition("=")[0] not in given]
    if script == "train.py" and "eval.every_n_steps" not in given and "sweep=optuna" not in args:
        extra.append("eval.every_n_steps=0")  # the recipes' evaluation trains a classifier: minutes on CPU
    return out + ([] if "--help" in args or "--cfg" in args else extra)


def test_readme_lists_the_commands_this_test_runs() -> None:
    lines = [line for _, _, line in readme_commands()]
    assert len(lines) >= 30 and any("labels={0:10,1:20}" in line for line in lines)
    assert all(any(fragment in line for line in lines) for fragment in [*NOT_RUN, *REFUSED])


def test_every_readme_command_runs_or_gives_its_documented_refusal(root: Path) -> None:
    failures = []
    for script, args, line in readme_commands():
        skip = next((why for fragment, why in NOT_RUN.items() if fragment in line), None)
        if skip:
            check_group_choices(args)
            OverridesParser.create().parse_overrides([a for a in args if a != "-m"])
            continue
        result = run_entry(script, *shrunk(script, args, root), root=root)
        refusal = next((text for fragment, text in REFUSED.items() if fragment in line), None)
        ok = (result.returncode == 2 and refusal in result.stderr) if refusal else result.returncode == 0
        if not ok:
            failures.append(f"{line}\n  exit {result.returncode}: {result.stderr.strip()[-1500:]}")
    assert not failures, "\n".join(failures)
