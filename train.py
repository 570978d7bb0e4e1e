"""Train a generative model: `python train.py model=wgan data=digits` (see --help)."""

import hydra
from omegaconf import DictConfig

from synthset.cli import entry_point, preflight, quiet_third_party_logs


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@entry_point
def main(cfg: DictConfig) -> float | None:
    quiet_third_party_logs()
    from synthset.pipelines.train import train  # heavy imports only once a run really starts

    return train(cfg)


if __name__ == "__main__":
    preflight(config_name="train")
    main()
