from wsexec.cli import main

main()
