"""``python -m banet.cli``: the ``banet`` command (e.g. for ``torchrun -m banet.cli train ...``)."""
import sys

from . import main

sys.exit(main())
