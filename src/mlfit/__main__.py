from mlfit.cli.entry import main

main()
