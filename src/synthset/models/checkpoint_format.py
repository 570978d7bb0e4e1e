"""What a synthset checkpoint holds besides Lightning's own keys; all of it plain data."""

# The model's short registered name (``dcgan``, ``wgan``, ``vae``): looked up in synthset's registry, never imported.
MODEL_NAME_KEY = "synthset_model"
# The resolved run config without Hydra's ``_target_`` keys: data that describes the run.
RUN_CONFIG_KEY = "synthset_run_config"
# The evaluation of exactly these weights (metrics, protocol, generator step), when one was made.
EVAL_KEY = "synthset_eval"
# Where runs keep checkpoints among their MLflow artifacts.
CHECKPOINT_ARTIFACT_DIR = "checkpoints"
