"""`python -m jaxsparse` runs the command-line interface."""

from jaxsparse.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
