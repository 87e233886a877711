"""The `lidr` subcommands: each module parses its arguments, calls the library and renders the result."""
