"""Benchmarks as ratios against a baseline run in the same process, alternating candidate and baseline.

    python scripts/benchmark.py [--quick] [--json] [--write docs/benchmarks.md]

- train_overhead_ratio.<model>: images/s through our LightningModule + Trainer (MLflow logging on,
  evaluation off) / images/s of a plain PyTorch loop on the identical networks, optimizers, batch, threads.
- eval_warm_speedup: cold-cache evaluation time / warm-cache time on the same samples.
- eval_vs_fidelity_ratio: direct torch_fidelity.calculate_metrics time / our evaluation time (warm, same
  images, same extractor): >= 1 means our wrapper costs nothing extra.
"""

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from synthset.cli import quiet_third_party_logs

REPO = Path(__file__).resolve().parents[1]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(candidate, baseline, repeats: int) -> tuple[list[float], list[float]]:
    """Run candidate and baseline in turns (after one warm-up each) so drift hits both equally."""
    candidate(), baseline()
    cand, base = [], []
    for _ in range(repeats):
        cand.append(candidate())
        base.append(baseline())
    return cand, base


# ---- training overhead -------------------------------------------------------------------------

def plain_loop(model, batches: list, steps_per_batch: int) -> None:
    """The same updates as the module's training_step, written as a bare PyTorch loop."""
    from synthset.models.losses import (
        dcgan_discriminator_loss,
        dcgan_generator_loss,
        gaussian_kl,
        gradient_penalty,
        reconstruction_nll,
        wasserstein_critic_loss,
        wasserstein_generator_loss,
    )

    name = model.hparams.name
    if name == "vae":
        opt = model.configure_optimizers()
        for images, labels in batches:
            labels = labels if model.num_classes else None
            mu, logvar = model.posterior(images, labels)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            loss = reconstruction_nll(model.decoder(z, labels), images, "bernoulli") + gaussian_kl(mu, logvar)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return
    opt_g, opt_d = model.configure_optimizers()
    G, D = model.generator, model.discriminator
    for i, (real, labels) in enumerate(batches):
        labels = labels if model.num_classes else None
        z = torch.randn(real.size(0), model.latent_dim)
        if name == "dcgan":
            fake = G(z, labels)
            d_loss = dcgan_discriminator_loss(D(real, labels), D(fake.detach(), labels))
            opt_d.zero_grad(set_to_none=True); d_loss.backward(); opt_d.step()  # noqa: E702
            g_loss = dcgan_generator_loss(D(fake, labels))
            opt_g.zero_grad(set_to_none=True); g_loss.backward(); opt_g.step()  # noqa: E702
        else:
            fake = G(z, labels).detach()
            loss = wasserstein_critic_loss(D(real, labels), D(fake, labels)) + 10 * gradient_penalty(
                lambda x, y=labels: D(x, y), real, fake)
            opt_d.zero_grad(set_to_none=True); loss.backward(); opt_d.step()  # noqa: E702
            if (i + 1) % model.hparams.n_critic == 0:
                g_loss = wasserstein_generator_loss(D(G(torch.randn(real.size(0), model.latent_dim), labels), labels))
                opt_g.zero_grad(set_to_none=True); g_loss.backward(); opt_g.step()  # noqa: E702


def bench_train(model_name: str, n_batches: int, repeats: int, out: Path) -> dict:
    from synthset.config import compose_config
    from synthset.pipelines.train import build_datamodule, build_model, run_training

    overrides = [f"model={model_name}", "model.conditional=true", "model.width=32", "trainer.accelerator=cpu",
                 "trainer.enable_progress_bar=false", "callbacks.sample_grid.every_n_steps=100000",
                 "callbacks.model_checkpoint.every_n_train_steps=100000", "trainer.log_every_n_steps=25"]
    steps_per_batch = {"dcgan": 2, "wgan": 1, "vae": 1}[model_name]
    extra = {"wgan": n_batches // 5}.get(model_name, 0)  # generator steps every n_critic batches
    max_steps = n_batches * steps_per_batch + extra
    runs = [0]

    def ours() -> float:
        runs[0] += 1
        cfg = compose_config("train", [*overrides, f"trainer.max_steps={max_steps}"], out / f"{model_name}-{runs[0]}")
        start = time.perf_counter()
        result = run_training(cfg)
        seconds = time.perf_counter() - start
        assert result.trainer.global_step == max_steps
        return n_batches * cfg.data.batch_size / seconds

    def baseline() -> float:
        cfg = compose_config("train", overrides, out / "baseline")
        dm = build_datamodule(cfg)
        model = build_model(cfg, dm).train()
        loader = dm.train_dataloader()
        batches, it = [], iter(loader)
        while len(batches) < n_batches:
            try:
                batches.append(dm.on_after_batch_transfer(next(it), 0))
            except StopIteration:
                it = iter(loader)
        # Data preparation is included on our side too: Lightning runs the same loader there.
        start = time.perf_counter()
        plain_loop(model, batches, steps_per_batch)
        return n_batches * cfg.data.batch_size / (time.perf_counter() - start)

    # Ours is timed end to end (Trainer construction, MLflow run creation, logging, final checkpoint).
    cand, base = alternate(ours, baseline, repeats)
    return {"ours_images_per_s": cand, "plain_images_per_s": base,
            "ratio": statistics.median(cand) / statistics.median(base)}


# ---- evaluation -------------------------------------------------------------------------------

def bench_eval(n_fake: int, n_real: int, repeats: int, out: Path) -> dict:
    import torch_fidelity

    from synthset.data import DigitsSource, ImageDataModule
    from synthset.metrics.extractors import register_extractors
    from synthset.metrics.fidelity import MetricSettings, UInt8Images, compute_metrics

    dm = ImageDataModule(DigitsSource(), "digits", image_size=16)
    fake, real = dm.split("train")[0][:n_fake], dm.split("test")[0][:n_real]
    settings = MetricSettings(is_extractor="none", precision_recall=False, progress=False)
    counter = [0]

    def ours(cold: bool) -> float:
        counter[0] += 1
        cache = out / (f"cold-{counter[0]}" if cold else "warm")
        s = MetricSettings(**{**settings.__dict__, "cache_dir": str(cache)})
        return timed(lambda: compute_metrics(fake, real, "bench-ref", s))

    cold, warm = alternate(lambda: ours(True), lambda: ours(False), repeats)
    register_extractors()

    def direct() -> float:
        return timed(lambda: torch_fidelity.calculate_metrics(
            input1=UInt8Images(fake), input2=UInt8Images(real), input2_cache_name="bench-ref",
            cache_root=str(out / "warm"), feature_extractor="inception-tf-pool3", fid=True, kid=True,
            kid_subset_size=min(n_fake, n_real), cuda=False, verbose=False, save_cpu_ram=True))

    ours_warm, direct_warm = alternate(lambda: ours(False), direct, repeats)
    return {
        "cold_s": cold, "warm_s": warm,
        "eval_warm_speedup": statistics.median(cold) / statistics.median(warm),
        "ours_s": ours_warm, "direct_s": direct_warm,
        "eval_vs_fidelity_ratio": statistics.median(direct_warm) / statistics.median(ours_warm),
    }


def machine() -> dict:
    import pytorch_lightning
    import torch_fidelity

    return {"python": platform.python_version(), "torch": torch.__version__, "lightning": pytorch_lightning.__version__,
            "torch_fidelity": torch_fidelity.__version__, "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def markdown(results: dict) -> str:
    lines = ["# Benchmarks", "", "Produced by `python scripts/benchmark.py` (median, min-max over repeats, same process).", "",
             "Machine: " + ", ".join(f"{k}={v}" for k, v in results["machine"].items()), "",
             "| benchmark | ours (median, min-max) | baseline (median, min-max) | ratio | target |", "|---|---|---|---|---|"]

    def span(xs: list[float], unit: str) -> str:
        return f"{statistics.median(xs):.2f} {unit} ({min(xs):.2f}-{max(xs):.2f})"

    for name, r in results["train"].items():
        lines.append(f"| train {name} (images/s) | {span(r['ours_images_per_s'], '')} | {span(r['plain_images_per_s'], '')} "
                     f"| {r['ratio']:.3f} | >= 0.95 |")
    e = results["eval"]
    lines.append(f"| eval cold vs warm cache (s) | warm {span(e['warm_s'], 's')} | cold {span(e['cold_s'], 's')} | {e['eval_warm_speedup']:.2f}x | > 1 |")
    lines.append(f"| eval vs direct torch-fidelity (s) | {span(e['ours_s'], 's')} | {span(e['direct_s'], 's')} | {e['eval_vs_fidelity_ratio']:.3f} | >= 0.95 |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat: finishes in a few minutes")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    parser.add_argument("--write", type=Path, default=None, help="write a markdown table (the full run writes docs/benchmarks.md)")
    parser.add_argument("--models", default="dcgan,wgan,vae")
    args = parser.parse_args()
    quiet_third_party_logs()
    repeats = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        results = {"machine": machine(), "train": {}}
        for name in args.models.split(","):
            results["train"][name] = bench_train(name, 40 if args.quick else 200, repeats, out)
            print(f"train_overhead_ratio.{name} = {results['train'][name]['ratio']:.3f}", flush=True)
        results["eval"] = bench_eval(16 if args.quick else 64, 16 if args.quick else 64, repeats, out)
        print(f"eval_warm_speedup = {results['eval']['eval_warm_speedup']:.2f}", flush=True)
        print(f"eval_vs_fidelity_ratio = {results['eval']['eval_vs_fidelity_ratio']:.3f}", flush=True)
    results["train_overhead_ratio"] = {k: v["ratio"] for k, v in results["train"].items()}
    results["eval_warm_speedup"] = results["eval"]["eval_warm_speedup"]
    results["eval_vs_fidelity_ratio"] = results["eval"]["eval_vs_fidelity_ratio"]
    if args.write or not args.quick:
        path = args.write or REPO / "docs" / "benchmarks.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown(results))
        print(f"wrote {path}")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
