"""Where collected model data goes, read from the environment the deployment sets.

The contract (the deployment sets these on a service with `collectModelData: true`; nothing set = off):

AKS_SERVING_MODELDATA
    unset, empty or ``off``: collection is off, ``collect()`` is a no-op (as v1 with data collection disabled).
    a directory (``/abs/path/.serving/dev/modeldata``): CSV files are appended under it (``make run``).
    an ``http(s)://`` container URL (``https://<account>.blob.core.windows.net/modeldata``): append blobs in
    that container, authenticated with ``azure.identity.DefaultAzureCredential`` (workload identity on the
    cluster) unless AML_MODEL_DC_STORAGE holds a connection string.
AML_MODEL_DC_STORAGE (v1's name)
    an Azure Storage connection string. With a container URL above it replaces DefaultAzureCredential (tests,
    Azurite). Without AKS_SERVING_MODELDATA, v1's pair AML_MODEL_DC_STORAGE_ENABLED=true + this connection
    string turns blob collection on into v1's container, ``modeldata``.
AML_MODEL_DC_STORAGE_ENABLED (v1's name)
    ``true`` enables the v1 pair above; ignored when AKS_SERVING_MODELDATA is set.
AKS_SERVING_SUBSCRIPTION_ID, AKS_SERVING_RESOURCE_GROUP, AKS_SERVING_WORKSPACE_NAME
    the first three path segments (v1 read them from /var/azureml-app/model_config_map.json, which is still
    read when present and these are unset); ``default`` when neither gives them.
SERVICE_NAME (v1's name)
    the service (for an endpoint version, the name the deployment gives that version).
AZUREML_MODEL_DIR (the inference server's)
    ``ModelDataCollector(model_version='default')`` takes the model's version from it: the folder itself when
    it is ``.../<model_name>/<version>`` (one model), else the highest numeric folder under
    ``$AZUREML_MODEL_DIR/<model_name>/`` (v1 took the newest version from model_config_map.json).
AML_MODEL_DC_BOUNDARY (v1's name)
    ``hour``: one file per hour (``.../yyyy/mm/dd/HH/data.csv``, ``$aml_dc_boundary`` 60); default one per day.
AML_MODEL_DC_DEBUG (v1's name)
    ``true``: every collected row is also printed to stdout, even with collection off.
AML_MODEL_DC_FLUSH_INTERVAL_SECONDS (v1's name)
    blob mode: the longest time a row waits in memory before it is uploaded (default 30; local files are
    written on every ``collect()`` call).
AML_MODEL_DC_EVENT_MAX_QUEUE_SIZE (v1's name), AKS_SERVING_MODELDATA_MAX_BUFFER_BYTES
    blob mode: at most this many ``collect()`` calls (default 10000) and bytes (default 32 MiB) wait for upload
    per process; beyond that rows are dropped and counted, with one log line.
"""
import json
import os
from collections import namedtuple

MODE = "AKS_SERVING_MODELDATA"
V1_STORAGE = "AML_MODEL_DC_STORAGE"
V1_ENABLED = "AML_MODEL_DC_STORAGE_ENABLED"
SUBSCRIPTION = "AKS_SERVING_SUBSCRIPTION_ID"
RESOURCE_GROUP = "AKS_SERVING_RESOURCE_GROUP"
WORKSPACE = "AKS_SERVING_WORKSPACE_NAME"
SERVICE = "SERVICE_NAME"
MODEL_DIR = "AZUREML_MODEL_DIR"
BOUNDARY = "AML_MODEL_DC_BOUNDARY"
DEBUG = "AML_MODEL_DC_DEBUG"
FLUSH_INTERVAL = "AML_MODEL_DC_FLUSH_INTERVAL_SECONDS"
MAX_EVENTS = "AML_MODEL_DC_EVENT_MAX_QUEUE_SIZE"
MAX_BYTES = "AKS_SERVING_MODELDATA_MAX_BUFFER_BYTES"

V1_CONTAINER = "modeldata"
V1_CONFIG_MAP = "/var/azureml-app/model_config_map.json"

# Where rows go: kind is "off", "local" (target = directory) or "blob" (target = container URL, or the
# container name when only a connection string is given).
Destination = namedtuple("Destination", "kind target connection_string flush_interval max_events max_bytes")
Identity = namedtuple("Identity", "workspace service model_dir hour_boundary debug")


def _number(environ, name, default, cast):
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ValueError("{}={!r} is not a number".format(name, raw))
    if value <= 0:
        raise ValueError("{}={!r} must be above zero".format(name, raw))
    return value


def destination(environ=None):
    """The data destination the environment asks for (raises ValueError on a malformed setting)."""
    environ = os.environ if environ is None else environ
    flush = _number(environ, FLUSH_INTERVAL, 30.0, float)
    events = _number(environ, MAX_EVENTS, 10000, int)
    size = _number(environ, MAX_BYTES, 32 * 1024 * 1024, int)
    connection = environ.get(V1_STORAGE, "").strip() or None
    mode = environ.get(MODE, "").strip()
    if not mode:
        if environ.get(V1_ENABLED, "").strip().lower() == "true" and connection:
            return Destination("blob", V1_CONTAINER, connection, flush, events, size)
        return Destination("off", None, None, flush, events, size)
    if mode.lower() == "off":
        return Destination("off", None, None, flush, events, size)
    if mode.lower().startswith(("http://", "https://")):
        if not mode.rstrip("/").rsplit("/", 1)[-1] or mode.rstrip("/").count("/") < 3:
            raise ValueError("{}={!r}: a container URL ends with the container's name".format(MODE, mode))
        return Destination("blob", mode.rstrip("/"), connection, flush, events, size)
    return Destination("local", os.path.abspath(mode), None, flush, events, size)


def _config_map(path=V1_CONFIG_MAP):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def identity(environ=None, config_map_path=V1_CONFIG_MAP):
    """The workspace triple, service name and the other per-process facts that shape the path."""
    environ = os.environ if environ is None else environ
    parts = [environ.get(SUBSCRIPTION, "").strip(), environ.get(RESOURCE_GROUP, "").strip(),
             environ.get(WORKSPACE, "").strip()]
    if not all(parts):
        account = (_config_map(config_map_path) or {}).get("accountContext") or {}
        from_map = [account.get("subscriptionId"), account.get("resourceGroupName"), account.get("accountName")]
        parts = [mine or (theirs or "default") for mine, theirs in zip(parts, from_map)]
    return Identity(workspace="/".join(parts).lower(),
                    service=environ.get(SERVICE, "").strip() or "default",
                    model_dir=environ.get(MODEL_DIR, "").strip() or None,
                    hour_boundary=environ.get(BOUNDARY, "").strip().lower() == "hour",
                    debug=environ.get(DEBUG, "").strip().lower() == "true")


def latest_model_version(model_dir, model_name, config_map_path=V1_CONFIG_MAP):
    """v1's 'default' version: the newest registered version of the model this service serves."""
    versions = []
    if model_dir:
        # One model: AZUREML_MODEL_DIR is azureml-models/<name>/<version>; several: azureml-models.
        head, tail = os.path.split(os.path.normpath(model_dir))
        if tail.isdigit() and os.path.basename(head) == model_name:
            return tail
        try:
            versions = [int(name) for name in os.listdir(os.path.join(model_dir, model_name)) if name.isdigit()]
        except OSError:
            versions = []
    if not versions:
        infos = ((_config_map(config_map_path) or {}).get("modelsInfo") or {}).get(model_name) or {}
        versions = [int(name) for name in infos if str(name).isdigit()]
    return str(max(versions)) if versions else "default"
