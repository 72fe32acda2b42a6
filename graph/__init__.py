"""corpgraph's application edge: settings, app assembly, HTTP/WebSocket protocol, auth, CLI."""
