"""``python -m aiida_crystinv.worker FOLDER``: run the task staged in FOLDER (see :mod:`aiida_crystinv.worker`)."""

from ._main import main

raise SystemExit(main())
