"""Azure ML v1's ModelDataCollector, in plain Python, writing v1's CSV layout.

What v1 did, read from azureml-monitoring 0.1.0a21 (the last release, 2020: Python over a native library
that needs OpenSSL 1.0) and from "Collect data from models in production" (SDK v1 docs):

* ``ModelDataCollector(model_name, designation='default', feature_names=None, workspace='default/default/default',
  webservice_name='default', model_version='default', collection_name='default')``. Designations: inputs,
  predictions, labels, signals, general ('default' means general); any other prints an error and the
  collector does nothing. ``workspace`` is ``<subscription>/<resource group>/<workspace>``, lowercased; the
  deployment filled it (and the model version) from /var/azureml-app/model_config_map.json and the service
  from SERVICE_NAME. Data collection was on only with AML_MODEL_DC_STORAGE_ENABLED=true and a connection
  string in AML_MODEL_DC_STORAGE; AML_MODEL_DC_DEBUG=true printed rows to stdout instead; AML_MODEL_DC_BOUNDARY
  =hour partitioned by hour.
* ``collect(input_data, user_correlation_id="")`` takes a list (one row), a numpy array (1-D: one row, 2-D:
  rows), a pandas or pyspark DataFrame. For 'inputs' it appends eight correlation columns to every row,
  ``$aml_dc_correlation_id`` (``<user id>-<uuid4>``, or the uuid4 alone), ``$aml_dc_scoring_timestamp`` (UTC,
  ``datetime.isoformat()``), ``$aml_dc_boundary`` (1440, or 60 by the hour), ``$aml_workspace``,
  ``$aml_service_name``, ``$aml_model_name``, ``$aml_model_version``, ``$aml_request_id`` (the request's id,
  or all zeros), and returns them as a dict; every other designation returns None, and so does every call
  while collection is off. ``add_correlations(data, correlations)`` appends the same columns to other data
  (None: data unchanged); rows of predictions/labels/signals that carry them land in the partition of their
  own scoring timestamp, workspace, service, model and version.
* CSV: Python's csv writer (``\\r\\n`` line ends) for lists and arrays, ``DataFrame.to_csv(index=False,
  header=False)`` for frames; the header is the feature names (plus the correlation columns once they are
  added) or the frame's columns, written once at the top of a file; no feature names, no header.
* Layout, in the workspace storage account's ``modeldata`` container:
  ``<subscription>/<resource group>/<workspace>/<service>/<model>/<version>/<designation>/yyyy/mm/dd[/HH]/data.csv``.
  The docs name the file data.csv; 0.1.0a21's native library named it ``<designation>.csv`` for inputs,
  predictions and labels and ``<collection_name>.csv`` for signals and general. Here it is data.csv, as
  documented, except that a signals/general collector given a collection_name writes
  ``<collection_name>.csv`` (the one thing collection_name did).

Differences, on purpose: numpy values are written as plain numbers (v1's csv writer, run under numpy 2, would
write ``np.float64(0.5)``); no telemetry is sent; no SIGTERM handler is installed (buffered blob rows are
uploaded at exit and at least every AML_MODEL_DC_FLUSH_INTERVAL_SECONDS). Where rows go is read from the
environment: see ``azureml.monitoring._settings`` for the contract.
"""
import csv
import datetime
import io
import logging
import sys
import uuid
import warnings

from . import _settings, _sinks

__all__ = ["ModelDataCollector"]

log = logging.getLogger("azureml.monitoring")

DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general")
_CORRELATED = ("predictions", "labels", "signals")
_NO_REQUEST = "00000000-0000-0000-0000-000000000000"
_DAY, _HOUR = 60 * 24, 60


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _record(values):
    text = io.StringIO()
    csv.writer(text).writerow(values)
    return text.getvalue().encode("utf-8")


def _module_type(module, name):
    mod = sys.modules.get(module)
    return getattr(mod, name, None) if mod is not None else None


def _request_id():
    """The scoring request's id: v1's REQUEST_ID, else the Azure ML inference server's x-request-id."""
    flask = sys.modules.get("flask")
    if flask is None:
        return _NO_REQUEST
    try:
        if not flask.has_request_context():
            return _NO_REQUEST
        found = (flask.request.environ.get("REQUEST_ID") or getattr(flask.g, "request_id", "")
                 or flask.request.headers.get("x-request-id") or flask.request.headers.get("x-ms-request-id"))
        return str(found) if found else _NO_REQUEST
    except Exception:  # a flask without these attributes: the request id is only metadata
        return _NO_REQUEST


_off_said = []


def _say_off_once():
    # v1 printed this for every collector while collection was off; once per process is enough.
    if not _off_said:
        _off_said.append(True)
        print("Data collection is not enabled: collect() does nothing. Set collectModelData: true on the service "
              "(or AKS_SERVING_MODELDATA) to enable it.")


def _parse_timestamp(value):
    for layout in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.datetime.strptime(str(value), layout)
        except ValueError:
            pass
    return None


class ModelDataCollector(object):
    """Collects model data (inputs, predictions, ...) as CSV rows in v1's layout; see the module docstring."""

    AML_DC_CORRELATION_HEADER = "$aml_dc_correlation_id"
    AML_DC_SCORING_TIMESTAMP_HEADER = "$aml_dc_scoring_timestamp"
    AML_DC_BOUNDARY_HEADER = "$aml_dc_boundary"
    AML_WORKSPACE_HEADER = "$aml_workspace"
    AML_SERVICE_NAME_HEADER = "$aml_service_name"
    AML_MODEL_NAME_HEADER = "$aml_model_name"
    AML_MODEL_VERSION_HEADER = "$aml_model_version"
    AML_REQUEST_ID_HEADER = "$aml_request_id"
    CORRELATION_HEADERS = (AML_DC_CORRELATION_HEADER, AML_DC_SCORING_TIMESTAMP_HEADER, AML_DC_BOUNDARY_HEADER,
                           AML_WORKSPACE_HEADER, AML_SERVICE_NAME_HEADER, AML_MODEL_NAME_HEADER,
                           AML_MODEL_VERSION_HEADER, AML_REQUEST_ID_HEADER)
    _ROUTING = (AML_DC_SCORING_TIMESTAMP_HEADER, AML_WORKSPACE_HEADER, AML_MODEL_NAME_HEADER,
                AML_MODEL_VERSION_HEADER, AML_SERVICE_NAME_HEADER)

    def __init__(self, model_name, designation="default", feature_names=None, workspace="default/default/default",
                 webservice_name="default", model_version="default", collection_name="default"):
        self._feature_names = list(feature_names) if feature_names is not None else None
        self._correlation_headers = []
        self._destination = _settings.destination()
        facts = _settings.identity()
        self._debug = facts.debug
        self._enabled = self._destination.kind != "off"
        if not self._enabled and not self._debug:
            _say_off_once()
        if designation == "default":
            designation = "general"
        if designation not in DESIGNATIONS:
            print("Incorrect designation value. Supported values: 'default', 'inputs', 'predictions', 'labels', "
                  "'signals', 'general'")
            self._enabled = self._debug = False
        self._designation = designation
        self.model_name = model_name
        self.workspace = (facts.workspace if workspace == "default/default/default" else workspace).lower()
        self.workspace_name = self.workspace.split("/")[-1]
        self.service_name = facts.service if webservice_name == "default" else webservice_name
        self.model_version = (_settings.latest_model_version(facts.model_dir, model_name)
                              if model_version == "default" else model_version)
        self.aml_dc_hour_boundary = facts.hour_boundary
        if designation in ("signals", "general") and collection_name != "default":
            self.filename = "{}.csv".format(collection_name)
        else:
            self.filename = "data.csv"
        self._collect_for_correlation = designation in _CORRELATED
        if designation == "inputs":
            self._add_correlation_headers()
        self._bad_path = False

    # -- v1's public API -------------------------------------------------------------------------------------
    def collect(self, input_data, user_correlation_id=""):
        """Collects `input_data`; returns the correlation columns (a dict) for 'inputs', else None."""
        if not self._enabled and not self._debug:
            return None
        correlations = None
        if self._designation == "inputs":
            correlations = self._get_generated_data_fields(user_correlation_id)
            input_data = self.add_correlations(input_data, correlations)
        batches = self._batches(input_data)
        if batches is None:
            warnings.warn("collect failed: input data must be list, numpy array, pandas dataframe, or spark "
                          "dataframe. Corresponding modules must be installed first.")
            return None
        for path, header, groups, rows in batches:
            if self._debug:
                print(((header or b"") + b"".join(groups)).decode("utf-8"))
            if not self._enabled:
                continue
            if path is None:
                if not self._bad_path:
                    self._bad_path = True
                    log.error("model data collection drops rows of model %s: a path segment is empty, '.' or "
                              "'..' (workspace %r, service %r, version %r)", self.model_name, self.workspace,
                              self.service_name, self.model_version)
                continue
            _sinks.sink_for(self._destination).write(path, header, groups, rows)
        return correlations

    def add_correlations(self, input_data, correlations):
        """Appends the correlation columns that collect() returned to `input_data` (None: unchanged)."""
        if correlations is None:
            return input_data
        self._add_correlation_headers()
        values = [correlations[name] for name in self.CORRELATION_HEADERS]
        if isinstance(input_data, list):
            return input_data + values
        ndarray = _module_type("numpy", "ndarray")
        if ndarray is not None and isinstance(input_data, ndarray):
            numpy = sys.modules["numpy"]
            if input_data.ndim == 1:
                input_data = numpy.array([input_data])
            extra = numpy.repeat(numpy.array([values], dtype=object), input_data.shape[0], axis=0)
            return numpy.append(input_data, extra, axis=1)
        frame = self._as_pandas(input_data)
        if frame is not None:
            frame = frame.copy(deep=False)
            for name, value in zip(self.CORRELATION_HEADERS, values):
                frame.insert(len(frame.columns), name, value)
            return frame
        warnings.warn("collect failed: input data must be list, numpy array, pandas dataframe, or spark dataframe. "
                      "Corresponding modules must be installed first.")
        return input_data

    # -- internals -------------------------------------------------------------------------------------------
    def _add_correlation_headers(self):
        if not self._correlation_headers:
            self._correlation_headers = list(self.CORRELATION_HEADERS)

    def _get_data_headers(self):
        if self._feature_names is None:
            return None
        return self._feature_names + self._correlation_headers

    def _get_generated_data_fields(self, correlation_id=""):
        generated = str(uuid.uuid4())
        return {
            self.AML_DC_CORRELATION_HEADER: "{}-{}".format(correlation_id, generated) if correlation_id else generated,
            self.AML_DC_SCORING_TIMESTAMP_HEADER: _utcnow().isoformat(),
            self.AML_DC_BOUNDARY_HEADER: _HOUR if self.aml_dc_hour_boundary else _DAY,
            self.AML_WORKSPACE_HEADER: self.workspace,
            self.AML_SERVICE_NAME_HEADER: self.service_name,
            self.AML_MODEL_NAME_HEADER: self.model_name,
            self.AML_MODEL_VERSION_HEADER: self.model_version,
            self.AML_REQUEST_ID_HEADER: _request_id(),
        }

    @staticmethod
    def _as_pandas(data):
        frame_type = _module_type("pandas", "DataFrame")
        if frame_type is not None and isinstance(data, frame_type):
            return data
        spark_type = _module_type("pyspark.sql", "DataFrame")
        if spark_type is not None and isinstance(data, spark_type):
            return data.toPandas()
        return None

    def _path(self, workspace, service, model, version, when, boundary):
        parts = str(workspace).split("/") + [str(service), str(model), str(version), self._designation,
                                             "%04d" % when.year, "%02d" % when.month, "%02d" % when.day]
        if boundary == _HOUR:
            parts.append("%02d" % when.hour)
        parts.append(self.filename)
        if any(part in ("", ".", "..") or "\\" in part for part in parts):
            return None
        return "/".join(parts)

    def _route(self, fields):
        """The path for a row, from the correlation fields it carries (predictions, labels, signals)."""
        when = _parse_timestamp(fields[self.AML_DC_SCORING_TIMESTAMP_HEADER]) \
            if self.AML_DC_SCORING_TIMESTAMP_HEADER in fields else None
        try:
            boundary = int(fields[self.AML_DC_BOUNDARY_HEADER]) if self.AML_DC_BOUNDARY_HEADER in fields else None
        except (TypeError, ValueError):
            boundary = None
        return self._path(fields.get(self.AML_WORKSPACE_HEADER, self.workspace),
                          fields.get(self.AML_SERVICE_NAME_HEADER, self.service_name),
                          fields.get(self.AML_MODEL_NAME_HEADER, self.model_name),
                          fields.get(self.AML_MODEL_VERSION_HEADER, self.model_version),
                          when or _utcnow(), boundary or (_HOUR if self.aml_dc_hour_boundary else _DAY))

    def _default_path(self):
        return self._path(self.workspace, self.service_name, self.model_name, self.model_version, _utcnow(),
                          _HOUR if self.aml_dc_hour_boundary else _DAY)

    def _routed(self, header, rows):
        """Groups row indexes by destination path: by their own correlation columns where they carry them."""
        columns = [name for name in self._ROUTING if header and name in header] if self._collect_for_correlation \
            else []
        if not columns:
            return {self._default_path(): list(range(len(rows)))}
        where = dict((name, header.index(name)) for name in columns + [self.AML_DC_BOUNDARY_HEADER]
                     if name in header)
        groups = {}
        for index, row in enumerate(rows):
            fields = dict((name, row[at]) for name, at in where.items() if at < len(row))
            groups.setdefault(self._route(fields), []).append(index)
        return groups

    def _batches(self, data):
        """[(path, header bytes or None, [bytes of whole rows], row count)], or None for an unknown type."""
        if isinstance(data, list):
            header, rows = self._get_data_headers(), [data]
        else:
            ndarray = _module_type("numpy", "ndarray")
            if ndarray is not None and isinstance(data, ndarray):
                header = self._get_data_headers()
                rows = [data.tolist()] if data.ndim == 1 else data.tolist()
            else:
                frame = self._as_pandas(data)
                if frame is None:
                    return None
                return self._frame_batches(frame)
        header_bytes = _record(header) if header else None
        return [(path, header_bytes, [_record(rows[i]) for i in indexes], len(indexes))
                for path, indexes in self._routed(header, rows).items()]

    def _frame_batches(self, frame):
        header = [str(name) for name in frame.columns]
        columns = [name for name in self._ROUTING + (self.AML_DC_BOUNDARY_HEADER,) if name in header]
        rows = frame[columns].values.tolist() if columns and self._collect_for_correlation else [[]] * len(frame)
        routed = self._routed(columns, rows)
        batches = []
        for path, indexes in routed.items():
            part = frame if len(indexes) == len(frame) else frame.iloc[indexes]
            batches.append((path, _record(header), _frame_csv(part), len(indexes)))
        return batches


def _frame_csv(frame):
    """The frame's rows as CSV, split by rows into pieces that fit an append block."""
    data = frame.to_csv(index=False, header=False).encode("utf-8")
    if len(data) <= _sinks.APPEND_BLOCK_BYTES or len(frame) < 2:
        return [data]
    middle = len(frame) // 2
    return _frame_csv(frame.iloc[:middle]) + _frame_csv(frame.iloc[middle:])
