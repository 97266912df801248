"""``python -m dripline.cli``: the same as the ``dripline`` command."""

from . import main

main()
