"""The router's HTTP/1.1 layer, on asyncio protocols and httptools' parsers.

- `server`: the scoring port's server (`HttpServer`) and its client connections (`HttpConnection`), with
  the limits that hold hostile clients (`limits.HttpLimits`);
- `connection`: what one request and its answer need from their client connection (a Protocol, so
  `request` and `response` do not import the server);
- `request` / `response`: one request's head and body stream, and its answer;
- `upstream`: the lean client that carries a request to a replica and its answer back;
- `readflow` / `writeflow`: flow control shared by both sides, so bodies stream at the slower side's pace.

Nothing here knows about services, auth or scaling: `scoring` and `proxy` use it.
"""
