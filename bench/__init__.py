"""`make bench`: wsexec end to end against raw paramiko, `ssh` and ansible on 20 real sshd daemons (see __main__)."""
