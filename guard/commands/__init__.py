"""Sub-commands of the `guard` CLI; each module has `register(subparsers)`."""
