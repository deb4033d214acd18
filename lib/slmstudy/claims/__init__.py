"""The three source articles' claims as data, and the judge that holds them against our numbers.

``claims.yaml`` (beside this package) lists every numeric or comparative claim of
the articles in ``shared/seeds/`` one entry each. By job:

* ``metrics``: what the report must measure under each metric id, in which unit;
* ``units``: units and conversion between units of one dimension;
* ``expressions``: the arithmetic an arithmetic claim is checked with;
* ``schema``: the strict schema of a claim, per kind;
* ``loader``: reading ``claims.yaml``, every problem reported at once;
* ``judge``: one verdict per claim against a tidy table of measurements;
* ``format``: how numbers are written.

Kinds, and how each is judged:

* ``absolute``: a number on the article's hardware. Judged against ours only when
  the quantity does not depend on the GPU (``hardware_independent``: weights,
  parameter counts, context length) or the article names no GPU and states it as a
  property of the deployment (``any_gpu``); otherwise shown, "not comparable".
* ``comparative``: A vs B. Judged by direction; the ratio is reported. When our two
  95% CIs overlap, the claimed difference is "not supported".
* ``qualitative``: yes/no or high/medium, mapped to a metric: either one value with a
  relation (``tensor_parallel_supported`` = 1) or a direction between A and B.
* ``arithmetic``: checkable from the article's own numbers or public architecture
  facts alone; the expression is evaluated here, never typed in by hand.
* ``untestable``: needs weights, data sets or hardware the study does not have.
"""

from .judge import COLUMNS, MEASUREMENT_COLUMNS, VERDICTS, judge
from .loader import CLAIMS_FILE, load
from .metrics import METRICS, Metric
from .schema import Claim, ClaimsError
from .units import UNITS, convert

__all__ = ["CLAIMS_FILE", "COLUMNS", "Claim", "ClaimsError", "MEASUREMENT_COLUMNS", "METRICS", "Metric", "UNITS",
           "VERDICTS", "convert", "judge", "load"]
