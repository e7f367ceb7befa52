"""`python -m experiments.cli` = `edgeplace`."""
from experiments.cli import main

main()
