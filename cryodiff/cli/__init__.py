"""The ``cryodiff`` command line (see :mod:`cryodiff.cli.main`)."""
