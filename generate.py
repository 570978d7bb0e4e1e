"""Write a synthetic dataset from a trained run: `python generate.py run_id=<id> num_samples=50000 format=hf`."""

import hydra
from omegaconf import DictConfig

from synthset.cli import entry_point, preflight, quiet_third_party_logs


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
@entry_point
def main(cfg: DictConfig) -> None:
    quiet_third_party_logs()
    from synthset.pipelines.generate import generate  # heavy imports only once work starts

    generate(cfg)


if __name__ == "__main__":
    preflight(config_name="generate")
    main()
