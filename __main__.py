"""``python -m probe``, and the ``probe`` command."""

import sys


def run() -> None:
    try:
        from probe.cli import main
    except KeyboardInterrupt:  # Ctrl-C while probe itself starts: no run yet, nothing to keep
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
