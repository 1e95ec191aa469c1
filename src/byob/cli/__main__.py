"""`python -m byob.cli`: the same as the `byob` command."""

from byob.cli.main import run

run()
