"""Which classifiers a utility run trains, and which of them would leak real data through the generator."""

from dataclasses import dataclass

from synthset.errors import require


@dataclass(frozen=True)
class Protocol:
    """Train on ``real_fraction`` of the real training split (0 = none), plus the synthetic data or not."""

    real_fraction: float
    synthetic: bool
    leaky: bool = False  # the generator saw real images this protocol's real share does not allow

    @property
    def name(self) -> str:
        if self.real_fraction == 0:
            return "synthetic"
        real = "real" if self.real_fraction == 1 else f"real@{self.real_fraction:g}"
        return f"{real}+synthetic" if self.synthetic else real

    @property
    def baseline(self) -> "Protocol":
        """The real-only protocol this one is compared against (synthetic alone compares with full real)."""
        return Protocol(self.real_fraction or 1.0, synthetic=False)


def check_fractions(real_fractions: list[float]) -> list[float]:
    for f in real_fractions:
        require(isinstance(f, int | float) and 0 < f <= 1,
                f"utility.real_fractions contains {f!r}, outside (0, 1]; pass shares of the real training split "
                "such as utility.real_fractions=[0.01,0.1,1.0].")
    return sorted({float(f) for f in real_fractions} | {1.0}, reverse=True)


def plan(real_fractions: list[float], generator_fraction: float, labeled: bool) -> list[Protocol]:
    """``real``, ``synthetic``, ``real+synthetic`` and per f < 1 ``real@f`` and ``real@f+synthetic``.

    Subsets are nested per seed (see ``stratified_subset``), so ``real@f+synthetic`` is honest exactly
    when the generator trained on at most f of the data; otherwise it is run but marked leaky.
    Unlabeled synthetic data cannot train a classifier: only the real protocols run.
    """
    fractions = check_fractions(real_fractions)
    if not labeled:
        return [Protocol(1.0, synthetic=False)]
    protocols = []
    for f in fractions:
        protocols.append(Protocol(f, synthetic=False))
        if f == 1.0:
            protocols.append(Protocol(0.0, synthetic=True))
        protocols.append(Protocol(f, synthetic=True, leaky=generator_fraction > f))
    return protocols
