"""python -m wsexec.cli: the same as the wsexec command."""

from wsexec.cli import main

if __name__ == "__main__":
    main()
