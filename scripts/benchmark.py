"""Benchmarks as ratios against a baseline run in the same process, in alternating pairs with 95 % CIs.

    python scripts/benchmark.py [--quick] [--json] [--write docs/benchmarks.md]
    python scripts/benchmark.py --train-only --models dcgan                # one training ratio, printed
    python scripts/benchmark.py --generate-only --formats webdataset --growth-formats '' --pairs 20:60
    python scripts/benchmark.py --generate-only --formats '' --scratch /dev/shm   # growth rows off the disk

Every ratio comes from candidate/baseline pairs run back to back; pairs continue until the 95 %
confidence interval of the mean ratio is narrower than ±3 % (or a cap; the report says so).

- train_overhead_ratio.<model>: steady-state images/s through our LightningModule + Trainer (MLflow
  logging on, evaluation off) / images/s of a plain PyTorch loop doing the same updates on the same
  networks, losses, optimizers, batches and threads. The two alternate in chunks of 50 batches inside
  each of our runs (one pair per chunk), so both sides of a pair meet the machine in the same second.
- train_cuda_probe_speedup (machines without NVML only): images/s of the plain DCGAN loop with synthset's
  environment / with Lightning's PYTORCH_NVML_BASED_CUDA_CHECK=1, alternating in one process.
- data_loader_headroom: images/s the training loader delivers / images/s the fastest model consumes.
- eval_warm_speedup: cold-cache evaluation time / warm-cache time; eval_vs_fidelity_ratio: a direct
  torch_fidelity.calculate_metrics call's time / ours (warm, same images, same extractor).
- generate_vs_baseline_ratio.<format>: images/s of the generation loop / a plain one-process loop of
  sampling + PIL PNG encoding + writing files.
- generate_time_growth.<format>: seconds per image at the large count / at the small count, paired (npz and
  imagefolder; 200,000 vs 20,000 images in the full run), and generate_rss_growth: peak RSS likewise, of a
  forked child (with the MiB the generation itself added beside it).
"""

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from benchlib.ratios import measure_interleaved, measure_ratio, timed  # noqa: E402

from synthset.cli import quiet_third_party_logs  # noqa: E402

PAIRING = {"min_pairs": 4, "max_pairs": 20, "target": 0.03, "warmup": True}
# Training pairs are chunks of 50 batches, 6 per run of ours (see InterleavedChunks): cheap, so more of them.
TRAIN_PAIRING = {"min_pairs": 12, "max_pairs": 60, "target": 0.03, "warmup": True}
TRAIN_OVERRIDES = ["model.conditional=true", "model.width=32", "trainer.accelerator=cpu",
                   "trainer.enable_progress_bar=false", "callbacks.sample_grid.every_n_steps=100000",
                   "callbacks.checkpoints.every_n_train_steps=100000", "trainer.log_every_n_steps=25",
                   "eval.every_n_steps=0", "+trainer.limit_val_batches=0"]


# ---- training overhead -------------------------------------------------------------------------

def plain_loop(model, batches) -> int:
    """The module's updates as a bare PyTorch loop (its own networks, losses and schedule); returns images seen."""
    from synthset.models.losses import gradient_penalty

    seen = 0
    if model.hparams.name == "vae":
        opt = model.configure_optimizers()
        for batch in batches:
            loss = model.losses(batch)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(batch[0])
        return seen
    opt_g, opt_d = model.configure_optimizers()
    # The module's own compiled wrappers (the networks themselves when compile is off); the penalty uses plain D.
    G, D, h = model.compiled_network("generator"), model.compiled_network("discriminator"), model.hparams
    for i, (real, labels) in enumerate(batches):
        labels = labels if model.num_classes else None
        fake = G(torch.randn(real.size(0), model.latent_dim, device=real.device), labels)
        d_loss = model.discriminator_loss(D(real, labels), D(fake.detach(), labels))
        if h.gp_weight:
            d_loss = d_loss + h.gp_weight * gradient_penalty(lambda x, y=labels: model.discriminator(x, y), real, fake.detach())
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        if (i + 1) % h.n_critic == 0:
            fresh = fake if h.n_critic == 1 else G(torch.randn(real.size(0), model.latent_dim, device=real.device), labels)
            g_loss = model.generator_loss(D(fresh, labels))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
        seen += real.size(0)
    return seen


class SteadyStateTimer:
    """Wall time from the start of batch ``warmup`` to the end of the last batch: throughput without set-up.

    Batches are counted across epochs (Lightning's ``batch_idx`` restarts every epoch), and on a GPU the
    queued work is waited for at both ends, so the span covers the work and nothing else.
    """

    def __init__(self, warmup: int) -> None:
        import pytorch_lightning as pl

        timer = self

        class Callback(pl.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
                if timer.seen == timer.warmup:
                    timer.start = timer.now()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
                timer.seen += 1

            def on_train_epoch_end(self, trainer, module) -> None:
                timer.end = timer.now()  # the last epoch's end is the last batch's end (no validation runs)

        self.warmup, self.seen, self.start, self.end = warmup, 0, 0.0, 0.0
        self.callback = Callback()

    @staticmethod
    def now() -> float:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return time.perf_counter()

    @property
    def batches(self) -> int:
        return self.seen - self.warmup

    def images_per_s(self, batch_size: int) -> float:
        return self.batches * batch_size / (self.end - self.start)


def run_ours(model_name: str, overrides: list[str], n_batches: int, root: Path, run_name: str, callback) -> int:
    """``run_training`` (the product path: Lightning, MLflow) for ``n_batches`` with ``callback``; returns the batch size."""
    from synthset.config import compose_config
    from synthset.pipelines.train import run_training

    cfg = compose_config("train", [*overrides, f"trainer.max_steps={optimizer_steps(model_name, n_batches)}"], root)
    cfg.paths.run_dir = str(root / run_name)
    run_training(cfg, extra_callbacks=[callback])
    return cfg.data.batch_size


def steady_training_rate(model_name: str, overrides: list[str], n_batches: int, warmup: int, root: Path,
                         run_name: str) -> float:
    """Images/s of ``run_training`` over ``n_batches``, warm-up excluded."""
    timer = SteadyStateTimer(warmup)
    batch_size = run_ours(model_name, overrides, n_batches, root, run_name, timer.callback)
    assert timer.batches == n_batches - warmup, "both sides must train on the same number of batches"
    return timer.images_per_s(batch_size)


def optimizer_steps(model_name: str, batches: int) -> int:
    return {"dcgan": 2 * batches, "wgan": batches + batches // 5, "vae": batches}[model_name]


class PlainLoop:
    """The plain loop on its own copy of the networks, fed by its own loader with the device scaling ours runs."""

    def __init__(self, overrides: list[str], root: Path) -> None:
        from synthset.config import compose_config
        from synthset.pipelines.train import build_datamodule, build_model

        cfg = compose_config("train", overrides, root)
        datamodule = build_datamodule(cfg)
        self.model = build_model(cfg, datamodule).train()
        loader = datamodule.train_dataloader()

        def batches():
            while True:
                for batch in loader:
                    yield datamodule.on_after_batch_transfer(batch, 0)

        self.stream = batches()

    def images_per_s(self, n_batches: int) -> float:
        start = SteadyStateTimer.now()
        seen = plain_loop(self.model, (next(self.stream) for _ in range(n_batches)))
        return seen / (SteadyStateTimer.now() - start)


class InterleavedChunks:
    """After every ``chunk`` of our batches, ``chunk`` batches of the plain loop: one (ours, plain) pair each.

    Pairs a second apart meet the same machine; whole runs a minute apart did not (on the 2-core VM the
    plain loop alone drifted by ±15 % between runs). Our chunk is timed from the start of its first batch to
    the start of the next chunk's first, so all Lightning does between batches (logging too) is in it; the
    plain chunk runs in that gap, outside our time.
    """

    def __init__(self, plain: PlainLoop, warmup: int, chunk: int, batch_size: int) -> None:
        import pytorch_lightning as pl

        outer = self

        class Callback(pl.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
                outer.batch_starts()

        self.plain, self.warmup, self.chunk, self.batch_size = plain, warmup, chunk, batch_size
        self.seen, self.start, self.pairs = 0, None, []
        self.callback = Callback()

    def batch_starts(self) -> None:
        if self.seen >= self.warmup and (self.seen - self.warmup) % self.chunk == 0:
            if self.start is not None:
                ours = self.chunk * self.batch_size / (SteadyStateTimer.now() - self.start)
                self.pairs.append((ours, self.plain.images_per_s(self.chunk)))
            self.start = SteadyStateTimer.now()
        self.seen += 1


def bench_train(model_name: str, chunk: int, chunks_per_run: int, out: Path, profile: bool = False) -> dict:
    """Our training / the plain loop, paired chunk by chunk inside each of our runs (see ``InterleavedChunks``)."""
    from synthset.config import compose_config

    overrides = [f"model={model_name}", *TRAIN_OVERRIDES]
    warmup, runs = 5, [0]
    batch_size = compose_config("train", overrides, out).data.batch_size
    n_batches = warmup + chunk * chunks_per_run + 1  # the last batch's start closes the last chunk
    assert chunk % 5 == 0, "a chunk must hold whole WGAN-GP critic cycles (n_critic=5) on both sides"
    plain = PlainLoop(overrides, out / "baseline")
    plain.images_per_s(warmup)

    def interleaved_run() -> list[tuple[float, float]]:
        runs[0] += 1
        chunks = InterleavedChunks(plain, warmup, chunk, batch_size)
        run_ours(model_name, overrides, n_batches, out / model_name, f"run-{runs[0]}", chunks.callback)
        assert len(chunks.pairs) == chunks_per_run
        return chunks.pairs

    result = measure_interleaved(interleaved_run, **TRAIN_PAIRING)
    result["overhead_ms_per_batch"] = overhead_ms_per_batch(result, batch_size)
    result["chunk_batches"] = chunk
    if profile:
        result["profile"] = profiled(lambda: steady_training_rate(model_name, overrides, n_batches, warmup,
                                                                  out / model_name, "profiled"))
    return result


def bench_cuda_probe(n_batches: int, out: Path) -> dict | None:
    """The plain DCGAN loop with synthset's environment / with Lightning's NVML-based CUDA check (None where NVML loads).

    Both sides are the same loop in this process; only ``PYTORCH_NVML_BASED_CUDA_CHECK`` differs between them.
    """
    from synthset.cuda_probe import NVML_CHECK_VAR, nvml_loads

    if nvml_loads():
        return None
    plain = PlainLoop(["model=dcgan", *TRAIN_OVERRIDES], out / "cuda-probe")
    plain.images_per_s(5)

    def rate(nvml_check: bool) -> float:
        if nvml_check:
            os.environ[NVML_CHECK_VAR] = "1"
        else:
            os.environ.pop(NVML_CHECK_VAR, None)
        return plain.images_per_s(n_batches)

    try:
        return measure_ratio(lambda: rate(False), lambda: rate(True), **PAIRING)
    finally:
        os.environ.pop(NVML_CHECK_VAR, None)


def overhead_ms_per_batch(ratio: dict, batch_size: int) -> float:
    """What one batch costs us beyond the plain loop, from the median rates: the size of a missed ratio."""
    ours, plain = (statistics.median(ratio[side]) for side in ("candidate", "baseline"))
    return 1000 * batch_size * (1 / ours - 1 / plain)


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

def bench_eval(n_fake: int, n_real: int, out: Path) -> dict:
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

    # Durations: the ratio is baseline time / our time (higher is better for us).
    warm_speedup = measure_ratio(lambda: ours(False), lambda: ours(True), higher_is_better=False, **PAIRING)
    register_extractors()

    def direct() -> float:
        return timed(lambda: torch_fidelity.calculate_metrics(
            input1=UInt8Images(fake), input2=UInt8Images(real), input2_cache_name="bench-ref",
            cache_root=str(out / "warm"), feature_extractor="inception-tf-pool3", fid=True, kid=True,
            kid_subset_size=min(n_fake, n_real), cuda=False, verbose=False, save_cpu_ram=True))

    versus = measure_ratio(lambda: ours(False), direct, higher_is_better=False, **PAIRING)
    return {"eval_warm_speedup": warm_speedup, "eval_vs_fidelity": versus}


# ---- generation -------------------------------------------------------------------------------

def proc_status_kb(field: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def pil_png(image) -> bytes:
    """What a plain loop writes: PIL's PNG of a uint8 (C, H, W) image, at synthset's compression level."""
    from PIL import Image

    array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


class GenerationBench:
    """One small conditional model, and timings of its generation loop (sampling, encoding, writing, records)."""

    def __init__(self, out: Path) -> None:
        from synthset.config import compose_config
        from synthset.generation import runner
        from synthset.models.loading import load_generative_model
        from synthset.pipelines.train import run_training

        self.root, self.loop_s, self.counter = out / "gen", [], 0
        self.originals = {name: getattr(runner.ShardedGeneration, name) for name in ("run", "complete")}
        for name, method in self.originals.items():
            setattr(runner.ShardedGeneration, name, self.timed_method(method))
        self.run_id = run_training(compose_config("train", [
            "model=dcgan", "model.conditional=true", "model.width=32", "trainer.max_steps=10", "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false"], self.root)).run_id
        self.model, _ = load_generative_model(self.root / "outputs" / "run" / "checkpoints" / "last.ckpt")
        self.common = [f"run_id={self.run_id}", "progress=false", "card.eval_samples=0", "memorization.enabled=false"]

    def timed_method(self, method):
        def wrapper(generation, *args, **kwargs):
            start = time.perf_counter()
            result = method(generation, *args, **kwargs)
            self.loop_s.append(time.perf_counter() - start)
            return result
        return wrapper

    def close(self) -> None:
        from synthset.generation import runner

        for name, method in self.originals.items():
            setattr(runner.ShardedGeneration, name, method)

    def loop_seconds(self, fmt: str, n: int, shard_size: int) -> float:
        """Seconds of the generation loop (writing every shard and assembling the format) for ``n`` images."""
        from synthset.config import compose_config
        from synthset.pipelines.generate import generate

        self.counter += 1
        out = self.root / "datasets" / f"{fmt}-{self.counter}"
        cfg = compose_config("generate", [*self.common, f"num_samples={n}", f"shard_size={shard_size}", f"format={fmt}",
                                          f"out={out}"], self.root)
        before = len(self.loop_s)
        generate(cfg)
        shutil.rmtree(out)  # repeats of 200,000 images would otherwise fill the disk
        return sum(self.loop_s[before:])

    def plain_images_per_s(self, n: int) -> float:
        from synthset.data.datamodule import to_uint8

        target = self.root / "plain" / str(self.counter)
        target.mkdir(parents=True, exist_ok=True)

        def loop() -> None:
            generator = torch.Generator().manual_seed(0)
            for start in range(0, n, 256):
                images = to_uint8(self.model.sample(min(256, n - start), generator=generator)).numpy()
                for i, image in enumerate(images):
                    (target / f"{start + i:08d}.png").write_bytes(pil_png(image))

        return n / timed(loop)

    def peak_rss_kb(self, count: int) -> tuple[int, int]:
        """(peak RSS, peak minus RSS at start) in KiB of a forked child that generates ``count`` images.

        A fork skips a fresh interpreter's imports (seconds each); the child's own peak is read from VmHWM,
        which ``clear_refs`` resets to the RSS it starts with.
        """
        import multiprocessing

        context = multiprocessing.get_context("fork")
        results = context.SimpleQueue()
        child = context.Process(target=self.rss_child, args=(count, results))
        child.start()
        peak, added = results.get()
        child.join()
        assert child.exitcode == 0, f"the RSS probe for {count} images exited with {child.exitcode}"
        return peak, added

    def rss_child(self, count: int, results) -> None:
        from synthset.config import compose_config
        from synthset.pipelines.generate import generate

        torch.set_num_threads(1)  # a forked child must not reuse the parent's OpenMP pool
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
        start = proc_status_kb("VmRSS")
        generate(compose_config("generate", [*self.common, f"num_samples={count}", "shard_size=500", "format=webdataset",
                                             f"out={self.root / 'rss' / str(count)}"], self.root))
        peak = proc_status_kb("VmHWM")
        results.put((peak, peak - start))


GENERATE_FORMATS = ("imagefolder", "hf", "webdataset", "npz")
GROWTH_FORMATS = ("npz", "imagefolder")


def bench_generate(n: int, growth: tuple[int, int], rss: tuple[int, int], out: Path, profile: bool = False,
                   formats: tuple[str, ...] = GENERATE_FORMATS, growth_formats: tuple[str, ...] = GROWTH_FORMATS) -> dict:
    bench = GenerationBench(out)
    try:
        results: dict = {"vs_baseline": {}, "time_growth": {}}
        for fmt in formats:
            results["vs_baseline"][fmt] = measure_ratio(lambda f=fmt: n / bench.loop_seconds(f, n, max(1, n // 8)),
                                                        lambda: bench.plain_images_per_s(n), **PAIRING)
            print(f"generate_vs_baseline_ratio.{fmt} = {results['vs_baseline'][fmt]['ratio']:.3f}", flush=True)
        small, large = growth
        for fmt in growth_formats:  # seconds per image, large count / small count, in alternating pairs
            growth_ratio = measure_ratio(lambda f=fmt: bench.loop_seconds(f, large, 1000) / large,
                                         lambda f=fmt: bench.loop_seconds(f, small, 1000) / small, **PAIRING)
            growth_ratio["counts"] = [small, large]
            results["time_growth"][fmt] = growth_ratio
            print(f"generate_time_growth.{fmt} = {ratio_cell(growth_ratio)}", flush=True)
        (rss_small, added_small), (rss_large, added_large) = bench.peak_rss_kb(rss[0]), bench.peak_rss_kb(rss[1])
        results["rss_kb"] = {str(rss[0]): rss_small, str(rss[1]): rss_large}
        results["rss_added_kb"] = {str(rss[0]): added_small, str(rss[1]): added_large}
        results["generate_rss_growth"] = rss_large / rss_small
        if profile:
            results["profile"] = profiled(lambda: bench.loop_seconds("webdataset", n, max(1, n // 8)))
        return results
    finally:
        bench.close()


# ---- report -----------------------------------------------------------------------------------

def machine() -> dict:
    import pytorch_lightning
    import torch_fidelity

    return {"python": platform.python_version(), "torch": torch.__version__, "lightning": pytorch_lightning.__version__,
            "torch_fidelity": torch_fidelity.__version__, "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def ratio_cell(r: dict) -> str:
    low, high = r["ci95"]
    note = "" if r["target_width_reached"] else " (CI wider than ±3 % after the cap)"
    return f"{r['ratio']:.3f} [{low:.3f}, {high:.3f}], {r['pairs']} pairs{note}"


def markdown(results: dict) -> str:
    lines = ["# Benchmarks", "", "Produced by `python scripts/benchmark.py`: each ratio is the mean over alternating "
             "candidate/baseline pairs run in one process, with its 95 % confidence interval (Student's t); pairs continue "
             f"until the interval is within ±3 % of the ratio or {results['pairing']['max_pairs']} pairs. Training pairs "
             f"are chunks of {next(iter(results['train'].values()))['chunk_batches']} batches, ours then the plain loop, "
             f"inside each of our runs (at most {results['train_pairing']['max_pairs']} pairs). GPU figures: "
             "[benchmarks-gpu.md](benchmarks-gpu.md).", "",
             "Machine: " + ", ".join(f"{k}={v}" for k, v in results["machine"].items()), "",
             "| benchmark | ratio [95 % CI] | ours (median) | baseline (median) | target |", "|---|---|---|---|---|"]
    for name, r in results["train"].items():
        lines.append(f"| train_overhead_ratio {name} (images/s, steady state; {r['overhead_ms_per_batch']:+.1f} ms per batch "
                     f"beyond the plain loop) | {ratio_cell(r)} | "
                     f"{statistics.median(r['candidate']):.0f} | {statistics.median(r['baseline']):.0f} | >= 0.95 |")
    if results.get("cuda_probe"):
        c = results["cuda_probe"]
        lines.append(f"| train_cuda_probe_speedup (plain DCGAN loop, images/s, without / with Lightning's NVML-based "
                     f"CUDA check on a machine without NVML) | {ratio_cell(c)} | {statistics.median(c['candidate']):.0f} | "
                     f"{statistics.median(c['baseline']):.0f} | > 1 |")
    d = results["loader"]
    lines.append(f"| data_loader_headroom (images/s) | {d['data_loader_headroom']:.1f} | {d['loader_images_per_s']:.0f} | "
                 f"{d['fastest_training_images_per_s']:.0f} | > 1 |")
    e = results["eval"]
    lines.append(f"| eval_warm_speedup (cold s / warm s) | {ratio_cell(e['eval_warm_speedup'])} | "
                 f"{statistics.median(e['eval_warm_speedup']['candidate']):.2f} s | "
                 f"{statistics.median(e['eval_warm_speedup']['baseline']):.2f} s | > 1 |")
    lines.append(f"| eval_vs_fidelity_ratio (direct s / ours s) | {ratio_cell(e['eval_vs_fidelity'])} | "
                 f"{statistics.median(e['eval_vs_fidelity']['candidate']):.2f} s | "
                 f"{statistics.median(e['eval_vs_fidelity']['baseline']):.2f} s | >= 0.95 |")
    g = results["generate"]
    for fmt, r in g["vs_baseline"].items():
        target = ">= 1.3" if fmt == "webdataset" else ">= 1.5"
        lines.append(f"| generate_vs_baseline_ratio {fmt} (images/s) | {ratio_cell(r)} | {statistics.median(r['candidate']):.0f} "
                     f"| {statistics.median(r['baseline']):.0f} | {target} |")
    for fmt, r in g["time_growth"].items():
        small, large = r["counts"]
        lines.append(f"| generate_time_growth {fmt} (s per image, {large} / {small} images) | {ratio_cell(r)} | "
                     f"{statistics.median(r['candidate']) * 1e6:.0f} µs | {statistics.median(r['baseline']) * 1e6:.0f} µs "
                     "| <= 1.1 |")
    (small, a), (large, b) = g["rss_kb"].items()
    added = {count: kb / 1024 for count, kb in g["rss_added_kb"].items()}
    lines.append(f"| generate_rss_growth (peak RSS of a forked generating process, {large} / {small} images; the "
                 f"generation itself added {added[large]:.0f} / {added[small]:.0f} MiB) | {g['generate_rss_growth']:.3f} | "
                 f"{b / 1024:.0f} MiB | {a / 1024:.0f} MiB | <= 1.1 |")
    profiles = [(f"train {k}", r["profile"]) for k, r in results["train"].items() if r["ratio"] < 0.95 and "profile" in r]
    if "profile" in g:
        profiles.append(("generate webdataset", g["profile"]))
    for title, rows in profiles:
        lines += ["", f"## Profile: {title} (cProfile, functions by own time)", "",
                  "| function | own s | share | cumulative s |", "|---|---|---|---|",
                  *[f"| `{r['function']}` | {r['own_s']:.3f} | {r['share']:.1%} | {r['cumulative_s']:.3f} |" for r in rows]]
    return "\n".join(lines) + "\n"


def chosen_formats(parser: argparse.ArgumentParser, flag: str, value: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated format list ('' for none); an unknown name stops the script with exit 2."""
    formats = tuple(name for name in value.split(",") if name)
    unknown = sorted(set(formats) - set(known))
    if unknown:
        parser.error(f"{flag} {','.join(unknown)} is unknown; expected some of {','.join(known)}.")
    return formats


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 2 pairs: the contract in a minute or two")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    parser.add_argument("--write", type=Path, default=None, help="write the markdown report (the full run: docs/benchmarks.md)")
    parser.add_argument("--models", default="dcgan,wgan,vae")
    parser.add_argument("--profile", action="store_true", help="add cProfile tables (the full run does)")
    parser.add_argument("--pairs", default=None, help="MIN:MAX alternating pairs per ratio (default 4:20)")
    parser.add_argument("--train-pairs", default=None, help="MIN:MAX chunk pairs per training ratio (default 12:60)")
    parser.add_argument("--train-only", action="store_true", help="only the training ratios (printed; no report written)")
    parser.add_argument("--generate-only", action="store_true",
                        help="only the generation rows (printed; no report written)")
    parser.add_argument("--formats", default=",".join(GENERATE_FORMATS),
                        help="formats of the generate_vs_baseline rows, comma-separated, or '' for none (default: all four)")
    parser.add_argument("--growth-formats", default=",".join(GROWTH_FORMATS),
                        help="formats of the generate_time_growth rows, comma-separated, or '' for none (default: npz,imagefolder)")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="where the benchmark writes (default: the system's temp folder); /dev/shm takes a "
                             "disk whose timing varies out of generate_time_growth")
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    quiet_third_party_logs()
    if args.quick:
        PAIRING.update(min_pairs=2, max_pairs=2, warmup=False)
        TRAIN_PAIRING.update(min_pairs=2, max_pairs=2, warmup=False)
    for pairing, text in ((PAIRING, args.pairs), (TRAIN_PAIRING, args.train_pairs)):
        if text:  # MIN:MAX
            pairing.update(zip(("min_pairs", "max_pairs"), (int(n) for n in text.split(":")), strict=True))
    args.profile = args.profile or not args.quick
    sizes = dict(n=200, growth=(200, 800), rss=(200, 600)) if args.quick else dict(
        n=10000, growth=(20000, 200000), rss=(1000, 20000))
    formats, growth_formats = (chosen_formats(parser, flag, value, GENERATE_FORMATS) for flag, value in (
        ("--formats", args.formats), ("--growth-formats", args.growth_formats)))
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        out = Path(tmp)
        results = {"machine": machine(), "pairing": dict(PAIRING), "train_pairing": dict(TRAIN_PAIRING), "train": {},
                   "scratch": str(out)}
        if args.generate_only:
            results["generate"] = bench_generate(**sizes, out=out, formats=formats, growth_formats=growth_formats)
            print(json.dumps(results) if args.json else "")
            return
        for name in args.models.split(","):
            chunking = dict(chunk=5, chunks_per_run=2) if args.quick else dict(chunk=50, chunks_per_run=6)
            results["train"][name] = bench_train(name, **chunking, out=out, profile=args.profile)
            print(f"train_overhead_ratio.{name} = {ratio_cell(results['train'][name])}; "
                  f"{results['train'][name]['overhead_ms_per_batch']:+.2f} ms per batch", flush=True)
        results["cuda_probe"] = bench_cuda_probe(5 if args.quick else 50, out)
        if results["cuda_probe"]:
            print(f"train_cuda_probe_speedup = {ratio_cell(results['cuda_probe'])}", flush=True)
        if args.train_only:
            print(json.dumps(results) if args.json else "")
            return
        fastest = max(statistics.median(r["candidate"]) for r in results["train"].values())
        results["loader"] = bench_data_loader(40 if args.quick else 400, fastest, out)
        results["eval"] = bench_eval(4 if args.quick else 64, 4 if args.quick else 64, out)
        results["generate"] = bench_generate(**sizes, out=out, profile=args.profile, formats=formats,
                                             growth_formats=growth_formats)
    results["summary"] = {
        "train_overhead_ratio": {k: v["ratio"] for k, v in results["train"].items()},
        "data_loader_headroom": results["loader"]["data_loader_headroom"],
        "eval_warm_speedup": results["eval"]["eval_warm_speedup"]["ratio"],
        "eval_vs_fidelity_ratio": results["eval"]["eval_vs_fidelity"]["ratio"],
        "generate_vs_baseline_ratio": {k: v["ratio"] for k, v in results["generate"]["vs_baseline"].items()},
        "generate_time_growth": {k: v["ratio"] for k, v in results["generate"]["time_growth"].items()},
        "generate_rss_growth": results["generate"]["generate_rss_growth"],
    }
    if args.write or not args.quick:
        path = args.write or REPO / "docs" / "benchmarks.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown(results))
        print(f"wrote {path}")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
