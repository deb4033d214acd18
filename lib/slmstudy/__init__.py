"""slmstudy: reproducible study notebooks on how small LLMs behave under vLLM.

The notebooks call into this package one step per cell; see ``study.open_study``.
"""

from .errors import ParamsError, SlmstudyError, UnsupportedVariant
from .study import Study, open_study, resolve

__all__ = ["ParamsError", "SlmstudyError", "Study", "UnsupportedVariant", "open_study", "resolve"]
__version__ = "0.1.0"
