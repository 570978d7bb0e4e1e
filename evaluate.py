"""Score a trained run or a generated dataset.

    python evaluate.py run_id=<id> checkpoint=best eval.num_samples=10000
    python evaluate.py task=utility dataset=outputs/datasets/<name> utility.real_fractions=[0.1,1.0]
"""

import hydra
from omegaconf import DictConfig

from synthset.cli import entry_point, preflight, quiet_third_party_logs
from synthset.errors import require

TASKS = ("fidelity", "utility")


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@entry_point
def main(cfg: DictConfig) -> dict[str, float]:
    quiet_third_party_logs()
    require(cfg.task in TASKS, f"task={cfg.task} is unknown; expected one of {', '.join(TASKS)}.")
    # Heavy imports only once work starts.
    if cfg.task == "utility":
        from synthset.pipelines.utility import utility

        return utility(cfg)
    from synthset.pipelines.evaluate import evaluate

    return evaluate(cfg)


if __name__ == "__main__":
    preflight(config_name="evaluate")
    main()
