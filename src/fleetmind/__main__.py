from fleetmind.cli import main

main()
