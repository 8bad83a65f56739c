"""`python -m benchmark` is the command line (and `torchrun ... -m benchmark run ...` a data-parallel run)."""

from .cli import main

main()
