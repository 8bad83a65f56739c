"""The reporting side: results read back (benchmark.results) into paper-style tables (table, columns, render,
reference: published numbers and paper layouts), plots, and regression checks (regress: baselines and compare).
comparable holds the one rule for which results may be averaged or compared."""
