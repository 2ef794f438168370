"""Transports: sockets, streams, datagrams, TLS, pipes and subprocesses on the scheduler."""
