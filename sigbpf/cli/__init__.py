"""The ``sigbpf`` command line: one module per command, imported on use."""
