"""Training throughput on a GPU: images/s per model and precision variant, against a plain PyTorch loop.

    python scripts/benchmark_gpu.py [--device cuda] [--quick] [--json] [--write docs/benchmarks-gpu.md]

For each model (dcgan, wgan, vae; 32 px, width 64, batch 128) and each variant
- fp32; bf16-mixed; bf16-mixed + channels_last; bf16-mixed + channels_last + torch.compile
it measures steady-state images/s of ``run_training`` (Lightning, MLflow logging on, evaluation off) and
of a plain PyTorch loop doing the same updates under the same autocast and memory format, in
alternating pairs with a 95 % CI of the ratio. It also reports the data loader's headroom (images/s it
delivers / images/s the fastest variant consumes). ``--device cpu --quick`` runs the same plumbing on a
CPU (tiny sizes, compile through the ``eager`` backend), which CI does.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from benchlib.ratios import measure_ratio  # noqa: E402
from benchmark import plain_loop, steady_training_rate  # noqa: E402

from synthset.cli import quiet_third_party_logs  # noqa: E402

VARIANTS = {
    "fp32": {"precision": "32-true", "channels_last": False, "compile": False},
    "bf16": {"precision": "bf16-mixed", "channels_last": False, "compile": False},
    "bf16+channels_last": {"precision": "bf16-mixed", "channels_last": True, "compile": False},
    "bf16+channels_last+compile": {"precision": "bf16-mixed", "channels_last": True, "compile": True},
}


def overrides(model: str, variant: dict, device: str, quick: bool, compile_backend: str) -> list[str]:
    size = ["data.image_size=16", "model.width=8", "data.batch_size=16"] if quick else [
        "data.image_size=32", "model.width=64", "data.batch_size=128"]
    compile_value = compile_backend if variant["compile"] else "false"
    return [f"model={model}", "model.conditional=true", *size, f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
            f"trainer.precision={variant['precision']}", f"model.channels_last={str(variant['channels_last']).lower()}",
            f"model.compile={compile_value}", "trainer.enable_progress_bar=false", "eval.every_n_steps=0",
            "callbacks.sample_grid.every_n_steps=100000", "callbacks.checkpoints.every_n_train_steps=100000",
            "+trainer.limit_val_batches=0", "logger.run_name=gpu-bench"]


def bench(model: str, name: str, args: argparse.Namespace, out: Path, pairing: dict) -> dict:
    from synthset.config import compose_config
    from synthset.pipelines.train import build_datamodule, build_model

    variant = VARIANTS[name]
    cfg_overrides = overrides(model, variant, args.device, args.quick, "eager" if args.quick else "inductor")
    n_batches, warmup, runs = (12, 4, [0]) if args.quick else (400, 50, [0])

    def ours() -> float:
        runs[0] += 1
        return steady_training_rate(model, cfg_overrides, n_batches, warmup, out / model, f"{name}-{runs[0]}")

    def baseline() -> float:
        cfg = compose_config("train", cfg_overrides, out / "baseline")
        dm = build_datamodule(cfg)
        module = build_model(cfg, dm).train().to(args.device)
        if variant["channels_last"]:
            module = module.to(memory_format=torch.channels_last)
        loader = dm.train_dataloader()

        def batches():
            while True:
                for images, labels in loader:
                    images = images.to(args.device, non_blocking=True).float().div_(127.5).sub_(1)
                    if variant["channels_last"]:
                        images = images.contiguous(memory_format=torch.channels_last)
                    yield images, labels.to(args.device)

        autocast = (torch.autocast(device_type=args.device, dtype=torch.bfloat16) if variant["precision"] == "bf16-mixed"
                    else contextlib.nullcontext())
        stream = batches()
        with autocast:
            plain_loop(module, [next(stream) for _ in range(warmup)])
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            seen = plain_loop(module, (next(stream) for _ in range(n_batches - warmup)))
            if args.device == "cuda":
                torch.cuda.synchronize()
        return seen / (time.perf_counter() - start)

    return measure_ratio(ours, baseline, **pairing)


def loader_headroom(fastest: float, quick: bool, out: Path) -> dict:
    from synthset.config import compose_config
    from synthset.pipelines.train import build_datamodule

    dm = build_datamodule(compose_config("train", ["data.image_size=32", "data.batch_size=128"], out / "loader"))
    loader, seen, target = dm.train_dataloader(), 0, (20 if quick else 400) * dm.batch_size
    start = time.perf_counter()
    while seen < target:
        for batch in loader:
            seen += len(dm.on_after_batch_transfer(batch, 0)[0])
            if seen >= target:
                break
    rate = seen / (time.perf_counter() - start)
    return {"loader_images_per_s": rate, "fastest_training_images_per_s": fastest, "data_loader_headroom": rate / fastest}


def markdown(results: dict) -> str:
    machine = ", ".join(f"{k} {v}" for k, v in results.get("machine", {}).items())
    lines = ["# GPU benchmarks", "", f"Device: {results['device_name']}; {machine}; `python scripts/benchmark_gpu.py`.", "",
             "| model | variant | ours (images/s) | plain loop (images/s) | ratio [95 % CI] |", "|---|---|---|---|---|"]
    for model, variants in results["train"].items():
        for name, r in variants.items():
            if "error" in r or "skipped" in r:
                lines.append(f"| {model} | {name} | {r.get('error') or r['skipped']} | | |")
                continue
            low, high = r["ci95"]
            note = "" if r["target_width_reached"] else ", CI wider than ±3 % at the pair cap"
            lines.append(f"| {model} | {name} | {statistics.median(r['candidate']):.0f} | {statistics.median(r['baseline']):.0f} "
                         f"| {r['ratio']:.3f} [{low:.3f}, {high:.3f}] ({r['pairs']} pairs{note}) |")
    d = results.get("loader")
    if d:
        lines.append(f"\nData loader: {d['loader_images_per_s']:.0f} images/s, {d['data_loader_headroom']:.1f}x the fastest "
                     "training.")
    return "\n".join(lines) + "\n"


def measure_all(args: argparse.Namespace, results: dict, out: Path, pairing: dict) -> None:
    """Every (variant, model) in turn; one that fails is recorded, and none starts once the budget is spent."""
    start, models = time.perf_counter(), args.models.split(",")
    results["train"] = {model: {} for model in models}
    for name in args.variants.split(","):  # variant by variant, so a spent budget drops the optional last ones
        for model in models:
            if args.budget_s and time.perf_counter() - start > args.budget_s:
                results["train"][model][name] = {"skipped": f"not run: the {args.budget_s:.0f} s budget was spent"}
                continue
            try:
                results["train"][model][name] = bench(model, name, args, out, pairing)
            except Exception as error:  # one variant the platform cannot run must not lose the others
                results["train"][model][name] = {"error": one_line(error)}
            print(f"{model} {name}: {results['train'][model][name].get('ratio', 'n/a')}", flush=True)
            save(results, args)


def one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160] if text else ''}"


def save(results: dict, args: argparse.Namespace) -> None:
    """Written after every measurement, so a run stopped at its limit keeps what it measured."""
    if args.write:
        args.write.write_text(markdown(results))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 pairs, compile with the eager backend")
    parser.add_argument("--models", default="dcgan,wgan,vae")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--pairs", default="4:12", help="MIN:MAX alternating pairs per ratio (default 4:12)")
    parser.add_argument("--budget-s", type=float, default=0, help="start no new measurement after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON at the end")
    parser.add_argument("--json-out", type=Path, default=None, help="also keep the JSON in this file, after each step")
    parser.add_argument("--write", type=Path, default=None, help="the markdown table, rewritten after each step")
    args = parser.parse_args()
    quiet_third_party_logs()
    min_pairs, max_pairs = (int(n) for n in args.pairs.split(":"))
    pairing = {"min_pairs": 2, "max_pairs": 2, "warmup": False} if args.quick else {"min_pairs": min_pairs,
                                                                                      "max_pairs": max_pairs}
    import pytorch_lightning

    results = {"device": args.device, "train": {},
               "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
               "machine": {"torch": torch.__version__, "pytorch-lightning": pytorch_lightning.__version__,
                           "cpu cores": os.cpu_count()}}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        measure_all(args, results, out, pairing)
        measured = [statistics.median(r["candidate"]) for v in results["train"].values() for r in v.values() if "ratio" in r]
        if measured:
            results["loader"] = loader_headroom(max(measured), args.quick, out)
    save(results, args)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
