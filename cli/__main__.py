"""`python -m cli`: the same command line as `personamint`."""

from cli.main import main

main()
