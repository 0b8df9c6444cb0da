"""The `personamint` command line: one subcommand per process or operator task."""
