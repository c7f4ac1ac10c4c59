import sys

if __name__ == "__main__":
    from defection_warehouse.cli import main

    sys.exit(main())
