"""Transports: sockets, streams, datagrams, TLS, pipes and subprocesses on the scheduler.

One module per transport kind, each holding its transport whole:

- ``base``: what they all share (constants, the ``asyncio`` logger, write flow
  control, fatal errors), and the socket transports' lifecycle (``SocketCore``
  and the ``SocketTransport`` in front of it). Compiled.
- ``stream``: TCP and Unix stream connections. Compiled.
- ``datagram``: UDP and Unix datagram endpoints. Compiled.
- ``tls``: TLS over a stream transport (``ssl=``, ``start_tls``).
- ``pipes``: the read and write ends of pipes, FIFOs and ptys.
- ``subprocess``: a child process and its pipes.

Making them: ``connect`` (outgoing connections), ``server`` (listening
sockets), ``endpoint`` (``create_datagram_endpoint``); and around them
``sockops`` (``sock_*``), ``sendfile`` and ``dns``. Each takes its loop as an
``aloop._core.loopapi.LoopAPI``.
"""
