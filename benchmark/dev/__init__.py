"""Tools for maintainers: retrain the bundled model (train_tiny), regenerate the prompt and task files from
the upstream lists (prompts_convert), measure performance (perf), count parameters of the registered architectures
(sizes). Nothing that runs at evaluation time imports this package (an import-linter contract says so)."""
