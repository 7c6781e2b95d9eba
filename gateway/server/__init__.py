"""The HTTP server and command line: app, middleware, GraphiQL, runtime, CLI."""
