"""One module per ``cryodiff`` command: ``HELP``, ``add_args(parser)``, ``run(args)``."""
