"""Score a trained run: `python evaluate.py run_id=<id> checkpoint=best eval.num_samples=10000`."""

import hydra
from omegaconf import DictConfig

from synthset.cli import quiet_third_party_logs, report_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@report_errors
def main(cfg: DictConfig) -> dict[str, float]:
    quiet_third_party_logs()
    from synthset.pipelines.evaluate import evaluate  # heavy imports only once work starts

    return evaluate(cfg)


if __name__ == "__main__":
    main()
