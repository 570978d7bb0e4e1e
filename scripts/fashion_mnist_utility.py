"""The Fashion-MNIST utility study behind the README's results table, through the real entry points.

    python scripts/fashion_mnist_utility.py [--root DIR] [--num-samples 10000] [--utility-steps 2000]

Trains four conditional generators on Fashion-MNIST (32 px): WGAN-GP and beta-VAE on all the data, and
WGAN-GP on a 10 % stratified subset without and with DiffAugment (the honest low-data setting); writes a
dataset from each and runs `evaluate.py task=utility` on it. A finished step (an MLflow run of the same
name, a complete dataset, a cached protocol) is skipped on rerun. Prints and writes a markdown table.
Takes about 1 h on 2 CPU cores; one run at a time (two torch processes on 2 cores slow both many-fold).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMON = ["data=fashion_mnist", "model.conditional=true", "trainer.enable_progress_bar=false"]
WGAN = ["model=wgan", "model.width=32", "trainer.max_steps=4000"]
GENERATORS = {
    "fm-wgan-full": WGAN,
    "fm-vae-full": ["model=vae", "trainer.max_steps=3000"],
    "fm-wgan-f0.1": [*WGAN[:2], "trainer.max_steps=3000", "data.fraction=0.1"],
    "fm-wgan-f0.1-diffaug": [*WGAN[:2], "trainer.max_steps=3000", "data.fraction=0.1", "model.diffaugment=[color,translation,cutout]"],
}
# Which synthetic protocols each dataset answers; real-only baselines always run (and are cached once).
PROTOCOLS = {
    "fm-wgan-full": "[synthetic,real+synthetic]",
    "fm-vae-full": "[synthetic,real+synthetic]",
    "fm-wgan-f0.1": "[real@0.1+synthetic]",
    "fm-wgan-f0.1-diffaug": "[real@0.1+synthetic]",
}


def run(script: str, *args: str, root: Path) -> None:
    env = {**os.environ, "SYNTHSET_ROOT": str(root)}
    print("+", script, " ".join(args), flush=True)
    subprocess.run([sys.executable, str(REPO / script), *args], cwd=root, env=env, check=True)


def finished_run_id(root: Path, name: str) -> str | None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'outputs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("synthset")
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}' and attributes.status = 'FINISHED'")
    return runs[0].info.run_id if runs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "outputs" / "fashion_mnist_study")
    parser.add_argument("--num-samples", type=int, default=10000)
    parser.add_argument("--utility-steps", type=int, default=2000)
    parser.add_argument("--only", default=",".join(GENERATORS), help="comma-separated generator names")
    args = parser.parse_args()
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.only.split(","):
        if finished_run_id(root, name) is None:
            run("train.py", *COMMON, *GENERATORS[name], f"logger.run_name={name}", root=root)
        out = root / "outputs" / "datasets" / name
        if not (out / "synthset.json").is_file():
            run("generate.py", f"run_id={finished_run_id(root, name)}", f"num_samples={args.num_samples}", "format=npz",
                f"out={out}", "card.eval_samples=0", "progress=false", root=root)
        run("evaluate.py", "task=utility", f"dataset={out}", "utility.real_fractions=[0.1]", f"utility.protocols={PROTOCOLS[name]}",
            f"utility.steps={args.utility_steps}", "progress=false", root=root)
        utility = json.loads((out / "synthset.json").read_text())["utility"]
        rows += [(name, p) for p in utility["protocols"]]
    lines = ["| generator | protocol | real images | synthetic images | test accuracy | delta |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {p['name']}{' (leaky)' if p['leaky'] else ''} | {p['num_real']} | {p['num_synthetic']} | "
              f"{100 * p['mean']:.2f} % | {p['delta']} |" for name, p in rows]
    (root / "utility_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
