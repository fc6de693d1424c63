"""Fleet I/O: campaign files, the scheduler, sessions, the artifact server and the embedded broker."""
