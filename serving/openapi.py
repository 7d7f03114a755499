"""The server's OpenAPI 3.0 description, generated from the served model's signature.

Clients and the schemathesis fuzz test read ``/openapi.json``; the request schemas are
built from the same :class:`~serving.payload.ColumnSpec` list the validator enforces, so
the description cannot drift from what the server accepts. Routes and bodies follow
docs/contracts.md ("Serving").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from serving.payload import ColumnSpec

ERROR_STATUSES = {
    "400": "Malformed body, empty body, unknown payload format or no rows",
    "413": "Body larger than the configured cap",
    "406": "Accept names no type the server answers in (application/json, text/csv)",
    "408": "The body did not arrive within the body timeout",
    "415": "Missing or unsupported Content-Type",
    "422": "Columns missing, unexpected, mistyped, non-finite or out of range",
    "500": "The model raised or returned non-finite output (see error_id in the server log)",
    "503": "Not ready, draining, or over the concurrency limit (see Retry-After)",
    "504": "The request did not finish within the per-request timeout",
}


def _column_schema(spec: ColumnSpec) -> dict[str, Any]:
    schema: dict[str, Any]
    if spec.kind == "long":
        schema = {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}
    elif spec.kind == "integer":
        schema = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
    elif spec.kind in ("double", "float"):
        schema = {"type": "number", "format": spec.kind}
    elif spec.kind == "boolean":
        schema = {"type": "boolean"}
    else:
        schema = {"type": "string"}
    if not spec.required:
        schema["nullable"] = True
    return schema


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def build_openapi(columns: Sequence[ColumnSpec], model_name: str, model_version: str) -> dict[str, Any]:
    """The OpenAPI document for a model with these signature columns."""
    properties = {spec.name: _column_schema(spec) for spec in columns}
    required = [spec.name for spec in columns if spec.required]
    record = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    columnar = {
        "type": "object",
        "properties": {name: {"type": "array", "items": schema, "minItems": 1} for name, schema in properties.items()},
        "required": required,
        "additionalProperties": False,
    }
    rows = {"type": "array", "items": {"$ref": "#/components/schemas/Record"}, "minItems": 1}
    example_record = {
        spec.name: (
            1 if spec.kind in ("long", "integer") else 1.0 if spec.kind in ("double", "float") else True
            if spec.kind == "boolean" else "a"
        )
        for spec in columns
    }
    request_id_param = {"$ref": "#/components/parameters/RequestId"}
    json_ok = {"application/json": {"schema": {"type": "object"}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "mlserve inference server",
            "version": "1.0.0",
            "description": f"Serves {model_name} version {model_version}. Contract: docs/contracts.md (Serving).",
        },
        "paths": {
            "/ping": {
                "get": {
                    "summary": "Readiness: 200 when the model is loaded and the server is not draining",
                    "responses": {"200": {"description": "Ready", "content": json_ok},
                                  "503": {"description": "Loading, waiting for the alias, or draining", "content": json_ok}},
                }
            },
            "/livez": {
                "get": {
                    "summary": "Liveness: 200 while the serving loop runs",
                    "responses": {"200": {"description": "Alive", "content": json_ok}},
                }
            },
            "/execution-parameters": {
                "get": {
                    "summary": "SageMaker batch transform parameters",
                    "responses": {"200": {"description": "MaxConcurrentTransforms, BatchStrategy, MaxPayloadInMB",
                                          "content": json_ok}},
                }
            },
            "/invocations": {
                "post": {
                    "summary": "Score rows",
                    "parameters": [request_id_param],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "anyOf": [
                                        {"$ref": "#/components/schemas/DataframeSplit"},
                                        {"$ref": "#/components/schemas/DataframeRecords"},
                                        {"$ref": "#/components/schemas/Instances"},
                                        {"$ref": "#/components/schemas/Inputs"},
                                    ]
                                },
                                "example": {"dataframe_records": [example_record]},
                            },
                            "text/csv": {
                                "schema": {"type": "string"},
                                "example": ",".join(properties) + "\n" + ",".join(str(v) for v in example_record.values()),
                            },
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Predictions, one per row",
                            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Predictions"}},
                                        "text/csv": {"schema": {"type": "string"}}},
                        },
                        **{status: _error_response(text) for status, text in ERROR_STATUSES.items()},
                    },
                }
            },
            "/version": {
                "get": {
                    "summary": "The served model's name, version, URI and lineage tags",
                    "responses": {
                        "200": {
                            "description": "Model identity",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Version"}}},
                        }
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "Text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.0", "content": json_ok}}}
            },
        },
        "components": {
            "parameters": {
                "RequestId": {
                    "name": "X-Request-Id",
                    "in": "header",
                    "required": False,
                    "description": "The client's own id, kept as client_request_id in the capture record; "
                                   "the response carries the server-issued id",
                    "schema": {"type": "string", "pattern": "^[!-~]{1,128}$"},
                }
            },
            "headers": {"RequestId": {"schema": {"type": "string"}, "description": "The server-issued request id"}},
            "schemas": {
                "Record": record,
                "Columnar": columnar,
                "DataframeSplit": {
                    "type": "object",
                    "required": ["dataframe_split"],
                    "additionalProperties": False,
                    "properties": {
                        "dataframe_split": {
                            "type": "object",
                            "required": ["columns", "data"],
                            "additionalProperties": False,
                            "properties": {
                                "columns": {"type": "array", "items": {"type": "string"}},
                                "data": {"type": "array", "items": {"type": "array", "items": {}}},
                                "index": {"type": "array", "items": {}},
                            },
                        }
                    },
                },
                "DataframeRecords": {
                    "type": "object",
                    "required": ["dataframe_records"],
                    "additionalProperties": False,
                    "properties": {"dataframe_records": rows},
                },
                "Instances": {
                    "type": "object",
                    "required": ["instances"],
                    "additionalProperties": False,
                    "properties": {"instances": {"anyOf": [rows, {"$ref": "#/components/schemas/Columnar"}]}},
                },
                "Inputs": {
                    "type": "object",
                    "required": ["inputs"],
                    "additionalProperties": False,
                    "properties": {"inputs": {"anyOf": [rows, {"$ref": "#/components/schemas/Columnar"}]}},
                },
                "Predictions": {
                    "type": "object",
                    "required": ["predictions", "probabilities", "model_version", "request_id"],
                    "properties": {
                        "predictions": {"type": "array", "items": {}},
                        "probabilities": {"type": "array", "items": {"type": "number"}, "nullable": True},
                        "model_version": {"type": "string"},
                        "request_id": {"type": "string"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "message", "request_id"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "request_id": {"type": "string"},
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "error_id": {"type": "string"},
                    },
                },
                "Version": {
                    "type": "object",
                    "required": ["model_name", "model_version", "model_uri", "lineage"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "model_uri": {"type": "string"},
                        "run_id": {"type": "string", "nullable": True},
                        "lineage": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            },
        },
    }
