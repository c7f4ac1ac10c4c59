"""`python -m defection_warehouse <command>`: the same commands as `dw` (see cli.py)."""

from defection_warehouse.cli import main

if __name__ == "__main__":
    main()
