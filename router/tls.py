"""TLS for the scoring port: an SSL context whose certificate follows its files.

cert-manager renews a certificate by rewriting the Secret, which the kubelet swaps into the mounted
folder; loading the chain again into the same context makes every new handshake use the new pair
without a restart, while connections already open keep theirs.

With a certificate from ACME the Secret does not exist until the first challenge is answered, and the
router answers it: so the pod starts without the files (`wait_for_files`), handshakes fail until they
appear, and they are looked for every few seconds until then.
"""
from __future__ import annotations

import asyncio
import logging
import os
import ssl

from .settings import TlsOptions

log = logging.getLogger("router.tls")
CHECK_SECONDS = 30.0
WAIT_CHECK_SECONDS = 3.0  # while there is no certificate yet


class ReloadingContext:
    def __init__(self, options: TlsOptions, wait_for_files: bool = False) -> None:
        self.options = options
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._task: asyncio.Task | None = None
        self._seen = self._stamp()
        self.loaded = self._seen is not None
        if self.loaded or not wait_for_files:  # a missing pair is an error unless it is expected to come
            self.context.load_cert_chain(options.cert_file, options.key_file)
            self.loaded = True
        else:
            log.warning("no certificate at %s yet; HTTPS handshakes fail until it appears", options.cert_file)

    def _stamp(self) -> tuple | None:
        # stat follows the kubelet's ..data symlink, so a swapped Secret shows as a new inode or mtime.
        try:
            return tuple((s.st_ino, s.st_mtime_ns) for s in map(os.stat, (self.options.cert_file, self.options.key_file)))
        except FileNotFoundError:
            return None

    def reload_if_changed(self) -> bool:
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return False
        try:
            self.context.load_cert_chain(self.options.cert_file, self.options.key_file)
        except (OSError, ssl.SSLError) as err:  # half-written pair: keep serving the old one, retry next time
            log.warning("certificate reload failed, keeping the current one: %s", err)
            return False
        self._seen, self.loaded = stamp, True
        log.info("loaded the TLS certificate from %s", self.options.cert_file)
        return True

    def start(self, interval: float = CHECK_SECONDS) -> None:
        async def watch() -> None:
            while True:
                await asyncio.sleep(interval if self.loaded else min(interval, WAIT_CHECK_SECONDS))
                self.reload_if_changed()
        self._task = asyncio.ensure_future(watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
