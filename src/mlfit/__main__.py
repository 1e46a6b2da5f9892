from mlfit.cli.app import main

main()
