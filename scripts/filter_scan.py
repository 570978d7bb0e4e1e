"""Score sample filters of one conditional GAN on one pool of draws: FID, GAN-test and diversity per filter.

    python scripts/filter_scan.py outputs/study/runs/fmnist_cgan_seed1 --split val --out outputs/filter_scan/seed1-val.json

Per class 400 seeded draws from the run's best checkpoint. Each filter keeps 200 per class (2,000 images): of the
first ceil(200 / f) draws, the 200 its score ranks highest (the discriminator's logit, as ``filter.top_k_by=
discriminator``; the reference classifier's p(label), as ``filter.top_k``), or the first 200 with p(label) >= 0.5
(as ``filter.label_agreement=0.5``). TF-Inception features of the pool are extracted once (about 10 minutes on
2 cores; cached beside ``--out``), so the filters differ only in which draws they keep. Choose on ``--split val``;
read ``test`` only after the choice. The real images and their cached features are the study's (2,000 at most).
"""

import argparse
import json
import math
from pathlib import Path

import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

from synthset.data.datamodule import datamodule_from_record, to_signed_unit, to_uint8
from synthset.metrics.classifier import reference_classifier
from synthset.metrics.evaluation import domain_metrics, reference_for
from synthset.metrics.extractors import INCEPTION_TF, InceptionTFPool3
from synthset.models.loading import load_generative_model

PER_CLASS, KEEP, SEED = 400, 200, 1234
DIVERSITY = ("gan_test", "pixel_std_ratio", "class_recall", "class_coverage")


def draw_pool(model, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images, labels and D's logit of each (as written: after rounding to uint8), class by class."""
    generator = torch.Generator().manual_seed(SEED)
    images, labels, logits = [], [], []
    for c in range(num_classes):
        label = torch.full((KEEP,), c, dtype=torch.long)
        for _ in range(PER_CLASS // KEEP):
            drawn = to_uint8(model.sample(KEEP, label, generator))
            images.append(drawn)
            labels.append(label)
            logits.append(model.discriminator_scores(to_signed_unit(drawn), label))
    return torch.cat(images), torch.cat(labels), torch.cat(logits)


def inception_features(images: torch.Tensor, cache: Path) -> torch.Tensor:
    if cache.is_file():
        saved = torch.load(cache, weights_only=True)
        if torch.equal(saved["images"], images):
            return saved["features"]
    extractor = InceptionTFPool3(INCEPTION_TF, ["2048"]).eval()
    with torch.no_grad():
        features = torch.cat([extractor(images[i : i + 100].expand(-1, 3, -1, -1).contiguous())[0]
                              for i in range(0, len(images), 100)]).double()
    torch.save({"images": images, "features": features}, cache)
    return features


def keep(index_by_class: list[torch.Tensor], score: torch.Tensor | None, fraction: float,
         passing: torch.Tensor | None = None) -> torch.Tensor:
    """Per class: of the first ceil(KEEP / fraction) draws (those ``passing``), the KEEP that ``score`` ranks highest."""
    kept = []
    for idx in index_by_class:
        idx = idx[passing[idx]] if passing is not None else idx
        idx = idx[: math.ceil(KEEP / fraction)]
        idx = idx[score[idx].argsort(descending=True, stable=True)[:KEEP]] if score is not None else idx
        assert len(idx) == KEEP, f"only {len(idx)} draws pass; lower the filter"
        kept.append(idx)
    return torch.cat(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a training run's folder (its checkpoints/best.ckpt is scored)")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--out", type=Path, required=True, help="a .json file; the pool's features go beside it")
    parser.add_argument("--cache", type=Path, default=Path("outputs/study/outputs/cache"), help="the study's caches")
    args = parser.parse_args()

    model, _ = load_generative_model(args.run_dir / "checkpoints" / "best.ckpt")
    dm = datamodule_from_record(model.run_config["data"])
    dm.setup()
    classifier = reference_classifier(dm, args.cache / "classifier")
    images, labels, logits = draw_pool(model, dm.num_classes)
    p_label = classifier.probabilities(images).gather(1, labels.view(-1, 1)).squeeze(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    features = inception_features(images, args.out.with_suffix(".pool.pt"))
    real, real_labels, reference = reference_for(dm, args.split, 2000)
    real_features = torch.load(args.cache / "fidelity" / f"{reference}-{INCEPTION_TF}-features-2048.pt", weights_only=True)
    real_stats = fid_features_to_statistics(real_features.double())

    def score(index: torch.Tensor) -> dict[str, float]:
        fid = fid_statistics_to_metric(fid_features_to_statistics(features[index]), real_stats, False)
        domain = domain_metrics(images[index], labels[index], real, real_labels, classifier, dm.class_names)
        return {"fid": round(float(fid["frechet_inception_distance"]), 2), **{k: round(domain[k], 3) for k in DIVERSITY}}

    by_class = [torch.arange(c * PER_CLASS, (c + 1) * PER_CLASS) for c in range(dm.num_classes)]
    rows = {"unfiltered": score(keep(by_class, None, 1.0)),
            "unfiltered, the other 200 draws per class (the spread between two sets)":
                score(keep([idx[KEEP:] for idx in by_class], None, 1.0)),
            "label agreement 0.5": score(keep(by_class, None, 1.0, passing=p_label >= 0.5))}
    for fraction in (0.9, 0.8, 0.67, 0.5):
        rows[f"discriminator top-k {fraction}"] = score(keep(by_class, logits, fraction))
        rows[f"classifier top-k {fraction}"] = score(keep(by_class, p_label, fraction))
    for fraction in (0.9, 0.8):
        rows[f"label agreement 0.5, then discriminator top-k {fraction}"] = score(keep(by_class, logits, fraction,
                                                                                       passing=p_label >= 0.5))
    result = {"run": str(args.run_dir), "split": args.split, "n_real": len(real), "n_generated": KEEP * dm.num_classes,
              "extractor": INCEPTION_TF, "filters": rows}
    args.out.write_text(json.dumps(result, indent=1))
    for name, row in rows.items():
        print(f"{name:60s} " + "  ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
