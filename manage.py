#!/usr/bin/env python
"""Django's command-line utility. The project package lives in platform/ (a source folder, not a package)."""

import os
import sys
from pathlib import Path


def main() -> None:
    root = Path(__file__).resolve().parent
    # Works before `pip install -e .` too; platform/ is put on the path as a folder, never imported itself.
    for folder in (root, root / "platform"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spatiallab.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
