from hostdiag.cli import main

main()
