"""Why a request's body could not be read: raised to its handler, answered 499, 400 or 408.

In a module of their own, which stays interpreted when the request path is compiled (`router/build_native.py`):
mypyc cannot compile subclasses of built-in exceptions other than `Exception`.
"""


class ClientGone(ConnectionError):
    """The client's connection ended before its request body did."""


class BadRequestBody(ConnectionError):
    """The body broke the framing it announced (httptools rejected it): the request cannot go on."""


class BodyTimeout(ConnectionError):
    """The body did not arrive within the body timeout (`HttpLimits.body_timeout_seconds`): 408."""
