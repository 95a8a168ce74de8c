"""moto, with CloudWatch's current wire protocol in front of it.

aws-sdk-cloudwatch >= 1.100 speaks Smithy RPC v2 CBOR
(https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html): a POST to
`/service/GraniteServiceVersion20100801/operation/<Operation>` with a CBOR body and the header
`smithy-protocol: rpc-v2-cbor`. moto 5.2.5 (the newest on PyPI) does not route that path, but it
answers the same operations in awsJson 1.0 (botocore's CloudWatch model lists the protocols
`smithy-rpc-v2-cbor`, `json`, `query`). This front runs inside moto's own server process: a CBOR
request is translated to awsJson 1.0 (the operation as `X-Amz-Target`), and moto's JSON answer back
to CBOR, typed by botocore's CloudWatch model so that timestamps carry CBOR tag 1 and doubles stay
doubles, as the spec requires. Every other request reaches moto unchanged.

Usage: moto_cbor.py -H HOST -p PORT (moto_server's flags).
"""

import argparse
import base64
import datetime
import io
import json
import signal
import sys

import cbor2
from botocore.session import get_session
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

PATH_PREFIX = "/service/"
SERVICES = {"GraniteServiceVersion20100801": "cloudwatch"}
# Response headers moto sets that the SDK reads (the awsQuery-compatible error code, the request id).
KEPT_HEADERS = {"x-amzn-query-error", "x-amzn-requestid"}


def _jsonable(value):
    """CBOR-decoded request values as awsJson writes them: epoch seconds, base64 blobs."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, cbor2.CBORTag) and value.tag == 1:
        return value.value
    return value


def _typed(value, shape):
    """moto's JSON answer as CBOR values of the model's types."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: _typed(v, members.get(k)) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_typed(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _typed(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, str):
            text = value.replace("Z", "+00:00")
            value = datetime.datetime.fromisoformat(text).timestamp()
        return cbor2.CBORTag(1, float(value))
    if kind in ("double", "float") and isinstance(value, (int, float)):
        return float(value)
    if kind in ("integer", "long") and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    return value


class CborFront:
    def __init__(self, app):
        self.app = app
        session = get_session()
        self.models = {name: session.get_service_model(svc) for name, svc in SERVICES.items()}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ.get("HTTP_SMITHY_PROTOCOL") != "rpc-v2-cbor" or not path.startswith(PATH_PREFIX):
            return self.app(environ, start_response)
        parts = path[len(PATH_PREFIX):].split("/")
        if len(parts) != 3 or parts[1] != "operation" or parts[0] not in SERVICES:
            return self._answer(start_response, "404 Not Found", {"__type": "UnknownOperation", "message": path})
        service, operation = parts[0], parts[2]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            request = cbor2.loads(raw) if raw else {}
        except Exception as err:  # a body that is not CBOR: say so, as a client error
            return self._answer(start_response, "400 Bad Request", {"__type": "SerializationException", "message": str(err)})
        body = json.dumps(_jsonable(request)).encode()
        environ = dict(environ)
        environ.update({
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_AMZ_TARGET": f"{service}.{operation}",
            "HTTP_ACCEPT": "application/json",
            "wsgi.input": io.BytesIO(body),
        })
        environ.pop("HTTP_SMITHY_PROTOCOL", None)
        seen = {}

        def capture(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, headers
            return lambda _data: None

        chunks = self.app(environ, capture)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        try:
            answer = json.loads(data) if data.strip() else {}
        except ValueError:
            answer = {"__type": "InternalFailure", "message": data.decode("utf-8", "replace")[:500]}
        status = seen.get("status", "500 Internal Server Error")
        if status.startswith("2"):
            model = self.models[service]
            output = model.operation_model(operation).output_shape
            answer = _typed(answer, output)
        kept = [(k, v) for k, v in seen.get("headers", []) if k.lower() in KEPT_HEADERS]
        return self._answer(start_response, status, answer, kept)

    @staticmethod
    def _answer(start_response, status, answer, headers=()):
        body = cbor2.dumps(answer)
        start_response(status, [
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("Content-Length", str(len(body))),
            *headers,
        ])
        return [body]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, CborFront(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
