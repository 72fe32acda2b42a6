from graph.cli.commands import main

main()
