"""clipbench's Python API: `clipbench.evaluate(model=..., preprocess=..., tokenizer=..., tasks=[...])` from a
training loop (benchmark.api). The command line is `clipbench` (benchmark.cli)."""

from benchmark import __version__
from benchmark.api import evaluate
from benchmark.errors import ClipbenchError
from benchmark.results import Result

__all__ = ["ClipbenchError", "Result", "__version__", "evaluate"]
