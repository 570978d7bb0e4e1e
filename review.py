"""Let people judge a generated dataset: `python review.py dataset=<folder> [mode=realism|curation]` (see README)."""

import hydra
from omegaconf import DictConfig

from synthset.cli import entry_point, preflight, quiet_third_party_logs


@hydra.main(version_base="1.3", config_path="conf", config_name="review")
@entry_point
def main(cfg: DictConfig) -> dict | None:
    quiet_third_party_logs()
    from synthset.pipelines.review import review  # heavy imports only once work starts

    return review(cfg)


if __name__ == "__main__":
    preflight(config_name="review")
    main()
