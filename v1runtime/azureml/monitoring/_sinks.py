"""Where CSV bytes go: local files or Azure append blobs, one writer per destination and process.

Local files are appended on the caller's thread under a lock (and an flock, for the inference server's other
worker processes), the header written only into an empty file. Blobs are buffered in memory and uploaded by
one background thread per process: the scoring call only appends to a bounded buffer, and rows that do not
fit are dropped and counted (one log line says so).

Several replicas append to the same blob: each uploader creates the append blob only if it is missing and
appends its header only at position 0 (`appendpos_condition=0`) before its first rows, so the first block of
every blob is its header and rows from different replicas never split (each block holds whole rows).
"""
import atexit
import logging
import os
import importlib.util
import threading

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the lock covers this process's threads only
    fcntl = None

log = logging.getLogger("azureml.monitoring")

# Largest append block every service version accepts (newer ones take 100 MiB).
APPEND_BLOCK_BYTES = 4 * 1024 * 1024


class _Once(object):
    """Logs a condition the first time it happens, then counts it silently until `reset()`."""

    def __init__(self):
        self.logged = False

    def __call__(self, level, message, *args):
        if not self.logged:
            self.logged = True
            log.log(level, message, *args)

    def reset(self):
        self.logged = False


class OffSink(object):
    kind = "off"

    def write(self, path, header, groups, rows):
        pass

    def close(self, timeout=None):
        pass


class LocalSink(object):
    """Appends CSV bytes to files under a directory, the header only into an empty file."""

    kind = "local"

    def __init__(self, directory):
        self.directory = directory
        self.failed_rows = 0
        self._lock = threading.Lock()
        self._failure = _Once()

    def write(self, path, header, groups, rows):
        target = os.path.join(self.directory, *path.split("/"))
        data = b"".join(groups)
        try:
            with self._lock:
                os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "ab", buffering=0) as handle:
                    if fcntl is not None:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                    if header and os.fstat(handle.fileno()).st_size == 0:
                        data = header + data
                    handle.write(data)  # one O_APPEND write: whole rows, never interleaved
        except OSError as error:
            self.failed_rows += rows
            self._failure(logging.ERROR, "model data collection cannot write %s (%s); rows are dropped and "
                                         "counted from now on", target, error)

    def close(self, timeout=None):
        pass


class BlobSink(object):
    """Buffers CSV bytes per blob and appends them from a background thread."""

    kind = "blob"

    def __init__(self, destination):
        # Said at init(), where the deployment fails visibly, not on the upload thread, where rows would go.
        if importlib.util.find_spec("azure") is None or importlib.util.find_spec("azure.storage.blob") is None:
            raise RuntimeError("blob collection needs azure-storage-blob and azure-identity in the environment "
                               "(this package's [blob] extra), and the image build could not fit them around "
                               "its packages; list azure-storage-blob and azure-identity in the conda file")
        self.destination = destination
        self.dropped_rows = 0
        self.uploaded_bytes = 0
        self.failed_uploads = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending = {}  # blob name -> [header, [groups], rows]
        self._events = 0
        self._bytes = 0
        self._closed = False
        self._thread = None
        self._container = None
        self._prepared = set()
        self._dropping = _Once()
        self._failing = _Once()

    # -- the scoring call's side: only the buffer, under a lock -------------------------------------------
    def write(self, path, header, groups, rows):
        size = sum(len(group) for group in groups)
        too_big = any(len(group) > APPEND_BLOCK_BYTES for group in groups)
        with self._lock:
            full = (self._events + 1 > self.destination.max_events
                    or self._bytes + size > self.destination.max_bytes)
            if self._closed or full or too_big:
                self.dropped_rows += rows
            else:
                entry = self._pending.get(path)
                if entry is None:
                    self._pending[path] = [header, list(groups), rows]
                else:
                    entry[0] = entry[0] or header
                    entry[1].extend(groups)
                    entry[2] += rows
                self._events += 1
                self._bytes += size
                self._start()
                if (self._bytes * 2 > self.destination.max_bytes
                        or self._events * 2 > self.destination.max_events):
                    self._wake.set()  # half full: upload now instead of waiting for the interval
                return
        if too_big:
            reason = "a row is larger than an append block ({} bytes)".format(APPEND_BLOCK_BYTES)
        elif self._closed:
            reason = "the process is shutting down"
        else:
            reason = "the upload buffer is full ({} calls, {} bytes waiting)".format(self._events, self._bytes)
        self._dropping(logging.WARNING, "model data collection drops rows: %s; dropped rows are counted "
                                        "(this is logged once)", reason)

    def _start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="azureml-monitoring-upload", daemon=True)
            self._thread.start()

    # -- the uploader thread -------------------------------------------------------------------------------
    def _run(self):
        while True:
            self._wake.wait(self.destination.flush_interval)
            self._wake.clear()
            self.flush()
            with self._lock:
                if self._closed and not self._pending:
                    return

    def flush(self):
        """Uploads what is buffered now (called by the uploader thread, and at exit)."""
        with self._lock:
            batch, self._pending = self._pending, {}
            self._events = self._bytes = 0
        for path, (header, groups, rows) in batch.items():
            done = [0]
            try:
                self._upload(path, header, groups, done)
                self._failing.reset()
            except Exception as error:  # any failure: keep what fits for the next round
                self.failed_uploads += 1
                self._failing(logging.ERROR, "model data upload to %s failed (%s: %s); retrying every %ss",
                              path, type(error).__name__, error, self.destination.flush_interval)
                self._requeue(path, header, groups[done[0]:], rows)

    def _requeue(self, path, header, groups, rows):
        size = sum(len(group) for group in groups)
        with self._lock:
            if self._closed or self._bytes + size > self.destination.max_bytes:
                self.dropped_rows += rows
                return
            entry = self._pending.setdefault(path, [header, [], 0])
            entry[1][:0] = groups
            entry[2] += rows
            self._events += 1
            self._bytes += size

    def _upload(self, path, header, groups, done):
        blob = self._client().get_blob_client(path)
        if path not in self._prepared:
            self._prepare(blob, header)
            self._prepared.add(path)
        block, count = [], 0
        for index, group in enumerate(groups):
            if block and count + len(group) > APPEND_BLOCK_BYTES:
                self._append(blob, path, b"".join(block))
                done[0] = index
                block, count = [], 0
            block.append(group)
            count += len(group)
        if block:
            self._append(blob, path, b"".join(block))
        done[0] = len(groups)

    def _append(self, blob, path, data):
        from azure.core.exceptions import ResourceNotFoundError
        try:
            blob.append_block(data)
        except ResourceNotFoundError:
            self._prepared.discard(path)  # deleted under us: create it (and its header) next round
            raise
        self.uploaded_bytes += len(data)

    @staticmethod
    def _prepare(blob, header):
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceExistsError
        try:
            blob.create_append_blob(match_condition=MatchConditions.IfMissing)  # never truncates
        except ResourceExistsError:
            pass
        if header:
            try:
                blob.append_block(header, appendpos_condition=0)  # only into an empty blob
            except HttpResponseError as error:
                if error.status_code != 412:  # 412: the blob has its header (or rows) already
                    raise

    def _client(self):
        if self._container is None:
            try:
                from azure.storage.blob import BlobServiceClient, ContainerClient
            except ImportError:
                raise RuntimeError("blob collection needs azure-storage-blob and azure-identity: install this "
                                   "package with its [blob] extra")
            options = {"connection_timeout": 10, "read_timeout": 30, "retry_total": 3}
            target = self.destination.target
            if self.destination.connection_string:
                service = BlobServiceClient.from_connection_string(self.destination.connection_string, **options)
                self._container = service.get_container_client(target.rsplit("/", 1)[-1])
            else:
                from azure.identity import DefaultAzureCredential
                self._container = ContainerClient.from_container_url(
                    target, credential=DefaultAzureCredential(), **options)
        return self._container

    def close(self, timeout=None):
        """Stops taking rows, uploads what is buffered and waits up to `timeout` seconds for it."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(timeout)


_lock = threading.Lock()
_sinks = {}


def sink_for(destination):
    """The process's writer for `destination` (a _settings.Destination)."""
    with _lock:
        sink = _sinks.get(destination)
        if sink is None:
            if destination.kind == "local":
                sink = LocalSink(destination.target)
            elif destination.kind == "blob":
                sink = BlobSink(destination)
            else:
                sink = OffSink()
            _sinks[destination] = sink
        return sink


def close_all(timeout=10.0):
    with _lock:
        sinks = list(_sinks.values())
    for sink in sinks:
        sink.close(timeout)


def _forget_after_fork():
    # A forked worker (gunicorn) has none of the parent's threads, and the parent's buffers are not its own.
    global _lock, _sinks
    _lock = threading.Lock()
    _sinks = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(close_all)
