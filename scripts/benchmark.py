"""Benchmarks as ratios against a baseline run in the same process, alternating candidate and baseline.

    python scripts/benchmark.py [--quick] [--json] [--write docs/benchmarks.md]

- train_overhead_ratio.<model>: steady-state images/s through our LightningModule + Trainer (MLflow logging
  on, evaluation off) / images/s of a plain PyTorch loop on the identical networks, optimizers, batch,
  loader and threads; the end-to-end figure (Trainer set-up, run creation, checkpoint) is reported beside it.
- data_loader_headroom: images/s the training loader delivers / images/s the fastest model consumes.
- eval_warm_speedup: cold-cache evaluation time / warm-cache time on the same samples.
- eval_vs_fidelity_ratio: direct torch_fidelity.calculate_metrics time / our evaluation time (warm, same
  images, same extractor): >= 1 means our wrapper costs nothing extra.
- generate_images_per_s.<format>, generate_vs_baseline_ratio (imagefolder vs a plain loop of sampling +
  PIL PNG encoding + writing, one process; both timed over the generation loop, our end-to-end figure with
  checkpoint loading, card and MLflow run beside it), generate_rss_growth (peak RSS at the large / small count).
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


WARMUP_ROUND = True  # --quick skips it: half the time, noisier figures (CI asserts no thresholds)


def alternate(candidate, baseline, repeats: int) -> tuple[list[float], list[float]]:
    """Run candidate and baseline in turns (after one warm-up each) so drift hits both equally."""
    if WARMUP_ROUND:
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


class SteadyStateTimer:
    """Wall time from the start of batch ``warmup`` to the end of the last batch: throughput without set-up."""

    def __init__(self, warmup: int) -> None:
        import pytorch_lightning as pl

        timer = self

        class Callback(pl.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
                if batch_idx == timer.warmup:
                    timer.start = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
                timer.end, timer.batches = time.perf_counter(), batch_idx + 1 - timer.warmup

        self.warmup, self.start, self.end, self.batches = warmup, 0.0, 0.0, 0
        self.callback = Callback()

    def images_per_s(self, batch_size: int) -> float:
        return self.batches * batch_size / (self.end - self.start)


def bench_train(model_name: str, n_batches: int, repeats: int, out: Path, profile: bool = False) -> dict:
    from synthset.config import compose_config
    from synthset.pipelines.train import build_datamodule, build_model, run_training

    overrides = [f"model={model_name}", "model.conditional=true", "model.width=32", "trainer.accelerator=cpu",
                 "trainer.enable_progress_bar=false", "callbacks.sample_grid.every_n_steps=100000",
                 "callbacks.model_checkpoint.every_n_train_steps=100000", "trainer.log_every_n_steps=25",
                 "+trainer.limit_val_batches=0"]  # evaluation off: the VAE's validation ELBO is evaluation too
    steps_per_batch = {"dcgan": 2, "wgan": 1, "vae": 1}[model_name]
    extra = {"wgan": n_batches // 5}.get(model_name, 0)  # generator steps every n_critic batches
    max_steps = n_batches * steps_per_batch + extra
    warmup = 5
    runs, end_to_end = [0], []

    def ours() -> float:
        runs[0] += 1
        # One store per model, as in a real sweep: creating a fresh sqlite store is a one-off cost.
        cfg = compose_config("train", [*overrides, f"trainer.max_steps={max_steps}"], out / model_name)
        cfg.paths.run_dir = str(out / model_name / f"run-{runs[0]}")
        timer = SteadyStateTimer(warmup)
        start = time.perf_counter()
        result = run_training(cfg, extra_callbacks=[timer.callback])
        end_to_end.append(n_batches * cfg.data.batch_size / (time.perf_counter() - start))
        assert result.trainer.global_step == max_steps
        return timer.images_per_s(cfg.data.batch_size)

    def baseline() -> float:
        cfg = compose_config("train", overrides, out / "baseline")
        dm = build_datamodule(cfg)
        model = build_model(cfg, dm).train()
        loader = dm.train_dataloader()

        def batches():  # the same loader and device scaling Lightning runs on our side
            while True:
                for batch in loader:
                    yield dm.on_after_batch_transfer(batch, 0)

        stream = batches()
        plain_loop(model, [next(stream) for _ in range(warmup)], steps_per_batch)
        start = time.perf_counter()
        plain_loop(model, (next(stream) for _ in range(n_batches - warmup)), steps_per_batch)
        return (n_batches - warmup) * cfg.data.batch_size / (time.perf_counter() - start)

    # Steady state on both sides (after ``warmup`` batches); the end-to-end figure adds Trainer set-up,
    # MLflow run creation and the final checkpoint, which a long run amortizes.
    cand, base = alternate(ours, baseline, repeats)
    result = {"ours_images_per_s": cand, "plain_images_per_s": base, "end_to_end_images_per_s": end_to_end[-repeats:],
              "ratio": statistics.median(cand) / statistics.median(base)}
    if profile:
        result["profile"] = profiled(ours)
    return result


def bench_data_loader(n_batches: int, train_images_per_s: float, out: Path) -> dict:
    """Images/s the training loader delivers (gather + device scaling) / images/s training consumes."""
    from synthset.config import compose_config
    from synthset.pipelines.train import build_datamodule

    dm = build_datamodule(compose_config("train", ["trainer.accelerator=cpu"], out / "loader"))
    loader = dm.train_dataloader()
    seen, start = 0, time.perf_counter()
    while seen < n_batches * dm.batch_size:
        for batch in loader:
            seen += len(dm.on_after_batch_transfer(batch, 0)[0])
            if seen >= n_batches * dm.batch_size:
                break
    loader_rate = seen / (time.perf_counter() - start)
    return {"loader_images_per_s": loader_rate, "fastest_training_images_per_s": train_images_per_s,
            "data_loader_headroom": loader_rate / train_images_per_s}


def profiled(fn, top: int = 12) -> list[dict]:
    """cProfile of one call: the functions with the most own time, for targets the numbers miss."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(fn)
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return [{"function": f"{Path(file).name}:{line} {name}", "own_s": own, "share": own / total, "cumulative_s": cum}
            for (file, line, name), (_cc, _nc, own, cum, _callers) in rows]


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


# ---- generation -------------------------------------------------------------------------------

RSS_PROBE = """
import resource, runpy, sys
sys.argv = ["generate.py", *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def bench_generate(n: int, rss_small: int, rss_large: int, repeats: int, out: Path, profile: bool = False) -> dict:
    """images/s per format vs a plain loop (sample + PIL PNG encode + write), and peak RSS growth."""
    import os
    import subprocess
    import sys

    from synthset.config import compose_config
    from synthset.data.datamodule import to_uint8
    from synthset.generation import runner
    from synthset.generation.writers import encode_png
    from synthset.models.loading import load_generative_model
    from synthset.pipelines.generate import generate
    from synthset.pipelines.train import run_training

    # Time the generation loop itself (sampling, encoding, writing, manifest) apart from the one-off
    # set-up around it (checkpoint, data, card, MLflow run), which a large dataset amortizes.
    loop_s: list[float] = []
    originals = {name: getattr(runner.ShardedGeneration, name) for name in ("run", "complete")}

    def timed_method(name: str):
        def wrapper(self, *args, **kwargs):
            start = time.perf_counter()
            manifest = originals[name](self, *args, **kwargs)
            loop_s.append(time.perf_counter() - start)
            return manifest
        return wrapper

    for name in originals:
        setattr(runner.ShardedGeneration, name, timed_method(name))
    root = out / "gen"
    result = run_training(compose_config("train", [
        "model=dcgan", "model.conditional=true", "model.width=32", "trainer.max_steps=10", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false"], root))
    run_id = result.run_id
    common = [f"run_id={run_id}", "progress=false", "card.eval_samples=0", "memorization.enabled=false", "overwrite=true"]
    counter = [0]

    end_to_end: dict[str, list[float]] = {}

    def ours(fmt: str) -> float:
        counter[0] += 1
        cfg = compose_config("generate", [*common, f"num_samples={n}", f"shard_size={max(1, n // 8)}", f"format={fmt}",
                                          f"out={root / 'datasets' / f'{fmt}-{counter[0]}'}"], root)
        before = len(loop_s)
        end_to_end.setdefault(fmt, []).append(n / timed(lambda: generate(cfg)))
        return n / sum(loop_s[before:])  # writing the shards + assembling the format

    model, _ = load_generative_model(root / "outputs" / "run" / "checkpoints" / "last.ckpt")

    def plain() -> float:
        target = root / "plain" / str(counter[0])
        target.mkdir(parents=True, exist_ok=True)

        def loop() -> None:
            generator = torch.Generator().manual_seed(0)
            for start in range(0, n, 256):
                images = to_uint8(model.sample(min(256, n - start), generator=generator)).numpy()
                for i, image in enumerate(images):
                    (target / f"{start + i:08d}.png").write_bytes(encode_png(image))

        return n / timed(loop)

    per_format, baseline = {}, []
    for fmt in ("imagefolder", "hf", "webdataset", "npz"):
        cand, base = alternate(lambda f=fmt: ours(f), plain, repeats)
        per_format[fmt] = cand
        baseline += base

    def peak_rss_kb(count: int) -> int:
        env = {**os.environ, "SYNTHSET_ROOT": str(root)}
        env.pop("MLFLOW_TRACKING_URI", None)
        args = [*common, f"num_samples={count}", "shard_size=500", "format=webdataset", f"out={root / 'rss' / str(count)}"]
        done = subprocess.run([sys.executable, "-c", RSS_PROBE, *args], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return int(done.stdout.split("MAXRSS_KB")[-1].split()[0])

    small, large = peak_rss_kb(rss_small), peak_rss_kb(rss_large)
    measured_end_to_end = {k: v[-repeats:] for k, v in end_to_end.items()}  # not the warm-up, not the profile
    extra = {"profile": profiled(lambda: ours("imagefolder"))} if profile else {}
    for name, method in originals.items():
        setattr(runner.ShardedGeneration, name, method)
    return {**extra, "end_to_end_images_per_s": measured_end_to_end,
        "images_per_s": per_format, "plain_images_per_s": baseline,
        "generate_images_per_s": {k: statistics.median(v) for k, v in per_format.items()},
        "generate_vs_baseline_ratio": statistics.median(per_format["imagefolder"]) / statistics.median(baseline),
        "rss_kb": {str(rss_small): small, str(rss_large): large}, "generate_rss_growth": large / small,
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
        lines.append(f"| train {name}, steady state (images/s) | {span(r['ours_images_per_s'], '')} | {span(r['plain_images_per_s'], '')} "
                     f"| {r['ratio']:.3f} | >= 0.95 |")
        lines.append(f"| train {name}, end to end incl. set-up (images/s) | {span(r['end_to_end_images_per_s'], '')} | | | |")
    d = results["loader"]
    lines.append(f"| data loader vs fastest training (images/s) | {d['loader_images_per_s']:.0f} | {d['fastest_training_images_per_s']:.0f} "
                 f"| {d['data_loader_headroom']:.1f} | > 1 |")
    e = results["eval"]
    lines.append(f"| eval cold vs warm cache (s) | warm {span(e['warm_s'], 's')} | cold {span(e['cold_s'], 's')} | {e['eval_warm_speedup']:.2f}x | > 1 |")
    lines.append(f"| eval vs direct torch-fidelity (s) | {span(e['ours_s'], 's')} | {span(e['direct_s'], 's')} | {e['eval_vs_fidelity_ratio']:.3f} | >= 0.95 |")
    g = results["generate"]
    for fmt, xs in g["images_per_s"].items():
        lines.append(f"| generate {fmt}, generation loop (images/s) | {span(xs, '')} | plain loop {span(g['plain_images_per_s'], '')} | "
                     f"{statistics.median(xs) / statistics.median(g['plain_images_per_s']):.3f} | >= 1.5 |")
        lines.append(f"| generate {fmt}, end to end incl. set-up and card (images/s) | {span(g['end_to_end_images_per_s'][fmt], '')} | | | |")
    (small, a), (large, b) = g["rss_kb"].items()
    lines.append(f"| generate peak RSS | {large} images: {b / 1024:.0f} MiB | {small} images: {a / 1024:.0f} MiB | {g['generate_rss_growth']:.3f} | <= 1.1 |")
    profiles = [(f"train {k}", r["profile"]) for k, r in results["train"].items() if r["ratio"] < 0.95 and "profile" in r]
    if g["generate_vs_baseline_ratio"] < 1.5 and "profile" in g:
        profiles.append(("generate imagefolder", g["profile"]))
    for title, rows in profiles:
        lines += ["", f"## Profile: {title} (missed target; cProfile, functions by own time)", "",
                  "| function | own s | share | cumulative s |", "|---|---|---|---|",
                  *[f"| `{r['function']}` | {r['own_s']:.3f} | {r['share']:.1%} | {r['cumulative_s']:.3f} |" for r in rows]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat: finishes in a few minutes")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    parser.add_argument("--write", type=Path, default=None, help="write a markdown table (the full run writes docs/benchmarks.md)")
    parser.add_argument("--models", default="dcgan,wgan,vae")
    parser.add_argument("--profile", action="store_true", help="add a cProfile of one candidate run per benchmark (the full run does)")
    args = parser.parse_args()
    quiet_third_party_logs()
    repeats = 1 if args.quick else 3
    global WARMUP_ROUND
    WARMUP_ROUND = not args.quick
    args.profile = args.profile or not args.quick
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        results = {"machine": machine(), "train": {}}
        for name in args.models.split(","):
            results["train"][name] = bench_train(name, 40 if args.quick else 200, repeats, out, profile=args.profile)
            print(f"train_overhead_ratio.{name} = {results['train'][name]['ratio']:.3f}", flush=True)
        fastest = max(statistics.median(r["ours_images_per_s"]) for r in results["train"].values())
        results["loader"] = bench_data_loader(40 if args.quick else 400, fastest, out)
        print(f"data_loader_headroom = {results['loader']['data_loader_headroom']:.1f}", flush=True)
        results["eval"] = bench_eval(16 if args.quick else 64, 16 if args.quick else 64, repeats, out)
        print(f"eval_warm_speedup = {results['eval']['eval_warm_speedup']:.2f}", flush=True)
        print(f"eval_vs_fidelity_ratio = {results['eval']['eval_vs_fidelity_ratio']:.3f}", flush=True)
        g = bench_generate(500 if args.quick else 10000, 1000 if args.quick else 1000, 4000 if args.quick else 20000, repeats, out,
                           profile=args.profile)
        results["generate"] = g
        print(f"generate_images_per_s = {g['generate_images_per_s']}", flush=True)
        print(f"generate_vs_baseline_ratio = {g['generate_vs_baseline_ratio']:.3f}  generate_rss_growth = {g['generate_rss_growth']:.3f}", flush=True)
    results["train_overhead_ratio"] = {k: v["ratio"] for k, v in results["train"].items()}
    results["data_loader_headroom"] = results["loader"]["data_loader_headroom"]
    results["eval_warm_speedup"] = results["eval"]["eval_warm_speedup"]
    results["eval_vs_fidelity_ratio"] = results["eval"]["eval_vs_fidelity_ratio"]
    for key in ("generate_images_per_s", "generate_vs_baseline_ratio", "generate_rss_growth"):
        results[key] = results["generate"][key]
    if args.write or not args.quick:
        path = args.write or REPO / "docs" / "benchmarks.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown(results))
        print(f"wrote {path}")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
