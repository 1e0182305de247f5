"""``python -m fleetmind``: the fleetmind command."""

from fleetmind.cli import main

if __name__ == "__main__":
    main()
