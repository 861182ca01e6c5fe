"""``python -m banet COMMAND …``: the ``banet`` command (useful under ``torchrun`` without ``--no-python``)."""
import sys

from .cli import main

sys.exit(main())
