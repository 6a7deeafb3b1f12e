"""Statistics for online experiments: A/B/n comparisons and canary analysis.

Pure numpy/scipy so a canary controller can import it without pulling in the orchestration stack.
Conventions used throughout:

* variant 0 (or ``a``) is the control; effects are ``treatment - control`` in rate (or mean) units;
* every result is a frozen dataclass of plain floats/tuples, so verdicts can be logged and compared;
* bad input raises ``ValueError`` naming the offending argument.

Every public name is importable from here; the modules split them by family of method.
"""

from domainflow.evaluation.experiments.bayesian import BayesianResult, beta_binomial_comparison
from domainflow.evaluation.experiments.frequentist import (
    ChiSquareResult,
    HolmResult,
    TestResult,
    chi_square_test,
    holm_correction,
    two_proportion_z_test,
    welch_t_test,
)
from domainflow.evaluation.experiments.means import MeansComparison, MeansVerdict, compare_variant_means
from domainflow.evaluation.experiments.power import (
    SampleSize,
    power_two_proportions,
    sample_size_two_means,
    sample_size_two_proportions,
)
from domainflow.evaluation.experiments.sequential import (
    SequentialDecision,
    SequentialTest,
    always_valid_interval,
    msprt_p_values,
)
from domainflow.evaluation.experiments.verdict import VariantComparison, Verdict, compare_variants

__all__ = [
    "BayesianResult",
    "ChiSquareResult",
    "HolmResult",
    "MeansComparison",
    "MeansVerdict",
    "SampleSize",
    "SequentialDecision",
    "SequentialTest",
    "TestResult",
    "VariantComparison",
    "Verdict",
    "always_valid_interval",
    "beta_binomial_comparison",
    "chi_square_test",
    "compare_variant_means",
    "compare_variants",
    "holm_correction",
    "msprt_p_values",
    "power_two_proportions",
    "sample_size_two_means",
    "sample_size_two_proportions",
    "two_proportion_z_test",
    "welch_t_test",
]
