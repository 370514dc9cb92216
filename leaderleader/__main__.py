from leaderleader.cli import main

main()
