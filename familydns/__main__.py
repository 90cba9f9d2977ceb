"""``python -m familydns`` behaves exactly like the ``familydns`` command."""

from familydns.cli import main

if __name__ == "__main__":
    main()
