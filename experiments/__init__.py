"""Orchestration: the local testbed, experiment runs, results, plots and reports; home of the CLI."""
