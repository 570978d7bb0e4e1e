"""Run every `python train.py|evaluate.py|generate.py ...` line of README's code blocks, in README order.

The lines run in one project folder through the real entry points, with tiny step and sample counts
put in place of the large ones. Lines that need a network, GPUs or a SLURM cluster are parsed with
Hydra's own override grammar and checked against the shipped config groups instead of run.
"""

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from synthset.cli import check_group_choices, check_override_keys
from tests.conftest import REPO, EntryResult, run_cli, run_entry

COMMAND = re.compile(r"^python (train|evaluate|generate)\.py\b(.*)$")
# Values that would take minutes (or a network, or hardware) on CI, replaced by tiny ones; key -> value.
SHRINK = {
    "trainer.max_steps": "4", "eval.num_samples": "20", "eval.every_n_steps": "2", "num_samples": "20",
    "shard_size": "10", "hydra.sweeper.n_trials": "2", "hydra.sweeper.n_jobs": "2", "utility.seeds": "1",
    "model.beta": "1,2",
}
APPEND = {
    "train": ["trainer.max_steps=4", "model.width=8", "trainer.enable_progress_bar=false", "eval.num_samples=20",
              "eval.reference_samples=40",
              "callbacks.sample_grid.every_n_steps=100", "metrics.is_extractor=none", "metrics.progress=false"],
    # The 1280-d extractor: TF-Inception's 2048x2048 eigenvalues cost 2.4 s per FID on 2 cores, and the same
    # evaluate path with TF-Inception runs in test_evaluate.py and test_metrics.py.
    "evaluate": ["eval.num_samples=20", "eval.reference_samples=40", "metrics.is_extractor=none",
                 "metrics.fid_extractor=effnet-lite0", "metrics.progress=false", "utility.steps=30", "progress=false",
                 "metrics.precision_recall=false"],
    "generate": ["num_samples=20", "card.eval_samples=20", "card.reference_samples=40", "card.fidelity=false",
                 "progress=false", "metrics.is_extractor=none", "metrics.progress=false", "num_workers=1"],
}
NOT_RUN = {  # fragment -> why the line is only parsed here
    "data.download=true": "downloads CIFAR-10 (no network in CI)",
    "trainer.devices=8": "needs 8 GPUs",
    "hydra/launcher=slurm": "needs a SLURM cluster",
}
# Lightning's DDP launcher re-runs the script for rank 1 and sets rank variables: a fresh interpreter. Generation
# with num_processes= spawns its own workers and runs in this process like the rest.
OWN_PROCESS = ("trainer=ddp",)
REFUSED = {  # fragment -> the refusal README documents beside the line
    "data.path=/my/images": "data.path=/my/images is not a folder",
    "trainer=gpu": "asks for a GPU, but this machine has no CUDA device",
    "gate.max_fid=30": "worse than gate.max_fid=30",
    "filter.label_agreement=0.5": "still fail the filters",  # a 4-step model cannot meet the bar
}


def readme_commands() -> list[tuple[str, list[str], str]]:
    """(script, arguments, the line) for every command line in README's bash blocks, in order."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S):
        for line in block.splitlines():
            line = re.split(r"\s#", line)[0].strip()
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
            value = SHRINK[key] if "," not in SHRINK[key] or "-m" in args else value
        if "<" in value:  # outputs/runs/<date>/<time>-wgan-digits/...: the newest such file in this project
            value = sorted(glob.glob(str(root / re.sub(r"<[^>]+>", "*", value))))[-1]
        elif value.startswith("outputs/"):
            value = str(root / value)
        out.append(f"{key}{sep}{value}" if sep else arg)
    given = {a.partition("=")[0] for a in out}
    extra = [a for a in APPEND[script.removesuffix(".py")] if a.partition("=")[0] not in given]
    if script == "train.py" and "eval.every_n_steps" not in given and "sweep=optuna" not in args:
        extra.append("eval.every_n_steps=0")  # the recipes' evaluation trains a classifier: minutes on CPU
    if "sweep=optuna" in args and "hydra.sweeper.n_trials" not in given:
        extra.append(f"hydra.sweeper.n_trials={SHRINK['hydra.sweeper.n_trials']}")
    return out + ([] if "--help" in args or "--cfg" in args else extra)



@dataclass
class CommandOutcome:
    line: str
    result: EntryResult | None  # None: parsed only (see NOT_RUN)
    refusal: str | None  # the refusal README documents for the line, if any

    @property
    def ok(self) -> bool:
        if self.result is None:
            return True
        if self.refusal:
            return self.result.returncode == 2 and self.refusal in self.result.stderr
        return self.result.returncode == 0


def run_readme_commands(root: Path) -> list[CommandOutcome]:
    outcomes = []
    for script, args, line in readme_commands():
        if any(fragment in line for fragment in NOT_RUN):
            check_group_choices(args)
            check_override_keys(script, args)  # every setting it names exists (group sweeps: left to Hydra)
            OverridesParser.create().parse_overrides([a for a in args if a != "-m"])
            outcomes.append(CommandOutcome(line, None, None))
            continue
        if any(fragment in line for fragment in OWN_PROCESS):
            completed = run_cli(script, *shrunk(script, args, root), cwd=root)
            result = EntryResult(completed.returncode, completed.stdout, completed.stderr)
        else:
            result = run_entry(script, *shrunk(script, args, root), root=root)
        refusal = next((text for fragment, text in REFUSED.items() if fragment in line), None)
        outcomes.append(CommandOutcome(line, result, refusal))
    return outcomes
